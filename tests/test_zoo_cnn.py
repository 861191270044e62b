"""The convolutional model zoo: init, forward, grad and one SGD step under jit; counts.

Large models (AlexNet and ResNet-18 on 224×224) are only traced abstractly
(`jax.eval_shape`): their counts and output shapes cost no memory or FLOPs.
Keys use the "rbg" PRNG implementation, which compiles much faster on CPU than
threefry; every layer is agnostic to the key implementation.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import models


@pytest.fixture
def fast_key(seed):
    return jax.random.key(seed, impl="rbg")


def n_params(model, input_shape):
    params, _ = jax.eval_shape(lambda: model.init(jax.random.key(0), input_shape))
    return sum(math.prod(p.shape) for p in jax.tree.leaves(params))


def xent(logits, labels):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def numpy_init(model, input_shape, seed):
    """Params of `init`'s exact structure, drawn with numpy (N(0, 1/fan_in) weights).

    For the larger nets: compiling the real `init` spends most of its time on
    XLA-compiling one random-number kernel per layer; `init` itself is covered by
    the abstract structure check here and by the real inits of the smaller models.
    """
    params, state = jax.eval_shape(lambda: model.init(jax.random.key(0), input_shape))
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = jax.tree_util.keystr(path[-1:])
        if "scale" in name or "var" in name:
            return jnp.ones(s.shape, s.dtype)
        if len(s.shape) < 2:
            return jnp.zeros(s.shape, s.dtype)
        fan_in = math.prod(s.shape[:-1])
        return jnp.asarray(rng.normal(size=s.shape) / math.sqrt(fan_in), s.dtype)

    return (jax.tree_util.tree_map_with_path(fill, params),
            jax.tree_util.tree_map_with_path(fill, state))


def check_train_step(model, input_shape, num_classes, key, *, batch=2, init=None,
                     eval_mode=False):
    """init, forward, grad and p - 0.01 g under jit; finite values and right shapes."""
    k_init, k_x, k_drop = jax.random.split(key, 3)
    if init is None:
        params, state = jax.jit(lambda k: model.init(k, input_shape))(k_init)
    else:
        params, state = init
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), input_shape))
    assert jax.tree.map(lambda a: (a.shape, a.dtype), (params, state)) == \
        jax.tree.map(lambda a: (a.shape, a.dtype), abstract)
    x = jax.random.normal(k_x, (batch, *input_shape))
    labels = jnp.arange(batch) % num_classes

    @jax.jit
    def step(params, state, x, labels, key):
        def loss(p):
            logits, new_state = model.apply(p, state, x, key=key, train=True)
            return xent(logits, labels), (logits, new_state)

        (value, (logits, new_state)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
        return value, logits, grads, params, new_state

    value, logits, grads, new_params, new_state = step(params, state, x, labels, k_drop)
    assert logits.shape == (batch, num_classes)
    assert np.isfinite(value)
    for tree in (grads, new_params, new_state):
        assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(tree))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert jax.tree.map(jnp.shape, new_state) == jax.tree.map(jnp.shape, state)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
    if eval_mode:
        logits_eval, same = jax.jit(lambda p, s, x: model.apply(p, s, x))(new_params, new_state, x)
        assert logits_eval.shape == (batch, num_classes)
        assert np.all(np.isfinite(logits_eval))
        assert jax.tree.all(jax.tree.map(np.array_equal, same, new_state))
    return params, state, new_state


# ---------------------------------------------------------------------------
# LeNet-5


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 1)])
def test_lenet5_counts(input_shape):
    assert n_params(models.lenet5(), input_shape) == 61_706
    # 156 + 2,416 + 48,120 + 10,164 + 850
    assert n_params(models.lenet5(), input_shape) == \
        (25 * 6 + 6) + (25 * 6 * 16 + 16) + (25 * 16 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert fnn.output_shape(models.lenet5(), input_shape) == (10,)


def test_lenet5_train_step(fast_key):
    params, state, _ = check_train_step(models.lenet5(), (28, 28, 1), 10, fast_key)
    assert state == {}
    assert params["0_Conv2D"]["w"].shape == (5, 5, 1, 6)
    assert params["11_Dense"]["w"].shape == (84, 10)


# ---------------------------------------------------------------------------
# AlexNet


def test_alexnet_imagenet_layout():
    assert n_params(models.alexnet(1000), (224, 224, 3)) == 61_100_840
    assert fnn.output_shape(models.alexnet(1000), (224, 224, 3)) == (1000,)


def test_alexnet_imagenet_layout_names_its_smallest_input():
    # 63 is the smallest side whose last 3x3 stride-2 pool still has 3 rows to pool
    assert fnn.output_shape(models.alexnet(10, hidden=8), (63, 63, 3)) == (10,)
    with pytest.raises(ValueError, match=r"^alexnet: the ImageNet layout needs images of at "
                                         r"least 63×63 .* got \(32, 32, 3\); .* small_input=True"):
        models.alexnet(10, hidden=8).init(jax.random.PRNGKey(0), (32, 32, 3))


def test_alexnet_small_input_train_step(fast_key, seed):
    model = models.alexnet(10, small_input=True, hidden=32)
    assert fnn.output_shape(model, (32, 32, 3)) == (10,)
    check_train_step(model, (32, 32, 3), 10, fast_key, init=numpy_init(model, (32, 32, 3), seed))


def test_alexnet_dropout_needs_key():
    model = models.alexnet(10, small_input=True, hidden=8)
    params, state = jax.eval_shape(lambda: model.init(jax.random.key(0), (32, 32, 3)))
    with pytest.raises(ValueError, match="Dropout: train=True with rate=0.5 needs a PRNG key"):
        jax.eval_shape(lambda p, s: model.apply(p, s, jnp.ones((2, 32, 32, 3)), train=True),
                       params, state)


# ---------------------------------------------------------------------------
# Inception


def test_inception_block_shapes_and_count():
    block = models.inception_block(4, 3, 5, 2, 3, 6)
    assert fnn.output_shape(block, (8, 8, 7)) == (8, 8, 4 + 5 + 3 + 6)
    expected = ((7 * 4 + 4) + (7 * 3 + 3) + (9 * 3 * 5 + 5) + (7 * 2 + 2) + (25 * 2 * 3 + 3)
                + (7 * 6 + 6))
    assert n_params(block, (8, 8, 7)) == expected


def test_inception_block_branches_on_the_same_input(seed):
    """Branch 1 alone is relu(x @ w + b); its channels lead the concatenation."""
    block = models.inception_block(2, 1, 1, 1, 1, 1)
    params, state = numpy_init(block, (4, 4, 3), seed)
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(2, 4, 4, 3)), jnp.float32)
    y, _ = block.apply(params, state, x)
    p = params["0_Serial"]["0_Conv2D"]
    first = np.maximum(np.einsum("nhwc,co->nhwo", x, p["w"][0, 0]) + np.asarray(p["b"]), 0)
    np.testing.assert_allclose(y[..., :2], first, rtol=1e-5, atol=1e-5)


def test_inception_net_train_step(fast_key, seed):
    model = models.inception_net(10)
    check_train_step(model, (32, 32, 3), 10, fast_key, init=numpy_init(model, (32, 32, 3), seed))


# ---------------------------------------------------------------------------
# ResNet


def resnet20_count(shortcut):
    """Hand count: conv weights (no bias) + BatchNorm scale/bias + the final Dense."""
    conv = lambda cin, cout, k=3: k * k * cin * cout
    bn = lambda c: 2 * c
    total = conv(3, 16) + bn(16)
    cin = 16
    for c in (16, 32, 64):
        for _ in range(3):
            total += conv(cin, c) + bn(c) + conv(c, c) + bn(c)
            if cin != c and shortcut == "B":
                total += conv(cin, c, 1) + bn(c)
            cin = c
    return total + 64 * 10 + 10


def test_resnet20_counts():
    assert n_params(models.resnet(20), (32, 32, 3)) == resnet20_count("A") == 269_722
    assert n_params(models.resnet(20, shortcut="B"), (32, 32, 3)) == resnet20_count("B") \
        == 272_474
    assert fnn.output_shape(models.resnet(20), (32, 32, 3)) == (10,)


def test_resnet18_count_and_shape():
    assert n_params(models.resnet18(1000), (224, 224, 3)) == 11_689_512
    assert fnn.output_shape(models.resnet18(1000), (224, 224, 3)) == (1000,)


def test_resnet8_train_step(fast_key, seed):
    model = models.resnet(8)
    init = numpy_init(model, (32, 32, 3), seed)
    params, state, new_state = check_train_step(model, (32, 32, 3), 10, fast_key, init=init,
                                                eval_mode=True)
    # BatchNorm: running statistics live in state and are updated in train mode
    assert state["1_BatchNorm"]["mean"].shape == (16,)
    assert not np.allclose(new_state["1_BatchNorm"]["mean"], 0.0)


def test_resnet8_projection_shortcut_traces():
    """Option B: the train-mode forward and backward trace with the right shapes."""
    model = models.resnet(8, shortcut="B")
    params, state = jax.eval_shape(lambda: model.init(jax.random.key(0), (32, 32, 3)))
    assert params["4_BasicBlock"]["0_Residual"]["shortcut"]["0_Conv2D"]["w"].shape == \
        (1, 1, 16, 32)
    grads = jax.eval_shape(jax.grad(lambda p, s: model.apply(
        p, s, jnp.ones((2, 32, 32, 3)), train=True)[0].sum()), params, state)
    assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, params)


def test_option_a_shortcut_values():
    """Subsample by 2 and pad channels with zeros, split evenly on both sides."""
    from fnn.models.resnet import _subsample_and_pad

    x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 4, 2)
    y, _ = _subsample_and_pad(6, 2).apply({}, {}, x)
    assert y.shape == (2, 2, 2, 6)
    np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., :2], 0.0)
    np.testing.assert_array_equal(y[..., 4:], 0.0)


def test_resnet_errors():
    with pytest.raises(ValueError, match=r"resnet: depth must be 6n \+ 2 .* got 21"):
        models.resnet(21)
    with pytest.raises(ValueError, match='resnet: shortcut must be "A" or "B", got \'C\''):
        models.resnet(20, shortcut="C")


def test_alexnet_small_input_must_be_a_flag_and_names_its_smallest_input():
    # Before: small_input="no" (truthy) silently chose the small layout, and a 4×4
    # image failed inside a MaxPool instead of naming alexnet.
    with pytest.raises(TypeError, match="alexnet: small_input must be True or False, got 'no'"):
        models.alexnet(10, small_input="no")
    with pytest.raises(ValueError, match=r"alexnet: the small-input layout needs images of at "
                                         r"least 8×8 .*got \(4, 4, 3\)"):
        fnn.output_shape(models.alexnet(10, small_input=True), (4, 4, 3))
    assert fnn.output_shape(models.alexnet(10, small_input=True), (8, 8, 3)) == (10,)


def test_lenet5_errors_name_lenet5():
    model = models.lenet5()
    params, state = jax.eval_shape(lambda: model.init(jax.random.key(0), (28, 28, 1)))
    with pytest.raises(TypeError, match="lenet5: expected an array .*got a list"):
        model.apply(params, state, [[0.0] * 28] * 28)   # before: AttributeError (no .ndim)
    with pytest.raises(ValueError, match="lenet5: .*unknown activation 'rleu'"):
        models.lenet5(activation="rleu")   # before: named fnn.activations.get


@pytest.mark.parametrize("build,error,match", [
    (lambda: models.rnn_classifier(4, 2, ["rnn"]), ValueError,
     r"rnn_classifier: unknown cell \['rnn'\]"),        # before: unhashable type: 'list'
    (lambda: models.rnn_classifier(4, 2, bidirectional="no"), TypeError,
     "rnn_classifier: bidirectional must be True or False, got 'no'"),  # before: accepted
    (lambda: models.rnn_classifier(4, 2, unroll=0), ValueError,
     "rnn_classifier: unroll must be a positive int, got 0"),   # before: named SimpleRNN
    (lambda: models.lstm_classifier(4, 2, unroll=-1), ValueError,
     "lstm_classifier: unroll must be a positive int, got -1"),
    (lambda: models.char_lstm(5, 4, unroll=0), ValueError,
     "char_lstm: unroll must be a positive int, got 0"),
])
def test_recurrent_zoo_constructor_errors_name_the_model(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_basic_block_rejects_an_unknown_shortcut():
    from fnn.models.resnet import basic_block
    # Before: any value other than "A" (e.g. "C", or "a") silently built option B.
    with pytest.raises(ValueError, match=r'basic_block: shortcut must be "A" or "B", got \'C\''):
        basic_block(16, 2, shortcut="C")
    with pytest.raises(ValueError, match="basic_block: stride must be a positive int, got 0"):
        basic_block(16, 0)
