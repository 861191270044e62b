"""Embedding: lookup values, gradients, integer-input marking and errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.layers import LSTM, Embedding


def _table(vocab=5, features=3):
    return {"table": jnp.arange(vocab * features, dtype=jnp.float32).reshape(vocab, features)}


def test_values_are_table_rows():
    layer = Embedding(5, 3)
    ids = jnp.array([[0, 4, 2], [1, 1, 3]])
    y, state = layer.apply(_table(), {}, ids)
    chex.assert_shape(y, (2, 3, 3))
    np.testing.assert_array_equal(y[0, 1], [12, 13, 14])
    np.testing.assert_array_equal(y, np.arange(15.0).reshape(5, 3)[np.asarray(ids)])
    assert state == {}


def test_equals_one_hot_matmul_and_any_leading_shape(key):
    layer = Embedding(7, 4)
    params, _ = layer.init(key, (2, 3))
    ids = jnp.arange(12).reshape(2, 2, 3) % 7
    y, _ = layer.apply(params, {}, ids)
    chex.assert_shape(y, (2, 2, 3, 4))
    chex.assert_trees_all_close(y, jax.nn.one_hot(ids, 7) @ params["table"], atol=1e-6)


def test_init_layout_and_default_distribution(key):
    params, state = Embedding(1000, 64).init(key, (10,))
    chex.assert_shape(params["table"], (1000, 64))
    assert params["table"].dtype == jnp.float32 and state == {}
    # N(0, 1): 64,000 draws, the std within 2 % (≈ 7σ of its sampling error)
    assert abs(float(jnp.std(params["table"])) - 1.0) < 0.02
    table = Embedding(3, 2, table_init="zeros").init(key, (1,))[0]["table"]
    np.testing.assert_array_equal(table, np.zeros((3, 2)))


def test_gradient_counts_occurrences():
    layer = Embedding(4, 2)
    ids = jnp.array([[0, 0, 2]])
    grad = jax.grad(lambda p: jnp.sum(layer.apply(p, {}, ids)[0]))(_table(4, 2))
    np.testing.assert_array_equal(grad["table"], [[2, 2], [0, 0], [1, 1], [0, 0]])


def test_marks_integer_input_for_serial_shape_probing(key):
    layer = Embedding(11, 4)
    assert layer.input_dtype == jnp.int32
    model = fnn.serial(Embedding(11, 4), LSTM(5))
    params, _ = model.init(key, (6,))
    assert set(params) == {"0_Embedding", "1_LSTM"}
    assert params["1_LSTM"]["w_x"].shape == (4, 20)
    assert fnn.output_shape(model, (6,)) == (5,)
    assert fnn.output_shape(layer, (6,)) == (6, 4)


def test_works_under_jit_and_out_of_range_ids_give_nan_rows_when_traced():
    layer = Embedding(5, 3)
    f = jax.jit(lambda p, ids: layer.apply(p, {}, ids)[0])
    y = f(_table(), jnp.array([[1, 5, -1]]))
    np.testing.assert_array_equal(y[0, 0], [3, 4, 5])
    assert bool(jnp.all(jnp.isnan(y[0, 1:])))


def test_non_integer_input_raises_type_error():
    layer = Embedding(5, 3)
    with pytest.raises(TypeError, match=r"Embedding: expected integer ids, got dtype float32"):
        layer.apply(_table(), {}, jnp.array([[1.0, 2.0]]))
    with pytest.raises(TypeError, match=r"Embedding: expected integer ids, got dtype bool"):
        layer.apply(_table(), {}, jnp.array([[True]]))


def test_out_of_range_ids_raise_when_concrete():
    layer = Embedding(5, 3)
    with pytest.raises(ValueError, match=r"Embedding: ids must be in \[0, 4\].*from 0 to 5"):
        layer.apply(_table(), {}, jnp.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"Embedding: ids must be in \[0, 4\].*from -1 to 2"):
        layer.apply(_table(), {}, np.array([[-1, 2]]))


def test_bad_hyperparameters_and_rank_raise():
    with pytest.raises(ValueError, match="Embedding: vocab_size must be a positive int, got 0"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="Embedding: features must be a positive int, got -1"):
        Embedding(5, -1)
    with pytest.raises(ValueError, match=r"Embedding: expected an input of rank >= 1"):
        Embedding(5, 3).apply(_table(), {}, jnp.array(2))


@pytest.mark.parametrize("vocab", [128, 300])
def test_narrow_integer_ids_out_of_range_under_jit_give_nan_rows(vocab):
    # int8 ids: the NaN row's index `vocab` does not fit int8, and wrapped (128 -> -128,
    # 300 -> 44) it read a real row: -1 silently returned row 0 (vocab 128) or row 44
    # (vocab 300). The ids are widened first.
    layer = Embedding(vocab, 2)
    params = {"table": jnp.arange(vocab * 2, dtype=jnp.float32).reshape(vocab, 2)}
    lookup = jax.jit(lambda x: layer.apply(params, {}, x)[0])
    y = np.asarray(lookup(np.array([[-1, 5, -128, 127]], np.int8)))
    assert np.isnan(y[0, 0]).all() and np.isnan(y[0, 2]).all()
    np.testing.assert_array_equal(y[0, 1], [10.0, 11.0])
    np.testing.assert_array_equal(y[0, 3], params["table"][127])
    for dtype in (np.uint8, np.int16, np.uint16):   # in-range narrow ids still read their rows
        ids = np.array([[0, 3, 127]], dtype)
        np.testing.assert_array_equal(lookup(ids), params["table"][ids.astype(np.int64)])
