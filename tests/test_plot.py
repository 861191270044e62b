"""Every plotting function writes a non-empty PNG of the expected pixel size."""
import subprocess
import sys

import jax
import numpy as np
import pytest

import fnn

pytest.importorskip("matplotlib")
import matplotlib.image as mpimg  # noqa: E402

from fnn import plot  # noqa: E402


def _check_png(fig, path, width, height):
    assert path.stat().st_size > 1000
    img = mpimg.imread(path)
    assert img.shape[:2] == (height, width)
    assert img.std() > 0  # something was drawn
    assert tuple(fig.get_size_inches() * fig.dpi) == (width, height)


def test_training_curves_single_and_several_runs(tmp_path):
    h = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6],
         "accuracy": [0.3, 0.6, 0.8], "val_accuracy": [0.3, 0.5, 0.7]}
    fig = plot.training_curves(h, tmp_path / "a.png", figsize=(6, 3), dpi=50)
    _check_png(fig, tmp_path / "a.png", 300, 150)
    assert len(fig.axes) == 2
    fig = plot.training_curves({"relu": {"loss": [2, 1]}, "tanh": {"loss": [2, 1.5]}},
                               tmp_path / "sub" / "b.png", logy=True, dpi=40)
    _check_png(fig, tmp_path / "sub" / "b.png", 320, 128)
    with pytest.raises(ValueError, match="training_curves: no 'loss' or 'accuracy'"):
        plot.training_curves({"lr": [0.1]}, tmp_path / "c.png")


def test_decision_boundary_one_and_several_panels(tmp_path):
    model = fnn.models.mlp([6, 3])
    params, state = model.init(jax.random.key(0), (2,))
    x, y = fnn.datasets.spiral(jax.random.key(1), num_per_class=20, num_classes=3)
    fig = plot.decision_boundary(model, params, state, x, y, tmp_path / "d.png",
                                 resolution=40, figsize=(4, 4), dpi=50)
    _check_png(fig, tmp_path / "d.png", 200, 200)
    params2, _ = model.init(jax.random.key(2), (2,))
    fig = plot.decision_boundary(model, [params, params2], state, x, y, tmp_path / "e.png",
                                 title=["a", "b"], resolution=40, dpi=50)
    _check_png(fig, tmp_path / "e.png", 320, 160)
    binary = fnn.models.mlp([4, 1])
    pb, sb = binary.init(jax.random.key(3), (2,))
    fig = plot.decision_boundary(binary, pb, sb, x, (y > 0).astype(int), tmp_path / "f.png",
                                 resolution=30, figsize=(3, 3), dpi=40)
    _check_png(fig, tmp_path / "f.png", 120, 120)


def test_optimizer_trajectories(tmp_path):
    traj = {"sgd": np.array([[1.0, 1.0], [0.6, 0.3], [0.2, 0.05]]),
            "adam": np.array([[1.0, 1.0], [0.9, 0.9]])}
    fig = plot.optimizer_trajectories(lambda p: p[0] ** 2 + 10 * p[1] ** 2, traj,
                                      tmp_path / "t.png", resolution=50, figsize=(5, 4), dpi=60)
    _check_png(fig, tmp_path / "t.png", 300, 240)
    with pytest.raises(ValueError, match="trajectory 'bad' must have shape \\(T, 2\\)"):
        plot.optimizer_trajectories(lambda p: p[0], {"bad": np.zeros((3, 3))}, tmp_path / "x.png")


def test_activation_functions(tmp_path):
    fig = plot.activation_functions(tmp_path / "act.png", figsize=(6, 2.5), dpi=60)
    _check_png(fig, tmp_path / "act.png", 360, 150)
    assert len(fig.axes[0].lines) >= 5


def test_histograms_curves_and_image_grid(tmp_path):
    rng = np.random.default_rng(0)
    fig = plot.histograms({"layer 1": rng.normal(size=500), "layer 2": rng.normal(size=200)},
                          tmp_path / "h.png", figsize=(5, 2), dpi=60, sharex=True)
    _check_png(fig, tmp_path / "h.png", 300, 120)
    fig = plot.curves({"a": [3, 2, 1], "b": ([0, 10, 20], [3, 1, 0.5])}, tmp_path / "c.png",
                      logy=True, figsize=(4, 3), dpi=50)
    _check_png(fig, tmp_path / "c.png", 200, 150)
    fig = plot.image_grid(rng.normal(size=(3, 6, 6)), tmp_path / "i.png", titles=["x", "y", "z"],
                          cmap="RdBu_r", symmetric=True, colorbar=True, figsize=(6, 2), dpi=50)
    _check_png(fig, tmp_path / "i.png", 300, 100)


def test_import_fnn_does_not_import_matplotlib():
    code = "import sys, fnn; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
