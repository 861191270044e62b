"""The research examples run end to end in their --quick smoke mode and write their PNGs."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "activations_compare": ["loss_curves.png", "activation_functions.png"],
    "init_compare": ["std_per_layer.png", "hist_tanh_small_random.png"],
    "optimizers_compare": ["ravine_trajectories.png", "digits_loss.png"],
    "learning_rates": ["learning_rates.png"],
    "regularization": ["curves.png", "boundaries.png"],
    "gd_modes": ["loss_vs_updates.png", "loss_vs_examples.png"],
    "planar_flower": ["boundaries.png"],
    "pca_whitening": ["explained_variance.png", "reconstructions.png", "covariance.png"],
}
NEEDS_SKLEARN = {"optimizers_compare", "pca_whitening"}  # fnn.datasets.digits()

pytestmark = pytest.mark.slow
pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_quick(name, tmp_path):
    if name in NEEDS_SKLEARN and importlib.util.find_spec("sklearn") is None:
        pytest.skip("needs scikit-learn for fnn.datasets.digits()")
    # a smoke test: skip most XLA optimisations, compiling dominates these tiny runs
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip(), "the example printed nothing"
    for png in EXAMPLES[name]:
        path = tmp_path / png
        assert path.is_file() and path.stat().st_size > 1000, f"{png} missing or empty"


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="needs scikit-learn for fnn.datasets.digits()")
def test_dp_sgd_quick_learns_despite_clipping_and_noise(tmp_path):
    """examples/dp_sgd.py (issue 29): 3 epochs of DP-SGD beat chance (10 %) by far."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "dp_sgd.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracy = float(out.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1])
    assert 0.6 < accuracy <= 1.0, out.stdout
