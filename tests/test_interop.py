"""`fnn.interop.from_torch` / `to_torch` on every layer with a PyTorch twin.

For each layer: a torch module with random weights (BatchNorm: random running
statistics too) is converted to fnn and both run on the same input (fnn channels-last,
torch channels-first), outputs equal to float32 tolerance; the round trips
fnn → torch → fnn and torch → fnn → torch are bit-exact (torch's two recurrent
biases of RNN/LSTM aside, whose sum fnn keeps: checked as such). Then a whole
`nn.Sequential` CNN with a Flatten (torch flattens (C, H, W), fnn (H, W, C)), the
registry, and the bad-input rows.
"""
from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fnn  # noqa: E402
from fnn import layers as L  # noqa: E402
from fnn.interop import CONVERTERS, Converter, from_torch, register, to_torch  # noqa: E402

KEY = jax.random.PRNGKey(0)


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and buffer of `module` drawn at random (variances positive)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.5 * torch.randn(t.shape, generator=g))
    return module.eval()


def _nchw(x):
    return torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy())


def _nhwc(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def _seq(x):
    return torch.from_numpy(np.asarray(x).copy())


def _same(t):
    return t.detach().numpy()


def _first(out):
    return out[0]


# id: (fnn layer, example shape, torch module, to torch input, torch output to fnn layout)
TWINS = {
    "Dense": (lambda: L.Dense(5), (4,), lambda: nn.Linear(4, 5), _seq, _same),
    "Dense-no-bias": (lambda: L.Dense(5, use_bias=False), (4,),
                      lambda: nn.Linear(4, 5, bias=False), _seq, _same),
    "Conv2D": (lambda: L.Conv2D(6, 3, stride=2, padding=1), (7, 7, 3),
               lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1), _nchw, _nhwc),
    "Conv2D-no-bias": (lambda: L.Conv2D(4, (3, 2), padding="VALID", use_bias=False), (6, 5, 2),
                       lambda: nn.Conv2d(2, 4, (3, 2), bias=False), _nchw, _nhwc),
    "BatchNorm2d": (lambda: L.BatchNorm(), (4, 4, 3), lambda: nn.BatchNorm2d(3), _nchw, _nhwc),
    "BatchNorm1d": (lambda: L.BatchNorm(), (5,), lambda: nn.BatchNorm1d(5), _seq, _same),
    "LayerNorm": (lambda: L.LayerNorm(), (3, 6), lambda: nn.LayerNorm(6), _seq, _same),
    "PReLU": (lambda: L.PReLU(), (4, 4, 3), lambda: nn.PReLU(3), _nchw, _nhwc),
    "SimpleRNN": (lambda: L.SimpleRNN(5, return_sequences=True), (4, 3),
                  lambda: nn.RNN(3, 5, batch_first=True), _seq, lambda o: _same(o[0])),
    "LSTM": (lambda: L.LSTM(5, return_sequences=True), (4, 3),
             lambda: nn.LSTM(3, 5, batch_first=True), _seq, lambda o: _same(o[0])),
    "GRU": (lambda: L.GRU(5, return_sequences=True), (4, 3),
            lambda: nn.GRU(3, 5, batch_first=True), _seq, lambda o: _same(o[0])),
    "Bidirectional-LSTM": (lambda: L.Bidirectional(L.LSTM(5, return_sequences=True)), (4, 3),
                           lambda: nn.LSTM(3, 5, batch_first=True, bidirectional=True), _seq,
                           lambda o: _same(o[0])),
    "Bidirectional-GRU": (lambda: L.Bidirectional(L.GRU(4, return_sequences=True)), (4, 3),
                          lambda: nn.GRU(3, 4, batch_first=True, bidirectional=True), _seq,
                          lambda o: _same(o[0])),
    "Bidirectional-SimpleRNN": (lambda: L.Bidirectional(L.SimpleRNN(4)), (4, 3),
                                lambda: nn.RNN(3, 4, batch_first=True, bidirectional=True),
                                _seq, lambda o: np.concatenate(
                                    [_same(o[1][0]), _same(o[1][1])], axis=-1)),
}
class _SelfAttention(nn.MultiheadAttention):
    """torch's attention as a one-input module (its state_dict keys unchanged)."""

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


