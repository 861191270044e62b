"""Pictures for training runs and experiments (needs matplotlib: `pip install fnn[plot]`).

Every function writes a PNG to `path` (folders created) and returns the
`matplotlib.figure.Figure`. Figures are built without `pyplot` and rendered
with the Agg canvas, so nothing here changes the global matplotlib backend,
opens a window, or leaks figures; in a notebook the returned figure displays
itself. `import fnn` never imports matplotlib: this module imports it inside
each function. The PNG is exactly `figsize · dpi` pixels (no tight bbox).

    fnn.plot.training_curves(history, "out/curves.png")
    fnn.plot.decision_boundary(model, params, state, x, y, "out/boundary.png")
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn._atomic import atomic_file
from fnn._checks import BadType, BadValue, describe_value, named

__all__ = [
    "training_curves", "curves", "decision_boundary", "optimizer_trajectories",
    "activation_functions", "histograms", "image_grid",
]


def _figure(figsize, dpi):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fnn.plot needs matplotlib: pip install 'fnn[plot]' (or matplotlib)."
        ) from e
    return Figure(figsize=figsize, dpi=dpi)


def _save(fig, path, where: str):
    """Render `fig` to PNG, then replace `path` atomically: a failure (a renderer error,
    a full disk) leaves the previous picture whole."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    png = io.BytesIO()
    fig.savefig(png, dpi=fig.dpi, format="png")
    with atomic_file(path, f"fnn.plot.{where}") as f:
        f.write(png.getvalue())
    return fig


def _series(name: str, values) -> np.ndarray:
    """`values` as a 1-D float array; anything else is an error naming the series."""
    try:
        array = np.asarray(values, float)
    except (TypeError, ValueError):
        raise BadType(f"{name} must be a sequence of numbers, got "
                      f"{describe_value(values)}.") from None
    if array.ndim != 1:
        raise BadValue(f"{name} must be a 1-D sequence of numbers (one per epoch or step), "
                       f"got shape {array.shape}.")
    return array


