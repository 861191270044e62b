"""fnn.summary: parameter, MAC and FLOP counts against the textbook formulas."""
import jax
import jax.numpy as jnp
import pytest

import fnn
from fnn import models
from fnn.core import Layer
from fnn.layers import AvgPool, Conv2D, Dense, Flatten, MaxPool
from fnn.summary import count_macs


def test_seed_conv():
    s = fnn.summary(Conv2D(100, 3, padding="SAME"), (32, 32, 3))
    assert s.total_params == 2_800                      # 3·3·3·100 + 100
    assert s.total_macs == 2_764_800                    # 32·32·100 outputs × 27 taps
    assert s.total_flops == 2 * 2_764_800 + 32 * 32 * 100  # plus one bias add per output
    assert [r.output_shape for r in s.rows] == [(32, 32, 100)]


def test_seed_dense():
    s = fnn.summary(Dense(10), (5,))
    assert (s.total_params, s.total_macs, s.total_flops) == (60, 50, 110)
    s = fnn.summary(Dense(10, use_bias=False), (5,))
    assert (s.total_params, s.total_macs, s.total_flops) == (50, 50, 100)


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 1)])
def test_lenet5(input_shape):
    s = fnn.summary(models.lenet5(), input_shape)
    assert s.total_params == 61_706
    # C1 28·28·6·25, C3 10·10·16·150, C5 120·400, F6 84·120, output 10·84
    assert s.total_macs == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 120 * 400 + 84 * 120 + 10 * 84
    assert s.total_params == sum(r.params for r in s.rows)
    assert s.output_shape == (10,)


def test_resnet18_and_resnet20():
    s = fnn.summary(models.resnet18(1000), (224, 224, 3))
    assert s.total_params == 11_689_512
    stem = s.rows[0]
    assert (stem.path, stem.output_shape, stem.params) == ("0_Conv2D", (112, 112, 64), 9_408)
    assert stem.macs == 112 * 112 * 64 * 7 * 7 * 3
    assert s.total_macs == 1_814_073_344  # the commonly quoted 1.8 GMACs
    assert fnn.summary(models.resnet(20), (32, 32, 3)).total_params == 269_722


def test_alexnet():
    assert fnn.summary(models.alexnet(1000), (224, 224, 3)).total_params == 61_100_840


def test_rows_paths_and_parameter_free_layers():
    model = fnn.serial(
        Conv2D(4, 3), fnn.relu, MaxPool(2),
        fnn.residual(fnn.serial(Conv2D(4, 3), fnn.relu)),
        AvgPool(2), Flatten(), Dense(3),
    )
    s = fnn.summary(model, (8, 8, 2))
    paths = [r.path for r in s.rows]
    assert paths == ["0_Conv2D", "1_relu", "2_MaxPool", "3_Residual/block/0_Conv2D",
                     "3_Residual/block/1_relu", "4_AvgPool", "5_Flatten", "6_Dense"]
    by_path = {r.path: r for r in s.rows}
    for name in ("1_relu", "2_MaxPool", "4_AvgPool", "5_Flatten"):
        assert (by_path[name].params, by_path[name].macs, by_path[name].flops) == (0, 0, 0)
    assert by_path["2_MaxPool"].output_shape == (4, 4, 4)
    assert by_path["3_Residual/block/0_Conv2D"].params == 3 * 3 * 4 * 4 + 4
    assert by_path["3_Residual/block/0_Conv2D"].macs == 4 * 4 * 4 * 36
    assert by_path["6_Dense"].output_shape == (3,)
    assert s.total_params == sum(r.params for r in s.rows)
    assert s.total_macs == sum(r.macs for r in s.rows)


def test_concat_children_see_the_same_input():
    block = models.inception_block(2, 3, 4, 1, 2, 5)
    s = fnn.summary(block, (6, 6, 8))
    assert s.output_shape == (6, 6, 2 + 4 + 2 + 5)
    rows = {r.path: r for r in s.rows}
    assert rows["0_Serial/0_Conv2D"].macs == 36 * 2 * 8
    assert rows["1_Serial/2_Conv2D"].macs == 36 * 4 * 9 * 3
    assert rows["2_Serial/2_Conv2D"].macs == 36 * 2 * 25 * 1
    assert rows["3_Serial/0_MaxPool"].output_shape == (6, 6, 8)
    assert rows["3_Serial/1_Conv2D"].macs == 36 * 5 * 8


def test_counts_come_from_the_jaxpr():
    """A new layer is counted without registration: scan bodies × length, jit, cond."""

    def Looped(steps):
        def init(key, input_shape):
            return {"w": jnp.zeros((input_shape[-1], input_shape[-1]))}, {}

        def apply(params, state, x, *, key=None, train=False):
            body = jax.jit(lambda h, _: (jnp.tanh(h @ params["w"]), None))
            h, _ = jax.lax.scan(body, x, None, length=steps)
            return jax.lax.cond(True, lambda h: h @ params["w"], lambda h: h, h), state

        return Layer(init, apply, "Looped")

    s = fnn.summary(Looped(5), (3,))
    assert s.rows[0].params == 9
    assert s.total_macs == 6 * 9  # 5 scan steps + the costlier cond branch