# The 0.2 layers (API.md §6.1), from the branches that add them: tested once they are in
# fnn.layers (each is one entry of fnn.interop.CONVERTERS already).
if hasattr(L, "Conv1D") and hasattr(L, "ConvTranspose2D"):
    TWINS.update({
        "Conv1D-groups": (lambda: L.Conv1D(4, 3, groups=2, padding="VALID"), (7, 4),
                          lambda: nn.Conv1d(4, 4, 3, groups=2), _nchw, _nhwc),
        "Conv2D-depthwise": (lambda: L.Conv2D(6, 3, groups=3, padding=1), (5, 5, 3),
                             lambda: nn.Conv2d(3, 6, 3, padding=1, groups=3), _nchw, _nhwc),
        "Conv3D": (lambda: L.Conv3D(3, 2, stride=2, padding="VALID"), (4, 4, 4, 2),
                   lambda: nn.Conv3d(2, 3, 2, stride=2), _nchw, _nhwc),
        "ConvTranspose1D": (lambda: L.ConvTranspose1D(3, 3, stride=2, padding=1), (5, 2),
                            lambda: nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1), _nchw,
                            _nhwc),
        "ConvTranspose2D": (lambda: L.ConvTranspose2D(3, 3, stride=2, padding=1,
                                                      output_padding=1), (4, 4, 2),
                            lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1,
                                                       output_padding=1), _nchw, _nhwc),
        "ConvTranspose3D": (lambda: L.ConvTranspose3D(2, 2, stride=2), (3, 3, 3, 2),
                            lambda: nn.ConvTranspose3d(2, 2, 2, stride=2), _nchw, _nhwc),
    })
if hasattr(L, "GroupNorm") and hasattr(L, "RMSNorm"):
    TWINS.update({
        "GroupNorm": (lambda: L.GroupNorm(2), (4, 4, 6), lambda: nn.GroupNorm(2, 6), _nchw,
                      _nhwc),
        "InstanceNorm": (lambda: L.InstanceNorm(), (4, 4, 3),
                         lambda: nn.InstanceNorm2d(3, affine=True), _nchw, _nhwc),
        "RMSNorm": (lambda: L.RMSNorm(), (3, 6), lambda: nn.RMSNorm(6, eps=1e-6), _seq, _same),
        "LayerNorm-no-bias": (lambda: L.LayerNorm(use_bias=False), (3, 6),
                              lambda: nn.LayerNorm(6, bias=False), _seq, _same),
    })
if hasattr(L, "MultiHeadAttention"):
    TWINS["MultiHeadAttention"] = (lambda: L.MultiHeadAttention(2), (5, 8),
                                   lambda: _SelfAttention(8, 2, batch_first=True), _seq, _same)

# torch's RNN/LSTM biases bias_ih + bias_hh become one fnn `b`: exact only as a sum
_SUMMED = ("SimpleRNN", "LSTM", "Bidirectional-LSTM", "Bidirectional-SimpleRNN")


def _assert_exact(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
    assert jax.tree.structure(a) == jax.tree.structure(b)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_torch_weights_give_torch_outputs(name):
    make, shape, make_torch, to_input, from_output = TWINS[name]
    layer, module = make(), _randomize(make_torch())
    params, state = from_torch(layer, module.state_dict(), shape)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (3, *shape)), np.float32)
    y, _ = layer.apply(params, state, x)
    with torch.no_grad():
        expected = from_output(module(to_input(x)))
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_round_trip_from_fnn_is_exact(name):
    make, shape, make_torch, *_ = TWINS[name]
    layer = make()
    params, state = layer.init(KEY, shape)
    state_dict = to_torch(layer, params, state, shape)
    make_torch().load_state_dict(state_dict)   # the names and shapes torch expects
    _assert_exact(from_torch(layer, state_dict, shape), (params, state))


