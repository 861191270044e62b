"""`from_torch` / `to_torch`: PyTorch `state_dict`s in and out of fnn `(params, state)`.

    params, state = fnn.interop.from_torch(model, torch_module.state_dict(), input_shape)
    torch_module.load_state_dict(fnn.interop.to_torch(model, params, state, input_shape))

The model's layers with params or state are matched, in apply order, with the torch
modules in the state_dict's key order; each pair is converted by the entry of
`fnn.interop.CONVERTERS` for the fnn layer's kind (layouts in
`fnn.interop.converters`). torch is imported only when tensors are met or made.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import example_shape
from fnn._checks import BadType, BadValue, describe_value, flag, named
from fnn.core import Layer
from fnn.interop.converters import KindMismatch, Site
from fnn.interop.sites import (
    check_shapes,
    converter,
    default_name,
    describe_site,
    match,
    sites,
)
from fnn.interop.zoo import torchvision_name

__all__ = ["from_torch", "to_torch", "to_numpy"]


def to_numpy(value, name: str = "value") -> np.ndarray:
    """A torch tensor (any device, bfloat16 too), a NumPy or jax array as NumPy."""
    if type(value).__module__.split(".")[0] == "torch":
        import torch
        if not isinstance(value, torch.Tensor):
            raise BadType(f"{name} must be a tensor or an array, got {describe_value(value)}.")
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            return value.view(torch.int16).numpy().view(jnp.bfloat16)
        return value.numpy()
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise BadType(f"{name} must be a torch tensor or an array, got "
                      f"{describe_value(value)}.")
    return np.asarray(value)


def _tensor(array: np.ndarray):
    import torch
    array = np.array(array, order="C")   # a copy (np.ascontiguousarray makes 0-d 1-d)
    if array.dtype == jnp.bfloat16:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def _arrays(state_dict, what: str) -> dict[str, np.ndarray]:
    if not isinstance(state_dict, Mapping):
        raise BadType(f"{what} must be a mapping of names to tensors (a torch state_dict), got "
                      f"{describe_value(state_dict)}.")
    out = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise BadType(f"{what} keys must be strings, got {key!r}.")
        out[key] = to_numpy(value, f"{what}[{key!r}]")
    return out


def _model(model) -> Layer:
    if not isinstance(model, Layer):
        raise BadType(f"model must be a fnn.Layer, got {describe_value(model)}.")
    return model


def _matched(model: Layer, params, state, shape, arrays: dict):
    """`match` of the model's sites with `arrays`, each pair checked for shapes:
    `[(site, module, {converter key: array}, expected torch arrays)]`."""
    found = sites(model, params, state, shape, model.input_dtype)
    out = []
    for site, module, keys in match(found, list(arrays)):
        conv = converter(site)
        zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), (site.params, site.state))
        expected = conv.to_torch(*zeros, site)
        given = {k: arrays[full] for k, full in keys.items()}
        check_shapes(site, module or "(the root module)", given, expected, conv.optional)
        out.append((site, module, given))
    return out


def _set(tree: dict, path: tuple[str, ...], value: dict) -> None:
    for entry in path[:-1]:
        tree = tree[entry]
    if path:
        tree[path[-1]] = value
    else:
        tree.clear()
        tree.update(value)


def _rebuild(like):
    """Empty nested dicts in the shape of `like`'s dicts (leaves filled in later)."""
    return {k: _rebuild(v) if isinstance(v, dict) else None for k, v in like.items()}


def _cast(converted: dict, like: dict) -> dict:
    out = {}
    for key, value in converted.items():
        if isinstance(value, dict):
            out[key] = _cast(value, like[key])
        else:
            out[key] = jnp.asarray(np.asarray(value).astype(like[key].dtype, copy=False))
    return out