def _grid(fig, n: int, ncols: int | None = None):
    ncols = min(n, ncols or math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return axes


# ---------------------------------------------------------------------------
# curves


def _is_history(h) -> bool:
    return isinstance(h, Mapping) and all(not isinstance(v, Mapping) for v in h.values())


@named("training_curves")
def training_curves(history, path, *, title: str | None = None, logy: bool = False,
                    figsize=(8.0, 3.2), dpi: int = 100):
    """Loss (and accuracy, if recorded) per epoch from a `fit` history.

    `history` is one run's dict of per-epoch lists (`"loss"`, `"val_loss"`,
    `"accuracy"`, `"val_accuracy"`) or a dict `{run name: history}` to compare
    runs (one colour per run; validation curves dashed). One panel per metric
    family: loss, then accuracy when present.
    """
    expected = ("expected a history dict of per-epoch lists (from fnn.train.fit) or a dict "
                "{run name: history}")
    if not isinstance(history, Mapping):
        raise BadType(f"{expected}, got {describe_value(history)}.")
    runs = {"": history} if _is_history(history) else dict(history)
    if not runs or not all(_is_history(h) for h in runs.values()):
        raise BadValue(f"{expected}.")
    families = [m for m in ("loss", "accuracy")
                if any(m in h or f"val_{m}" in h for h in runs.values())]
    if not families:
        raise BadValue(f"no 'loss' or 'accuracy' in the history; keys: "
                       f"{sorted({k for h in runs.values() for k in h})}.")
    series = {(name, key): _series(repr(key) if not name else f"{name!r}/{key!r}", h[key])
              for name, h in runs.items() for fam in families
              for key in (fam, f"val_{fam}") if key in h}
    if not any(v.size for v in series.values()):
        raise BadValue("the history holds no epochs yet (every list is empty).")
    fig = _figure(figsize, dpi)
    axes = _grid(fig, len(families), ncols=len(families))
    colors = [f"C{i}" for i in range(10)]
    for ax, fam in zip(axes, families, strict=True):
        for i, name in enumerate(runs):
            c = colors[i % len(colors)]
            for key, style in ((fam, "-"), (f"val_{fam}", "--")):
                values = series.get((name, key))
                if values is not None and values.size:
                    label = " ".join(s for s in (name, "val" if key.startswith("val") else
                                                 "train") if s)
                    ax.plot(np.arange(1, len(values) + 1), values, style, color=c, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(fam)
        if logy and fam == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, "training_curves")


@named("curves")
def curves(series: Mapping, path, *, xlabel: str = "step", ylabel: str = "loss",
           logy: bool = False, logx: bool = False, title: str | None = None,
           figsize=(6.0, 4.0), dpi: int = 100):
    """Line plots of several named series in one panel.

    `series` maps a label to `y` (plotted against 0, 1, 2, ...) or to a pair
    `(x, y)` (e.g. loss against examples seen).
    """
    if not isinstance(series, Mapping) or not series:
        raise BadValue(f"expected a non-empty dict {{label: y or (x, y)}}, got "
                       f"{describe_value(series)}.")
    lines = {}
    for label, s in series.items():
        if isinstance(s, tuple) and len(s) == 2:
            xs, ys = _series(f"series {label!r} x", s[0]), _series(f"series {label!r} y", s[1])
            if xs.shape != ys.shape:
                raise BadValue(f"series {label!r} has {xs.size} x values and {ys.size} y "
                               "values; they must pair up.")
        else:
            ys = _series(f"series {label!r}", s)
            xs = np.arange(len(ys))
        lines[label] = xs, ys
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    for label, (xs, ys) in lines.items():
        ax.plot(xs, ys, label=str(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, "curves")


# ---------------------------------------------------------------------------
# decision boundary


def _points_and_labels(x, y) -> tuple[np.ndarray, np.ndarray]:
    """2-D points `x (N, 2)` as float32 and class ids `y (N,)` (one-hot `(N, C)` is
    taken by its argmax), checked."""
    x, y = np.asarray(x, np.float32), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise BadValue(f"expected 2-D points x of shape (N, 2), got shape {x.shape}.")
    if not len(x):
        raise BadValue("x holds no points, got shape (0, 2).")
    if y.ndim == 2:
        y = np.argmax(y, axis=-1) if y.shape[1] > 1 else y[:, 0]
    if y.shape != (len(x),):
        raise BadValue(f"expected one label per point, y of shape ({len(x)},) (or one-hot "
                       f"({len(x)}, C)), got shape {y.shape}.")
    if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0:
        raise BadValue(f"y must hold class ids 0, 1, 2, ..., got values from {y.min()} to "
                       f"{y.max()}.")
    return x, y


@named("decision_boundary")
def decision_boundary(model, params, state, x, y, path, *, title=None, resolution: int = 200,
                      margin: float = 0.5, figsize=None, dpi: int = 100):
    """The decision regions of a 2-D classifier with the data on top.

    The model is evaluated (`train=False`) on a `resolution × resolution` grid
    covering `x` plus `margin`; the predicted class is the argmax of the
    outputs `(N, C)`, or `output > 0` for a single output `(N,)`/`(N, 1)`
    (logits). `model`, `params`, `state` (and `title`) may also be equal-length
    lists, one panel each (e.g. several hidden sizes side by side).
    """
    import matplotlib

    from fnn.core import Layer

    params_l = list(params) if isinstance(params, (list, tuple)) else [params]
    models = [model] * len(params_l) if isinstance(model, Layer) else list(model)
    states = list(state) if isinstance(state, (list, tuple)) else [state] * len(params_l)
    titles = list(title) if isinstance(title, (list, tuple)) else [title] * len(params_l)
    if not (len(models) == len(params_l) == len(states) == len(titles)):
        raise BadValue(f"model, params, state and title lists must have equal lengths, got "
                       f"{len(models)}, {len(params_l)}, {len(states)}, {len(titles)}.")
    x, y = _points_and_labels(x, y)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise BadValue(f"resolution must be an int >= 2 (grid points per axis), got "
                       f"{resolution!r}.")
    lo, hi = x.min(axis=0) - margin, x.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), jnp.float32)
    n = len(params_l)
    if figsize is None:
        ncols = min(n, 4)
        figsize = (3.2 * ncols, 3.2 * math.ceil(n / ncols))
    fig = _figure(figsize, dpi)
    axes = _grid(fig, n, ncols=min(n, 4))
    for ax, m, p, s, t in zip(axes, models, params_l, states, titles, strict=True):
        out = np.asarray(jax.jit(lambda p, s, m=m: m.apply(p, s, grid)[0])(p, s))
        if out.ndim == 2 and out.shape[1] > 1:
            cls = np.argmax(out, axis=1)
        else:
            cls = (out.reshape(out.shape[0]) > 0).astype(int)
        k = max(int(max(cls.max(), y.max())) + 1, 2)
        colors = matplotlib.colormaps["Spectral"](np.linspace(0.0, 1.0, k))  # one per class
        ax.contourf(gx, gy, cls.reshape(gx.shape), levels=np.arange(k + 1) - 0.5,
                    colors=colors, alpha=0.35)
        ax.scatter(x[:, 0], x[:, 1], c=colors[y.astype(int)], s=8, edgecolors="k",
                   linewidths=0.3)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xticks([])
        ax.set_yticks([])
        if t:
            ax.set_title(t, fontsize="medium")
    fig.tight_layout()
    return _save(fig, path, "decision_boundary")


