"""Conv2D and conv_output_size against a direct float64 numpy loop written here."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.layers import Conv2D, MaxPool

# ---------------------------------------------------------------------------
# the independent reference


def ref_pads(n, k, s, d, padding):
    """(before, after) padding on one axis, from the textbook rules."""
    k_eff = d * (k - 1) + 1
    if padding == "SAME":
        out = math.ceil(n / s)
        total = max((out - 1) * s + k_eff - n, 0)
        return total // 2, total - total // 2
    if padding == "VALID":
        return 0, 0
    return padding


def ref_windows(x, kshape, stride, padding, dilation):
    """The padded input and, for every kernel tap (a, b), the input cells it meets."""
    (sh, sw), (dh, dw), (kh, kw) = stride, dilation, kshape
    if isinstance(padding, str):
        ph = ref_pads(x.shape[1], kh, sh, dh, padding.upper())
        pw = ref_pads(x.shape[2], kw, sw, dw, padding.upper())
    else:
        ph, pw = padding
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), ph, pw, (0, 0)))
    oh = (xp.shape[1] - (dh * (kh - 1) + 1)) // sh + 1
    ow = (xp.shape[2] - (dw * (kw - 1) + 1)) // sw + 1
    taps = {}
    for a in range(kh):
        for b in range(kw):
            # taps[a, b][n, i, j, c] = xpad[n, i*sh + a*dh, j*sw + b*dw, c]
            taps[a, b] = xp[:, a * dh: a * dh + sh * (oh - 1) + 1: sh,
                            b * dw: b * dw + sw * (ow - 1) + 1: sw, :]
    return taps, (oh, ow)


def ref_conv(x, w, b, stride, padding, dilation):
    """y[n,i,j,o] = b[o] + sum_{a,b,c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a,b,c,o]."""
    w = np.asarray(w, np.float64)
    taps, (oh, ow) = ref_windows(x, w.shape[:2], stride, padding, dilation)
    y = np.zeros((np.shape(x)[0], oh, ow, w.shape[3]))
    for (a, bb), xs in taps.items():
        for c in range(w.shape[2]):
            for o in range(w.shape[3]):
                y[..., o] += xs[..., c] * w[a, bb, c, o]
    return y + (0.0 if b is None else np.asarray(b, np.float64))


def ref_conv_grad_w(x, g, kshape, stride, padding, dilation):
    """d/dw sum(y * g) = sum_{n,i,j} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * g[n,i,j,o]."""
    taps, _ = ref_windows(x, kshape[:2], stride, padding, dilation)
    grad = np.zeros(kshape)
    g = np.asarray(g, np.float64)
    for (a, bb), xs in taps.items():
        for c in range(kshape[2]):
            for o in range(kshape[3]):
                grad[a, bb, c, o] = np.sum(xs[..., c] * g[..., o])
    return grad


def zeros_init(layer, input_shape):
    """(params, state) of the right shapes, all zeros: no PRNG compile for shape tests."""
    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), input_shape))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def check_conv(shape, features, kernel, stride=1, padding="SAME", dilation=1, seed=0):
    """Forward and gradient of Conv2D against the numpy reference (one jit per case).

    Inputs come from numpy's generator: the test measures the layer, not the PRNG.
    """
    layer = Conv2D(features, kernel, stride=stride, padding=padding, dilation=dilation)
    pair = lambda v: (v, v) if isinstance(v, int) else v
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    params = {"w": rng.normal(size=(*pair(kernel), shape[-1], features)).astype(np.float32),
              "b": rng.normal(size=(features,)).astype(np.float32)}
    pad = ((padding, padding), (padding, padding)) if isinstance(padding, int) else padding
    expected = ref_conv(x, params["w"], params["b"], pair(stride), pad, pair(dilation))
    g = rng.normal(size=expected.shape).astype(np.float32)

    @jax.jit
    def run(params, x, g):
        y, _ = layer.apply(params, {}, x)
        grad = jax.grad(lambda p: jnp.sum(layer.apply(p, {}, x)[0] * g))(params)
        return y, grad

    y, grad = run(params, x, g)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert fnn.output_shape(layer, shape[1:]) == expected.shape[1:]
    expected_grad = ref_conv_grad_w(x, g, params["w"].shape, pair(stride), pad, pair(dilation))
    np.testing.assert_allclose(grad["w"], expected_grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad["b"], g.sum((0, 1, 2)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# values


def test_worked_example():
    """The textbook example: 5x5 input, 3x3 kernel, bias 1, VALID -> 3x3 output."""
    x = np.array([[1, 1, 1, 0, 0],
                  [0, 1, 1, 1, 0],
                  [0, 0, 1, 1, 1],
                  [0, 0, 1, 1, 0],
                  [0, 1, 1, 0, 0]], np.float32)
    k = np.array([[1, 0, 1],
                  [0, 1, 0],
                  [1, 0, 1]], np.float32)
    layer = Conv2D(1, 3, padding="VALID")
    params = {"w": jnp.asarray(k).reshape(3, 3, 1, 1), "b": jnp.ones((1,))}
    y, _ = layer.apply(params, {}, jnp.asarray(x).reshape(1, 5, 5, 1))
    expected = np.array([[4, 3, 4], [2, 4, 3], [2, 3, 4]]) + 1.0
    np.testing.assert_array_equal(y[0, :, :, 0], expected)
    assert y[0, 0, 0, 0] == 5.0  # 1+1+1+1 under the kernel's ones, plus the bias 1


def test_worked_example_top_left_is_one():
    """Same input, an edge-like kernel and bias 1: the top-left window sums to 0, output 1.

    out[i, j] = x[i,j] + x[i,j+2] + x[i+2,j] - x[i+1,j+1] - x[i+2,j+2] + 1, by hand:
    top-left = 1 + 1 + 0 - 1 - 1 + 1 = 1.
    """
    x = np.array([[1, 1, 1, 0, 0],
                  [0, 1, 1, 1, 0],
                  [0, 0, 1, 1, 1],
                  [0, 0, 1, 1, 0],
                  [0, 1, 1, 0, 0]], np.float32)
    k = np.array([[1, 0, 1],
                  [0, -1, 0],
                  [1, 0, -1]], np.float32)
    layer = Conv2D(1, 3, padding="VALID")
    params = {"w": jnp.asarray(k).reshape(3, 3, 1, 1), "b": jnp.ones((1,))}
    y, _ = layer.apply(params, {}, jnp.asarray(x).reshape(1, 5, 5, 1))
    assert y.shape == (1, 3, 3, 1)
    assert float(y[0, 0, 0, 0]) == 1.0
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 0, 1], [1, 1, 2], [1, 2, 3]])


@pytest.mark.parametrize("padding", ["SAME", "VALID", "same", 2, ((0, 2), (1, 0))])
def test_padding_forms(seed, padding):
    check_conv((2, 6, 5, 2), 3, 3, padding=padding, seed=seed)


@pytest.mark.parametrize("padding", ["SAME", "VALID", 1])
def test_stride_2(seed, padding):
    check_conv((2, 7, 6, 2), 2, 3, stride=2, padding=padding, seed=seed)


@pytest.mark.parametrize("padding", ["SAME", ((1, 2), (2, 1))])
def test_dilation_2(seed, padding):
    check_conv((1, 7, 7, 2), 2, 3, dilation=2, padding=padding, seed=seed)


@pytest.mark.parametrize("cin,cout", [(1, 1), (1, 4), (3, 2)])
def test_channels(seed, cin, cout):
    check_conv((2, 5, 5, cin), cout, (3, 2), stride=(1, 2), padding="SAME", seed=seed)


def test_no_bias_and_layout(key):
    params, state = jax.eval_shape(lambda: Conv2D(7, (3, 2), use_bias=False).init(key, (5, 5, 3)))
    assert set(params) == {"w"} and params["w"].shape == (3, 2, 3, 7)
    assert state == {}
    params, _ = jax.jit(lambda k: Conv2D(7, 3).init(k, (5, 5, 3)))(key)
    assert params["w"].shape == (3, 3, 3, 7) and params["b"].shape == (7,)
    np.testing.assert_array_equal(params["b"], 0.0)


def test_jit_and_vmap(seed):
    layer = Conv2D(4, 3, stride=2)
    params, state = zeros_init(layer, (8, 8, 3))
    rng = np.random.default_rng(seed)
    params["w"] = jnp.asarray(rng.normal(size=params["w"].shape), jnp.float32)
    x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
    y = jax.jit(lambda p, x: layer.apply(p, state, x)[0])(params, x)
    assert y.shape == (2, 4, 4, 4)
    yv = jax.vmap(lambda xi: layer.apply(params, state, xi[None])[0][0])(x)
    np.testing.assert_allclose(yv, y, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# conv_output_size


@pytest.mark.parametrize("args,kwargs,expected", [
    ((32, 5), {}, 28),
    ((28, 5, 1, 2), {}, 28),
    ((224, 11, 4, 2), {}, 55),
    ((7, 3, 2, "SAME"), {}, 4),
    ((7, 3, 2, "same"), {}, 4),
    ((7, 3, 2, "VALID"), {}, 3),
    ((7, 3, 1, (0, 2)), {}, 7),
    ((7, 3, 1, "VALID"), {"dilation": 2}, 3),
    ((5, 3, 1, "SAME"), {"dilation": 3}, 5),
])
def test_conv_output_size(args, kwargs, expected):
    assert fnn.conv_output_size(*args, **kwargs) == expected


def test_conv_output_size_matches_layer(key):
    for n, k, s, p, d in [(9, 3, 2, "SAME", 1), (9, 4, 3, 1, 1), (10, 3, 2, "VALID", 2)]:
        out = fnn.output_shape(Conv2D(1, k, stride=s, padding=p, dilation=d), (n, n, 1))
        assert out[:2] == (fnn.conv_output_size(n, k, s, p, dilation=d),) * 2


def test_conv_output_size_errors():
    with pytest.raises(ValueError,
                       match=r"conv_output_size: kernel 5 .* larger than the padded input 3"):
        fnn.conv_output_size(3, 5)
    with pytest.raises(ValueError, match="conv_output_size: unknown padding 'FULL'"):
        fnn.conv_output_size(3, 2, 1, "FULL")
    with pytest.raises(ValueError, match="conv_output_size: stride must be a positive int"):
        fnn.conv_output_size(3, 2, -1)


# ---------------------------------------------------------------------------
# errors


def test_rank_errors(key):
    layer = Conv2D(2, 3)
    params, state = zeros_init(layer, (5, 5, 1))
    with pytest.raises(ValueError, match=r"Conv2D: expected a rank-4 input \(N, H, W, C\), got "
                                         r"shape \(5, 5\) \(rank 2\)"):
        layer.apply(params, state, jnp.ones((5, 5)))
    with pytest.raises(ValueError, match=r"Conv2D: .*got shape \(5, 5, 1\) \(rank 3\)\. Add a "
                                         r"batch axis with x\[None\]"):
        layer.apply(params, state, jnp.ones((5, 5, 1)))
    with pytest.raises(ValueError,
                       match=r"Conv2D: expected input_shape \(H, W, C\) .* got \(5, 5\)"):
        layer.init(key, (5, 5))


def test_channel_mismatch():
    layer = Conv2D(2, 3)
    params, state = zeros_init(layer, (5, 5, 3))
    with pytest.raises(ValueError, match=r"Conv2D: the kernel of shape \(3, 3, 3, 2\) .* expects 3 "
                                         r"input channels, got input of shape \(2, 5, 5, 4\)"):
        layer.apply(params, state, jnp.ones((2, 5, 5, 4)))


def test_kernel_larger_than_valid_input(key):
    layer = Conv2D(2, 5, padding="VALID")
    with pytest.raises(ValueError, match=r"Conv2D: the kernel \(5, 5, 1, 2\) .* larger than the "
                                         r"input \(3, 3, 1\)"):
        layer.init(key, (3, 3, 1))
    params, state = zeros_init(layer, (6, 6, 1))
    with pytest.raises(ValueError, match=r"Conv2D: the kernel \(5, 5, 1, 2\) .* larger than the "
                                         r"input \(2, 4, 4, 1\)"):
        layer.apply(params, state, jnp.ones((2, 4, 4, 1)))
    # dilation makes the effective kernel 5 > 4
    with pytest.raises(ValueError, match=r"effective spatial size \(5, 5\)"):
        Conv2D(1, 3, padding="VALID", dilation=2).init(key, (4, 4, 1))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match=r"Conv2D: unknown padding 'FULL'; expected \"SAME\", "
                                         r"\"VALID\", an int"):
        Conv2D(2, 3, padding="FULL")
    with pytest.raises(ValueError, match=r"Conv2D: invalid padding \(1, 2, 3\)"):
        Conv2D(2, 3, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="Conv2D: padding must be >= 0, got -1"):
        Conv2D(2, 3, padding=-1)
    with pytest.raises(ValueError, match=r"Conv2D: stride must be positive, got -1"):
        Conv2D(2, 3, stride=-1)
    with pytest.raises(ValueError, match=r"Conv2D: stride must be positive, got \(1, 0\)"):
        Conv2D(2, 3, stride=(1, 0))
    with pytest.raises(ValueError, match="Conv2D: kernel_size must be positive, got -3"):
        Conv2D(2, -3)
    with pytest.raises(ValueError, match="Conv2D: dilation must be positive, got 0"):
        Conv2D(2, 3, dilation=0)
    with pytest.raises(ValueError, match="Conv2D: features must be a positive int, got 0"):
        Conv2D(0, 3)
    with pytest.raises(TypeError, match="Conv2D: kernel_size must be an int or a pair"):
        Conv2D(2, 2.5)
    with pytest.raises(TypeError, match="Conv2D: kernel_size must be an int or a pair"):
        Conv2D(2, np.bool_(True))


def test_numpy_integer_sizes_are_ints():
    """Sizes read from arrays (`np.int64`) are accepted like `features` and `padding` were."""
    a = Conv2D(4, np.int64(3), stride=(np.int32(2), 1), dilation=np.int64(1))
    b = Conv2D(4, 3, stride=(2, 1), dilation=1)
    params, _ = a.init(jax.random.key(0), (9, 9, 2))
    x = jnp.linspace(-1, 1, 2 * 9 * 9 * 2).reshape(2, 9, 9, 2)
    np.testing.assert_array_equal(a.apply(params, {}, x)[0], b.apply(params, {}, x)[0])
    assert MaxPool(np.int64(2)).apply({}, {}, x)[0].shape == (2, 4, 4, 2)


def test_integer_input():
    layer = Conv2D(2, 3)
    params, state = zeros_init(layer, (5, 5, 1))
    with pytest.raises(TypeError, match="Conv2D: expected a floating-point input, got dtype int32"):
        layer.apply(params, state, jnp.ones((1, 5, 5, 1), jnp.int32))


def test_fast_path_agrees_with_lax_and_is_taken_only_where_chosen(key, monkeypatch):
    # unpadded 5x5, stride 1, 6 channels: on CPU its input gradient runs on im2col + matmul
    # (fnn.layers._fast_conv.conv_plan), forward and weight gradient on lax; padded 3x3: lax.
    # (These are the plans without the oneDNN extension; tests/test_onednn.py has its own.)
    from fnn.fused import _has_eqn
    from fnn.layers import _fast_conv

    monkeypatch.setenv("FNN_ONEDNN", "0")

    x = jax.random.normal(key, (2, 9, 9, 6))
    for layer, fast in ((Conv2D(4, 5, padding="VALID"), True), (Conv2D(4, 3), False)):
        params, _ = layer.init(jax.random.key(1), (9, 9, 6))
        pad = "VALID" if fast else "SAME"

        def reference(p, x, pad=pad):
            y = jax.lax.conv_general_dilated(x, p["w"], (1, 1), pad,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return y + p["b"].reshape(1, 1, 1, -1)

        def loss(f, p, x):
            return jnp.sum(jnp.sin(f(p, x)))

        apply = lambda p, x, layer=layer: layer.apply(p, {}, x)[0]
        chex.assert_trees_all_close(apply(params, x), reference(params, x), atol=1e-5)
        chex.assert_trees_all_close(jax.grad(loss, argnums=(1, 2))(apply, params, x),
                                    jax.grad(loss, argnums=(1, 2))(reference, params, x),
                                    atol=1e-4)
        on_cpu_fast = fast and jax.default_backend() == "cpu"
        input_grad = jax.make_jaxpr(lambda p, x, f=apply: jax.grad(loss, argnums=2)(f, p, x))
        runs_im2col = _has_eqn(input_grad(params, x).jaxpr,
                               lambda eqn: eqn.params.get("name") == _fast_conv.IM2COL_NAME)
        assert runs_im2col is on_cpu_fast


def test_conv_output_size_errors_list_the_one_axis_forms_it_takes():
    # It takes one axis: an unknown name must not suggest Conv2D's pair of pairs,
    # which conv_output_size itself rejects.
    with pytest.raises(ValueError, match=r"unknown padding 'full'; expected .*a pair "
                                         r"\(before, after\)\.$") as info:
        fnn.conv_output_size(5, 3, 1, "full")
    assert "(top, bottom)" not in str(info.value)
    with pytest.raises(ValueError, match=r"conv_output_size: padding must be >= 0, got \(1, -1\)"):
        fnn.conv_output_size(5, 3, 1, (1, -1))
    assert fnn.conv_output_size(5, 3, 1, (1, 0)) == 4


@pytest.mark.parametrize("layer", [Conv2D(2, 3), MaxPool(2, padding="SAME")])
def test_empty_spatial_axis_is_named_not_blamed_on_padding(key, layer):
    # Before: "... is larger than the input (0, 4, 1) after padding='SAME' ...; use
    # ... padding="SAME"" — advice that cannot help an image with no rows.
    with pytest.raises(ValueError, match=r"the input \(0, 4, 1\) has an empty spatial axis") as e:
        layer.init(key, (0, 4, 1))
    assert "SAME" not in str(e.value)
    with pytest.raises(ValueError, match=r"the input \(2, 4, 0, 1\) has an empty spatial axis"):
        layer.apply({"w": jnp.ones((3, 3, 1, 2)), "b": jnp.zeros(2)}, {}, jnp.ones((2, 4, 0, 1)))