@pytest.mark.parametrize("name", sorted(TWINS))
def test_round_trip_from_torch_is_exact(name):
    make, shape, make_torch, *_ = TWINS[name]
    layer, module = make(), _randomize(make_torch())
    original = module.state_dict()
    back = to_torch(layer, *from_torch(layer, original, shape), shape)
    assert list(back) == list(original)
    for key, t in original.items():
        if name in _SUMMED and "bias" in key:
            continue
        assert back[key].dtype == t.dtype and torch.equal(back[key], t), key
    if name in _SUMMED:  # what both frameworks compute with: bias_ih + bias_hh
        for key in (k for k in original if k.startswith("bias_ih")):
            hh = key.replace("bias_ih", "bias_hh")
            torch.testing.assert_close(back[key] + back[hh], original[key] + original[hh],
                                       rtol=0, atol=0)


def test_embedding_twin():
    layer, module = L.Embedding(7, 3), _randomize(nn.Embedding(7, 3))
    params, state = from_torch(layer, module.state_dict(), (5,))
    ids = np.array([[0, 6, 3, 3, 1]], np.int32)
    y, _ = layer.apply(params, state, ids)
    np.testing.assert_array_equal(np.asarray(y), module(torch.from_numpy(ids).long()).detach())
    _assert_exact(to_torch(layer, params, state, (5,), numpy=True), {"weight": module.weight
                                                                    .detach().numpy()})