# ---------------------------------------------------------------------------
# optimizer trajectories


@named("optimizer_trajectories")
def optimizer_trajectories(f: Callable, trajectories: Mapping, path, *, xlim=None, ylim=None,
                           levels: int = 30, resolution: int = 200, title: str | None = None,
                           figsize=(6.0, 4.5), dpi: int = 100):
    """Paths of optimizers over the contours of a 2-D function.

    `f(p) -> scalar` for a point `p: (2,)` (evaluated on a grid with `vmap`);
    `trajectories` maps an optimizer name to its iterates `(T, 2)`. Contour
    levels are log-spaced (good for ravines and Rosenbrock). The plotted window
    covers all trajectories unless `xlim`/`ylim` are given.
    """
    trajs = {k: np.asarray(v, float) for k, v in trajectories.items()}
    for name, t in trajs.items():
        if t.ndim != 2 or t.shape[1] != 2:
            raise BadValue(f"trajectory {name!r} must have shape (T, 2), got {t.shape}.")
    pts = np.concatenate(list(trajs.values())) if trajs else np.zeros((1, 2))
    pts = pts[np.all(np.isfinite(pts), axis=1)]  # a diverged run ends in inf/NaN: not framed
    if not len(pts):
        raise BadValue("no trajectory has a finite point to plot.")
    span = np.maximum(pts.max(0) - pts.min(0), 1e-3)
    if xlim is None:
        xlim = (pts[:, 0].min() - 0.1 * span[0], pts[:, 0].max() + 0.1 * span[0])
    if ylim is None:
        ylim = (pts[:, 1].min() - 0.1 * span[1], pts[:, 1].max() + 0.1 * span[1])
    gx, gy = np.meshgrid(np.linspace(*xlim, resolution), np.linspace(*ylim, resolution))
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), jnp.float32)
    z = np.asarray(jax.vmap(f)(grid), float).reshape(gx.shape)
    fig = _figure(figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    zmin = z.min()
    lv = zmin + np.geomspace(1e-3, 1.0, levels) * max(z.max() - zmin, 1e-12)
    ax.contour(gx, gy, z, levels=np.unique(lv), cmap="viridis", linewidths=0.7, alpha=0.6)
    for i, (name, t) in enumerate(trajs.items()):
        ax.plot(t[:, 0], t[:, 1], "-", color=f"C{i % 10}", lw=1.4, label=name)
        ax.plot(t[-1, 0], t[-1, 1], "o", color=f"C{i % 10}", ms=4)
    if trajs:
        first = next(iter(trajs.values()))
        ax.plot(first[0, 0], first[0, 1], "k*", ms=9)
        ax.legend(fontsize="small")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path, "optimizer_trajectories")


# ---------------------------------------------------------------------------
# activations and histograms


