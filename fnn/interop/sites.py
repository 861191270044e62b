"""The two walks that `from_torch`/`to_torch` zip together: fnn's layers with params or
state in apply order (`sites`), and a torch state_dict's modules in its key order
(`match`, which cuts the keys into one module per site, as the site's converter
expects).

A fnn model and its torch twin correspond when their layers with parameters come in
the same order: true of `nn.Sequential` twins of `fnn.serial` models, and of
torchvision's ResNet-18 and AlexNet against `fnn.models.resnet18`/`alexnet`
(conv → bn → ... → downsample → fc in both).
"""
from __future__ import annotations

import re

import jax

from fnn._checks import BadValue, shape_str
from fnn.core import Layer, output_struct
from fnn.interop.converters import CONVERTERS, Converter, Site

__all__ = ["sites", "match", "default_name", "describe_site", "converter", "check_shapes"]

_WALKED = ("serial", "concat", "residual")


def sites(model: Layer, params: dict, state: dict, input_shape: tuple, dtype) -> list[Site]:
    """Every layer of `model` with params or state, in apply order, with its input
    shape and, after a `Flatten` of a rank-3+ example `(H, W, C)`, that shape."""
    found: list[Site] = []
    pending: list = [None]
    x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
    _walk(model, params, state, x, (), found, pending)
    return found


def _walk(layer: Layer, params, state, x, path, found, pending) -> None:
    if layer.combinator in _WALKED and layer.children:
        for entry, child in layer.children:
            p, s = params.get(entry, {}), state.get(entry, {})
            _walk(child, p, s, x, (*path, entry), found, pending)
            if layer.combinator == "serial":
                x = output_struct(child, x.shape[1:], x.dtype, p, s)
        return
    if layer.name == "Flatten":
        pending[0] = tuple(x.shape[1:]) if x.ndim >= 4 else None
        return
    if not params and not state:
        return
    found.append(Site(path, layer.name, params, state, tuple(x.shape[1:]), pending[0]))
    pending[0] = None


def describe_site(site: Site) -> str:
    """`"fnn layer '4_BasicBlock/0_Residual/block/0_Conv2D' (Conv2D)"`."""
    return f"fnn layer '{'/'.join(site.path) or '(the model)'}' ({site.kind})"


def default_name(site: Site) -> str:
    """The torch module name of a site in an `nn.Sequential` twin: `"{i}_{Name}"` → `"i"`,
    other keys (`block`, `shortcut`) as they are, joined by dots."""
    return ".".join(re.sub(r"^(\d+)_.*$", r"\1", entry) for entry in site.path)


def converter(site: Site) -> Converter:
    found = CONVERTERS.get(site.kind)
    if found is None:
        raise BadValue(f"{describe_site(site)} has no PyTorch converter; convertible kinds: "
                       f"{', '.join(sorted(CONVERTERS))} (add one with "
                       "fnn.interop.register(kind, Converter(...))).")
    return found


def _prefix(key: str, keys: tuple[str, ...]) -> str | None:
    for suffix in sorted(keys, key=len, reverse=True):
        if key == suffix:
            return ""
        if key.endswith("." + suffix):
            return key[:-len(suffix) - 1]
    return None


def _suffix(key: str, prefix: str) -> str | None:
    if not prefix:
        return key
    return key[len(prefix) + 1:] if key.startswith(prefix + ".") else None


_ROOT = "(the root module)"


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else _ROOT


def match(found: list[Site], keys: list[str]) -> list[tuple[Site, str, dict[str, str]]]:
    """Cut `keys` (a state_dict's, in order) into one torch module per site: a list of
    `(site, module name, {converter key: state_dict key})`. Raises `BadValue` naming the
    first fnn layer and torch module that do not correspond."""
    pos, out = 0, []
    for site in found:
        conv = converter(site)
        if pos == len(keys):
            raise BadValue(f"the torch state_dict has no module left for {describe_site(site)} "
                           f"(it has {len(keys)} keys, all taken by earlier layers).")
        prefix = _prefix(keys[pos], conv.keys)
        if prefix is None:
            raise BadValue(f"{describe_site(site)} does not match torch module "
                           f"'{_module(keys[pos])}': its key '{keys[pos]}' is none of those "
                           f"of the twin of fnn's {site.kind} ({', '.join(conv.keys)}).")
        group: dict[str, str] = {}
        while pos < len(keys):
            suffix = _suffix(keys[pos], prefix)
            if suffix is None or suffix in group:
                break
            if suffix not in conv.keys:
                if "." in suffix:   # a submodule: the next module
                    break
                raise BadValue(f"{describe_site(site)} does not match torch module "
                               f"'{prefix or _ROOT}': its key '{keys[pos]}' has no twin in "
                               f"fnn's {site.kind} (whose twin has {', '.join(conv.keys)}).")
            group[suffix] = keys[pos]
            pos += 1
        out.append((site, prefix, group))
    if pos < len(keys):
        raise BadValue(f"the torch state_dict has modules left after the fnn model's last "
                       f"layer with params, from '{keys[pos]}' on ({len(keys) - pos} keys).")
    return out


def check_shapes(site: Site, module: str, given: dict, expected: dict, optional) -> None:
    """`given` (a torch module's arrays by converter key) against `expected` (the fnn
    layer's, in torch's layout): the same keys (but `optional`) and shapes."""
    where = f"{describe_site(site)} and torch module '{module}' do not match"
    fnn_shapes = ", ".join(f"{k} {shape_str(v.shape)}" for k, v in
                           {**site.params, **site.state}.items() if hasattr(v, "shape"))
    for key, want in expected.items():
        if key not in given:
            if key in optional:
                continue
            raise BadValue(f"{where}: the torch module has no '{key}' (expected shape "
                           f"{shape_str(want.shape)}; fnn layer: {fnn_shapes}).")
        if tuple(given[key].shape) != tuple(want.shape):
            raise BadValue(f"{where}: torch '{key}' has shape {shape_str(given[key].shape)}, "
                           f"the fnn layer needs {shape_str(want.shape)} (fnn layer: "
                           f"{fnn_shapes}).")
    for key in given:
        if key not in expected:
            raise BadValue(f"{where}: the torch module has '{key}' of shape "
                           f"{shape_str(given[key].shape)}, which the fnn layer has no twin "
                           f"for (fnn layer: {fnn_shapes}; e.g. use_bias=False).")