@named("fnn.interop.from_torch")
def from_torch(model: Layer, state_dict: Mapping, input_shape) -> tuple[dict, dict]:
    """fnn `(params, state)` for `model` from a PyTorch `state_dict`.

    **Arguments:**
    - `model`: a fnn model whose layers with params correspond, in apply order, to the
      torch modules in the state_dict's order (an `nn.Sequential` twin of a
      `fnn.serial`; torchvision's `resnet18()`/`alexnet()` for `fnn.models.resnet18`
      and the ImageNet `alexnet`). Module names are not compared, only order, kinds
      and shapes.
    - `state_dict`: a mapping of names to torch tensors or NumPy arrays.
    - `input_shape`: one example's shape (as for `model.init`), e.g. `(224, 224, 3)`.

    **Returns** `(params, state)` as `model.init` makes them (its dtypes: float64
    tensors are cast to float32 params). Layouts per layer kind are in
    `fnn.interop.converters`; torch's two recurrent biases of RNN/LSTM are summed;
    BatchNorm's `num_batches_tracked` is not kept.

    **Raises** `ValueError` naming the first fnn layer and torch module whose kind,
    keys or shapes do not match (both names, both shapes), a layer without converter,
    or modules left over on either side; `TypeError` for a model that is no Layer or
    a state_dict that is no mapping of tensors.
    """
    model = _model(model)
    shape = example_shape(input_shape, "(d1, ..., dk), one example without the batch axis")
    arrays = _arrays(state_dict, "state_dict")
    like_params, like_state = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), shape))
    params, state = _rebuild(like_params), _rebuild(like_state)
    for site, module, given in _matched(model, like_params, like_state, shape, arrays):
        try:
            p, s = converter(site).from_torch(given, site)
        except KindMismatch as e:
            raise BadValue(f"{describe_site(site)} does not match torch module "
                           f"'{module}': {e.args[0]}.") from None
        if site.params:
            _set(params, site.path, _cast(p, site.params))
        if site.state:
            _set(state, site.path, _cast(s, site.state))
    return params, state


@named("fnn.interop.to_torch")
def to_torch(model: Layer, params: dict, state: dict, input_shape, *, like: Mapping | None = None,
             numpy: bool = False) -> dict:
    """A PyTorch `state_dict` (a dict of CPU tensors) from fnn `(params, state)`.

    **Arguments:**
    - `model`, `params`, `state`, `input_shape`: the fnn model and its values.
    - `like`: the torch twin's `state_dict()`: its module names (matched in order, as in
      `from_torch`) and key order are used, and its shapes are checked. Without it, the
      names are torchvision's for `fnn.models.resnet18` and the ImageNet `alexnet`, and
      otherwise those of an `nn.Sequential` twin: the fnn keys with `"{i}_{Name}"` read
      as `i` (`"3_Dense"` → `"3.weight"`, `"4_BasicBlock/0_Residual/block/0_Conv2D"` →
      `"4.0.block.0.weight"`).
    - `numpy`: return NumPy arrays instead of torch tensors (torch is then not needed).

    **Returns** a dict name → tensor for `torch_module.load_state_dict`. BatchNorm's
    `num_batches_tracked` is written as 0; SimpleRNN/LSTM's `b` becomes `bias_ih` with
    a zero `bias_hh` (their sum is what both frameworks use).
    """
    model = _model(model)
    numpy = flag("numpy", numpy)
    shape = example_shape(input_shape, "(d1, ..., dk), one example without the batch axis")
    if not isinstance(params, Mapping) or not isinstance(state, Mapping):
        raise BadType(f"params and state must be dicts (from model.init or from_torch), got "
                      f"{describe_value(params)} and {describe_value(state)}.")
    host = jax.tree.map(np.asarray, (dict(params), dict(state)))
    if like is not None:
        arrays = _arrays(like, "like")
        pairs = [(site, module) for site, module, _ in _matched(model, *host, shape, arrays)]
    else:
        found = sites(model, *host, shape, model.input_dtype)
        pairs = [(site, _name(model, site)) for site in found]
    out: dict = {}
    for site, module in pairs:
        for key, value in converter(site).to_torch(site.params, site.state, site).items():
            out[f"{module}.{key}" if module else key] = value
    if like is not None:
        out = {k: out[k] for k in like if k in out}
    return {k: np.array(v, order="C") if numpy else _tensor(v) for k, v in out.items()}


def _name(model: Layer, site: Site) -> str:
    return torchvision_name(model.name, site) or default_name(site)