def activation_functions(path, *, names: Sequence[str] = ("sigmoid", "tanh", "relu",
                                                           "leaky_relu", "elu"),
                         xlim=(-4.0, 4.0), figsize=(8.0, 3.2), dpi: int = 100):
    """The activation functions (left) and their derivatives from `jax.grad` (right).

    `names` are `fnn.activations` names (or a dict `{label: function}`).
    """
    from fnn import activations

    funcs = dict(names) if isinstance(names, Mapping) else {
        n: activations.get(n) for n in names}
    xs = jnp.linspace(xlim[0], xlim[1], 401)
    fig = _figure(figsize, dpi)
    ax_f, ax_d = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (name, fn) in enumerate(funcs.items()):
        ys = np.asarray(fn(xs))
        ds = np.asarray(jax.jit(jax.vmap(jax.grad(lambda v, fn=fn: fn(v))))(xs))
        ax_f.plot(np.asarray(xs), ys, color=f"C{i}", label=name)
        ax_d.plot(np.asarray(xs), ds, color=f"C{i}", label=name)
    ax_f.set_title("f(x)")
    ax_d.set_title("f'(x)")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
        ax.set_xlabel("x")
    ax_f.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path, "activation_functions")


@named("histograms")
def histograms(arrays: Mapping, path, *, bins: int = 50, ncols: int | None = None,
               title: str | None = None, sharex: bool = False, figsize=None, dpi: int = 100):
    """One histogram per named array (e.g. per-layer activations or gradients).

    Each panel is titled with the name and the array's mean and std. With
    `sharex=True` all panels use the same range (to see a distribution shrink
    through depth).
    """
    arrays = {str(k): np.asarray(v, float).ravel() for k, v in arrays.items()}
    if not arrays:
        raise BadValue("expected a non-empty dict {name: array}.")
    empty = [k for k, a in arrays.items() if not a.size]
    if empty:
        raise BadValue(f"array {empty[0]!r} is empty; every array needs at least one value.")
    n = len(arrays)
    ncols = min(n, ncols or min(n, 5))
    nrows = math.ceil(n / ncols)
    fig = _figure(figsize or (2.6 * ncols, 2.2 * nrows + (0.4 if title else 0.0)), dpi)
    axes = _grid(fig, n, ncols)
    rng = None
    if sharex:
        lo = min(float(a.min()) for a in arrays.values() if a.size)
        hi = max(float(a.max()) for a in arrays.values() if a.size)
        rng = (lo, hi) if hi > lo else None
    for ax, (name, a) in zip(axes, arrays.items(), strict=True):
        ax.hist(a, bins=bins, range=rng, color="C0", alpha=0.8)
        ax.set_title(f"{name}\nmean {a.mean():.3g}, std {a.std():.3g}", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, "histograms")


@named("image_grid")
def image_grid(images, path, *, titles: Sequence[str] | None = None, ncols: int | None = None,
               cmap: str = "gray", symmetric: bool = False, colorbar: bool = False,
               title: str | None = None, figsize=None, dpi: int = 100):
    """A grid of 2-D images `(K, H, W)` (or a list of matrices of any sizes).

    `symmetric=True` centres the colour scale on 0 (covariance matrices with
    `cmap="RdBu_r"`); `colorbar=True` adds one per panel.
    """
    images = [np.asarray(im, float) for im in images]
    if not images or any(im.ndim != 2 for im in images):
        raise BadValue("expected a non-empty list of 2-D arrays (K, H, W).")
    n = len(images)
    ncols = min(n, ncols or min(n, 8))
    nrows = math.ceil(n / ncols)
    fig = _figure(figsize or (1.6 * ncols, 1.6 * nrows + (0.4 if title else 0.0)), dpi)
    axes = _grid(fig, n, ncols)
    for i, (ax, im) in enumerate(zip(axes, images, strict=True)):
        kw = {}
        if symmetric:
            v = float(np.abs(im).max()) or 1.0
            kw = {"vmin": -v, "vmax": v}
        shown = ax.imshow(im, cmap=cmap, interpolation="nearest", **kw)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize="small")
        if colorbar:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, "image_grid")