def test_recurrent_layer_is_counted():
    lstm = fnn.layers.LSTM
    t, f, h = 6, 4, 5
    s = fnn.summary(lstm(h), (t, f))
    assert s.total_params == f * 4 * h + h * 4 * h + 4 * h
    assert s.total_macs == t * (f * 4 * h + h * 4 * h)


def test_count_macs_on_abstract_values():
    layer = Dense(7)
    params = {"w": jax.ShapeDtypeStruct((3, 7), jnp.float32),
              "b": jax.ShapeDtypeStruct((7,), jnp.float32)}
    macs, adds = count_macs(layer, params, {}, jax.ShapeDtypeStruct((4, 3), jnp.float32))
    assert (macs, adds) == (4 * 3 * 7, 4 * 7)


def test_table():
    s = fnn.summary(fnn.serial(Conv2D(8, 3), fnn.relu, Flatten(), Dense(10)), (6, 6, 1))
    text = str(s)
    assert repr(s) == text
    lines = text.splitlines()
    assert "Layer (path)" in lines[2] and "Params" in lines[2] and "FLOPs" in lines[2]
    table = [line for line in lines[1:] if line.strip()]
    assert len({len(line) for line in table}) == 1  # aligned: every row equally wide
    assert "0_Conv2D" in text and "3_Dense" in text
    assert f"{s.total_params:,}" in lines[-2] and lines[-2].startswith("Total")
    d = s.as_dict()
    assert d["total_params"] == s.total_params == 8 * 9 + 8 + 6 * 6 * 8 * 10 + 10
    assert len(d["rows"]) == 4


def test_conv_stride_dilation_recurrent_and_maxout_hand_counts():
    # VALID 3x3 dilated by 2 (span 5), stride 2, on 11x11x2: (11 - 5) // 2 + 1 = 4
    s = fnn.summary(Conv2D(4, 3, stride=2, dilation=2, padding="VALID"), (11, 11, 2))
    assert (s.output_shape, s.total_params) == ((4, 4, 4), 3 * 3 * 2 * 4 + 4)
    assert s.total_macs == 4 * 4 * 4 * (3 * 3 * 2)
    assert s.total_flops == 2 * s.total_macs + 4 * 4 * 4
    t, f, h = 6, 4, 5
    rnn = fnn.summary(fnn.layers.SimpleRNN(h), (t, f))    # x w_x + h w_h, then + b
    assert (rnn.total_params, rnn.total_macs) == (f * h + h * h + h, t * (f * h + h * h))
    assert rnn.total_flops == 2 * rnn.total_macs + t * 2 * h
    gru = fnn.summary(fnn.layers.GRU(h), (t, f))          # b_x and b_h: 6H params of bias
    assert (gru.total_params, gru.total_macs) == (3 * h * (f + h) + 6 * h, t * 3 * h * (f + h))
    maxout = fnn.summary(fnn.layers.Maxout(4, pieces=3), (5,))
    assert (maxout.total_params, maxout.total_macs, maxout.total_flops) == (72, 60, 132)
    emb = fnn.summary(fnn.serial(fnn.layers.Embedding(10, 4), fnn.layers.LSTM(3)), (7,))
    assert emb.total_params == 10 * 4 + 4 * 12 + 3 * 12 + 12
    assert emb.total_macs == 7 * (4 * 12 + 3 * 12)        # the lookup is no product


def test_bad_model_and_dtype_name_summary():
    """These errors named `serial/concat/residual` and `output_shape`, not summary."""
    with pytest.raises(TypeError, match=r"summary: expected a fnn\.Layer .* forget to "
                                        "call the constructor"):
        fnn.summary(Dense, (3,))
    with pytest.raises(TypeError, match="summary: dtype must be a dtype .* got 'foo'"):
        fnn.summary(Dense(2), (3,), dtype="foo")
    with pytest.raises(TypeError, match=r"summary: input_shape must be a tuple .* got 4"):
        fnn.summary(Dense(2), 4)
    with pytest.raises(ValueError, match=r"summary: input_shape sizes must be >= 0, got \(-1,\)"):
        fnn.summary(Dense(2), (-1,))


def test_a_batch_axis_in_input_shape_gets_a_hint():
    with pytest.raises(ValueError, match=r"summary: .* Is the leading 1 of input_shape "
                                         r"\(1, 32, 32, 1\) a batch axis\? Pass the shape of "
                                         r"ONE example, e\.g\. \(32, 32, 1\)"):
        fnn.summary(models.lenet5(), (1, 32, 32, 1))