class _CNN(nn.Module):
    """An `nn.Sequential` twin of the fnn model below, flattening (C, H, W)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 3 * 3, 5),
            nn.Tanh(), nn.Linear(5, 4))

    def forward(self, x):
        return self.body(x)


def _fnn_cnn():
    return fnn.serial(L.Conv2D(4, 3, padding=1), L.BatchNorm(), fnn.relu, L.MaxPool(2),
                      L.Conv2D(3, 3, padding=1), fnn.relu, L.Flatten(), L.Dense(5), fnn.tanh,
                      L.Dense(4))


def test_sequential_model_with_flatten_matches_torch():
    module, model, shape = _randomize(_CNN()).body, _fnn_cnn(), (6, 6, 2)
    params, state = from_torch(model, module.state_dict(), shape)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (4, *shape)), np.float32)
    with torch.no_grad():
        expected = module(_nchw(x)).numpy()
    np.testing.assert_allclose(np.asarray(model.apply(params, state, x)[0]), expected,
                               rtol=1e-5, atol=1e-5)
    # without the name-free order match: to_torch names an nn.Sequential's modules
    back = to_torch(model, params, state, shape)
    assert list(back) == list(module.state_dict())
    for key, t in module.state_dict().items():
        assert torch.equal(back[key], t), key


def test_like_gives_the_twins_names_and_order():
    module, model, shape = _randomize(_CNN()), _fnn_cnn(), (6, 6, 2)
    params, state = from_torch(model, module.state_dict(), shape)  # names "body.0.weight"
    back = to_torch(model, params, state, shape, like=module.state_dict())
    assert list(back) == list(module.state_dict())
    module.load_state_dict(back)


def test_numpy_state_dict_and_float64_are_accepted():
    module = _randomize(nn.Linear(3, 2))
    arrays = {k: v.double().numpy() for k, v in module.state_dict().items()}
    params, _ = from_torch(L.Dense(2), arrays, (3,))
    assert params["w"].dtype == np.float32
    np.testing.assert_array_equal(params["w"], module.weight.detach().numpy().T)


def test_bfloat16_tensors():
    module = nn.Linear(3, 2).to(torch.bfloat16)
    params, _ = from_torch(L.Dense(2), module.state_dict(), (3,))
    np.testing.assert_array_equal(np.asarray(params["w"]), module.weight.detach().float().numpy().T)


def test_registry_has_one_entry_per_kind_and_takes_new_ones():
    assert {"Dense", "Conv1D", "Conv2D", "Conv3D", "ConvTranspose2D", "BatchNorm", "LayerNorm",
            "GroupNorm", "RMSNorm", "Embedding", "PReLU", "SimpleRNN", "LSTM", "GRU",
            "Bidirectional", "MultiHeadAttention"} <= set(CONVERTERS)
    scale = fnn.Layer(lambda k, s: ({"s": np.ones(s[-1:], np.float32)}, {}),
                      lambda p, s, x, **kw: (x * p["s"], s), "Scale")
    register("Scale", Converter(("gain",), lambda t, site: ({"s": t["gain"]}, {}),
                                lambda p, s, site: {"gain": p["s"]}))
    try:
        params, _ = from_torch(scale, {"gain": torch.full((3,), 2.0)}, (3,))
        np.testing.assert_array_equal(params["s"], [2.0, 2.0, 2.0])
    finally:
        del CONVERTERS["Scale"]


def test_import_fnn_interop_does_not_import_torch():
    code = ("import sys, fnn.interop; bad = [m for m in ('torch', 'safetensors') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------------
# bad input

def _resnet_block_mismatch():
    model = fnn.serial(L.Conv2D(4, 3), L.BatchNorm(), L.Dense(2))
    sd = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 3)).state_dict()
    from_torch(model, sd, (5, 5, 2))


BAD_INPUT = [
    ("model-not-a-layer", lambda: from_torch(nn.Linear(2, 2), {}, (2,)), TypeError,
     r"from_torch: model must be a fnn.Layer, got"),
    ("state-dict-not-a-mapping", lambda: from_torch(L.Dense(2), [1, 2], (2,)), TypeError,
     r"from_torch: state_dict must be a mapping of names to tensors .*got"),
    ("value-not-a-tensor", lambda: from_torch(L.Dense(2), {"weight": "w"}, (2,)), TypeError,
     r"from_torch: state_dict\['weight'\] must be a torch tensor or an array"),
    ("bad-input-shape", lambda: from_torch(L.Dense(2), nn.Linear(2, 2).state_dict(), 2),
     TypeError, r"from_torch: input_shape must be a tuple"),
    ("shape-mismatch-names-both", lambda: from_torch(
        fnn.serial(L.Dense(3), L.Dense(2)),
        nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2)).state_dict(), (4,)), ValueError,
     r"from_torch: fnn layer '1_Dense' \(Dense\) and torch module '1' do not match: torch "
     r"'weight' has shape \(2, 5\), the fnn layer needs \(2, 3\)"),
    ("kind-mismatch", lambda: from_torch(fnn.serial(L.Dense(3), L.BatchNorm()),
                                         nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
                                         .state_dict(), (4,)), ValueError,
     r"from_torch: fnn layer '1_BatchNorm' \(BatchNorm\) and torch module '1' do not match: "
     r"the torch module has no 'running_mean'"),
    ("conv-vs-linear", _resnet_block_mismatch, ValueError,
     r"fnn layer '2_Dense' \(Dense\) and torch module '2' do not match: torch 'weight' has "
     r"shape \(3, 4\), the fnn layer needs \(2, 4\)"),
    ("extra-bias", lambda: from_torch(L.Dense(2, use_bias=False), nn.Linear(3, 2).state_dict(),
                                      (3,)), ValueError,
     r"the torch module has 'bias' of shape \(2,\), which the fnn layer has no twin for"),
    ("torch-has-more-modules", lambda: from_torch(
        L.Dense(3), nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)).state_dict(), (4,)),
     ValueError, r"the torch state_dict has modules left .* from '1.weight'"),
    ("fnn-has-more-layers", lambda: from_torch(
        fnn.serial(L.Dense(3), L.Dense(2)), nn.Linear(4, 3).state_dict(), (4,)), ValueError,
     r"the torch state_dict has no module left for fnn layer '1_Dense' \(Dense\)"),
    ("unknown-key-of-module", lambda: from_torch(
        L.LSTM(3), nn.LSTM(2, 3, num_layers=2).state_dict(), (4, 2)), ValueError,
     r"fnn layer '\(the model\)' \(LSTM\) does not match torch module '\(the root module\)': "
     r"its key 'weight_ih_l1' has no twin in fnn's LSTM"),
    ("key-of-another-kind", lambda: from_torch(L.Embedding(5, 2), nn.BatchNorm1d(2)
                                               .state_dict(), (3,)), ValueError,
     r"\(Embedding\) does not match torch module '\(the root module\)': its key 'bias' has no "
     r"twin in fnn's Embedding \(whose twin has weight\)"),
    ("first-key-of-another-kind", lambda: from_torch(L.Dense(2), {"running_mean": np.zeros(2)},
                                                     (3,)), ValueError,
     r"\(Dense\) does not match torch module '\(the root module\)': its key 'running_mean' is "
     r"none of those of the twin of fnn's Dense \(weight, bias\)"),
    ("no-converter", lambda: from_torch(L.Maxout(2), {"weight": np.zeros((4, 2))}, (3,)),
     ValueError, r"fnn layer '\(the model\)' \(Maxout\) has no PyTorch converter; convertible "
                 r"kinds: .*fnn.interop.register"),
    ("rnn-without-bias", lambda: from_torch(L.GRU(3), nn.GRU(2, 3, bias=False).state_dict(),
                                            (4, 2)), ValueError,
     r"the torch module has no 'bias_ih_l0'"),
    ("to-torch-model", lambda: to_torch("model", {}, {}, (2,)), TypeError,
     r"to_torch: model must be a fnn.Layer, got"),
    ("to-torch-params", lambda: to_torch(L.Dense(2), [1], {}, (2,)), TypeError,
     r"to_torch: params and state must be dicts"),
    ("to-torch-numpy-flag", lambda: to_torch(L.Dense(2), *L.Dense(2).init(KEY, (3,)), (3,),
                                             numpy="yes"), TypeError, r"to_torch: numpy must be"),
    ("to-torch-like-mismatch", lambda: to_torch(L.Dense(2), *L.Dense(2).init(KEY, (3,)), (3,),
                                                like=nn.Linear(4, 2).state_dict()), ValueError,
     r"to_torch: fnn layer .* torch 'weight' has shape \(2, 4\), the fnn layer needs \(2, 3\)"),
    ("register-bad", lambda: register("X", object()), ValueError,
     r"register\(kind: str, converter: Converter\)"),
]


@pytest.mark.parametrize("trigger, exc, match", [pytest.param(*c[1:], id=c[0])
                                                 for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()


# ---------------------------------------------------------------------------
# the layouts of API.md, for any sizes

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_sizes = st.integers(1, 4)


@settings(max_examples=10, deadline=None)
@given(kh=_sizes, kw=_sizes, cin=_sizes, cout=_sizes, dense_out=_sizes)
def test_layouts_are_api_md_s_for_any_sizes(kh, kw, cin, cout, dense_out):
    """Conv2D `w = weight.transpose(2, 3, 1, 0)`; a Dense after a Flatten of `(H, W, C)`
    reads torch's `(C, H, W)` columns: row `(h, w, c)` of fnn's `w` = column
    `c·H·W + h·W + w` of torch's weight."""
    model = fnn.serial(L.Conv2D(cout, (kh, kw), padding="SAME"), L.Flatten(),
                       L.Dense(dense_out))
    shape = (3, 2, cin)
    rng = np.random.default_rng(kh * 1000 + kw * 100 + cin * 10 + cout)
    params, state = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype),
                                 jax.eval_shape(lambda: model.init(KEY, shape)))
    sd = to_torch(model, params, state, shape, numpy=True)
    w = np.asarray(params["0_Conv2D"]["w"])
    np.testing.assert_array_equal(sd["0.weight"], w.transpose(3, 2, 0, 1))
    dense = np.asarray(params["2_Dense"]["w"])
    h, wd, c = 3, 2, cout
    for i, j, k in np.ndindex(h, wd, c):
        np.testing.assert_array_equal(sd["2.weight"][:, k * h * wd + i * wd + j],
                                      dense[(i * wd + j) * c + k])
    _assert_exact(from_torch(model, sd, shape), (params, state))


def test_flatten_of_a_sequence_keeps_the_order():
    """torch's recurrent layers are batch-first `(N, T, F)` like fnn: no reordering."""
    model = fnn.serial(L.Flatten(), L.Dense(2))
    params, state = model.init(KEY, (3, 4))
    sd = to_torch(model, params, state, (3, 4), numpy=True)
    np.testing.assert_array_equal(sd["1.weight"], np.asarray(params["1_Dense"]["w"]).T)
