"""Every plotting function writes a non-empty PNG of the expected pixel size."""
import os
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


@pytest.mark.parametrize("history, exc, match", [
    (None, TypeError, r"training_curves: expected a history dict .*got None"),
    ([0.5, 0.3], TypeError, r"training_curves: expected a history dict .*got \[0.5, 0.3\]"),
    ({"loss": [], "val_loss": []}, ValueError, "the history holds no epochs yet"),
    ({"loss": ["low"]}, TypeError, r"'loss' must be a sequence of numbers, got \['low'\]"),
    ({"loss": 0.5}, ValueError, r"'loss' must be a 1-D sequence of numbers .*shape \(\)"),
    ({"a": {"loss": [[1, 2], [3, 4]]}}, ValueError, r"'a'/'loss' must be a 1-D sequence"),
])
def test_training_curves_rejects_bad_histories(tmp_path, history, exc, match):
    with pytest.raises(exc, match=match):
        plot.training_curves(history, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_training_curves_draws_nan_losses_as_gaps(tmp_path):
    fig = plot.training_curves({"loss": [1.0, float("nan"), 0.5]}, tmp_path / "n.png", dpi=40)
    _check_png(fig, tmp_path / "n.png", 320, 128)


def test_curves_and_histograms_reject_what_they_cannot_draw(tmp_path):
    with pytest.raises(ValueError, match=r"curves: expected a non-empty dict"):
        plot.curves({}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"curves: series 'a' has 2 x values and 3 y values"):
        plot.curves({"a": ([0, 1], [3, 2, 1])}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"histograms: array 'b' is empty"):
        plot.histograms({"a": [1.0], "b": []}, tmp_path / "h.png", sharex=True)


def test_a_failed_render_keeps_the_previous_picture(tmp_path, request):
    path = tmp_path / "c.png"
    plot.curves({"a": [3, 2, 1]}, path, dpi=40)
    before = path.read_bytes()
    request.getfixturevalue("crashing_savefig")  # from here on, every render fails
    with pytest.raises(RuntimeError, match="renderer crashed"):
        plot.curves({"a": [1, 2, 3]}, path, dpi=40)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.png"]


def test_a_folder_as_path_is_a_clear_error(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"fnn.plot.curves: .* is a folder"):
        plot.curves({"a": [1, 2]}, tmp_path)


def test_optimizer_trajectories_frames_a_diverged_run_by_its_finite_points(tmp_path):
    traj = {"sgd": np.array([[1.0, 1.0], [3.0, -3.0], [np.inf, np.nan]]),
            "adam": np.array([[1.0, 1.0], [0.5, 0.5]])}
    fig = plot.optimizer_trajectories(lambda p: p[0] ** 2 + p[1] ** 2, traj, tmp_path / "t.png",
                                      resolution=20, figsize=(4, 3), dpi=40)
    _check_png(fig, tmp_path / "t.png", 160, 120)
    assert fig.axes[0].get_xlim()[1] < 4
    with pytest.raises(ValueError, match="no trajectory has a finite point"):
        plot.optimizer_trajectories(lambda p: p[0], {"a": np.full((2, 2), np.nan)},
                                    tmp_path / "n.png")


@pytest.mark.parametrize("x, y, kwargs, match", [
    (np.zeros((4, 2)), np.array([0, 1, -1, 0]), {}, r"y must hold class ids .*from -1 to 1"),
    (np.zeros((4, 2)), np.array([0, 1, 0]), {}, r"expected one label per point, y of shape \(4,\)"),
    (np.zeros((4, 2)), np.array([0.5, 1, 0, 0]), {}, r"y must hold class ids"),
    (np.zeros((4, 2)), np.zeros(4, int), {"resolution": 1}, r"resolution must be an int >= 2"),
    (np.zeros((0, 2)), np.zeros(0, int), {}, r"x holds no points"),
])
def test_decision_boundary_rejects_bad_labels_and_grids(tmp_path, x, y, kwargs, match):
    model = fnn.models.mlp([3])
    params, state = model.init(jax.random.key(0), (2,))
    with pytest.raises(ValueError, match="^decision_boundary: " + match):
        plot.decision_boundary(model, params, state, x, y, tmp_path / "d.png", **kwargs)
