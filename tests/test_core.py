"""serial / concat / residual / output_shape: keys, shapes, values, and errors."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.core import as_layer, children
from fnn.layers import LSTM, BatchNorm, Conv2D, Dense, Flatten


def test_serial_keys_skip_parameter_free_layers(key):
    model = fnn.serial(Dense(4), fnn.relu, jnp.tanh, Dense(2))
    params, state = model.init(key, (3,))
    assert set(params) == {"0_Dense", "3_Dense"}
    assert state == {}
    assert [name for name, _ in children(model)] == ["0_Dense", "1_relu", "2_tanh", "3_Dense"]


def test_serial_equals_manual_composition(key):
    model = fnn.serial(Dense(4), fnn.relu, Dense(2))
    params, state = model.init(key, (3,))
    x = jax.random.normal(jax.random.key(1), (5, 3))
    y, new_state = model.apply(params, state, x)
    p0, p2 = (jax.tree.map(np.asarray, params[k]) for k in ("0_Dense", "2_Dense"))
    h = np.maximum(np.asarray(x, np.float64) @ p0["w"] + p0["b"], 0)
    np.testing.assert_allclose(y, h @ np.asarray(p2["w"], np.float64) + p2["b"], rtol=1e-5)
    assert new_state == {}


def test_serial_splits_one_key_per_layer(key):
    model = fnn.serial(Dense(3), Dense(3))
    params, _ = model.init(key, (3,))
    assert not np.allclose(params["0_Dense"]["w"], params["1_Dense"]["w"])


def test_nested_serial_and_output_shape(key):
    block = fnn.serial(Dense(8), fnn.relu)
    model = fnn.serial(Flatten(), block, Dense(3))
    params, _ = model.init(key, (2, 5))
    assert set(params) == {"1_Serial", "2_Dense"}
    assert set(params["1_Serial"]) == {"0_Dense"}
    assert fnn.output_shape(model, (2, 5)) == (3,)
    assert fnn.output_shape(block, (10,)) == (8,)


def test_concat_values_and_shape(key):
    model = fnn.concat(Dense(2), fnn.identity)
    params, state = model.init(key, (3,))
    x = jnp.arange(6.0).reshape(2, 3)
    y, _ = model.apply(params, state, x)
    w, b = np.asarray(params["0_Dense"]["w"]), np.asarray(params["0_Dense"]["b"])
    x = np.asarray(x)
    np.testing.assert_allclose(y, np.concatenate([x @ w + b, x], axis=-1), rtol=1e-6)
    assert fnn.output_shape(model, (3,)) == (5,)


def test_concat_mismatched_branches():
    model = fnn.concat(Flatten(), fnn.identity)
    with pytest.raises(ValueError, match=r"concat: branch outputs must match.*\(6,\).*\(2, 3\)"):
        model.init(jax.random.key(0), (2, 3))


def test_residual_identity_and_projection(key):
    block = Dense(3)
    model = fnn.residual(block)
    params, state = model.init(key, (3,))
    x = jnp.ones((2, 3))
    y, _ = model.apply(params, state, x)
    p = jax.tree.map(np.asarray, params)
    x = np.asarray(x)
    np.testing.assert_allclose(y, x @ p["block"]["w"] + p["block"]["b"] + x, rtol=1e-6)

    proj = fnn.residual(Dense(4), shortcut=Dense(4, use_bias=False))
    params, state = proj.init(key, (3,))
    y, _ = proj.apply(params, state, x)
    p = jax.tree.map(np.asarray, params)
    expected = x @ p["block"]["w"] + p["block"]["b"] + x @ p["shortcut"]["w"]
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_residual_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"residual: block output \(4,\) and shortcut output \(3,\)"):
        fnn.residual(Dense(4)).init(jax.random.key(0), (3,))


def test_plain_callables_and_bad_layers():
    model = fnn.serial(lambda x: 2 * x)
    y, _ = model.apply({}, {}, jnp.ones((1, 2)))
    np.testing.assert_array_equal(y, 2)
    with pytest.raises(TypeError, match="expected a fnn.Layer or a callable"):
        fnn.serial(Dense(2), 3)
    with pytest.raises(TypeError, match="Did you forget to call the constructor"):
        fnn.serial(Flatten)
    with pytest.raises(ValueError, match="serial: expected at least one layer"):
        fnn.serial()


def test_unknown_keyword_is_not_swallowed(key):
    model = fnn.serial(Dense(2))
    params, state = model.init(key, (3,))
    with pytest.raises(TypeError, match=r"serial.apply: got unexpected keyword argument\(s\) \['lenghts'\]"):
        model.apply(params, state, jnp.ones((1, 3)), lenghts=jnp.ones(1))


def test_serial_forwards_extra_keywords_to_children_that_declare_them(key):
    """A user layer whose apply takes a keyword declares it in `keywords`; serial then
    passes it on (and only to that child). Undeclared, it is refused, not guessed."""
    seen = {}

    def init(key, shape):
        return {}, {}

    def apply(params, state, x, *, key=None, train=False, lengths=None):
        seen["lengths"] = lengths
        return x * 2.0, state

    probe = fnn.Layer(init, apply, "Probe", keywords=frozenset({"lengths"}))
    model = fnn.serial(Dense(2), probe)
    assert model.keywords == frozenset({"lengths"})
    params, state = model.init(key, (3,))
    x = jnp.ones((1, 3))
    y, _ = model.apply(params, state, x, lengths=jnp.array([1]))
    np.testing.assert_array_equal(seen["lengths"], [1])
    w, b = (np.asarray(params["0_Dense"][k], np.float64) for k in ("w", "b"))
    np.testing.assert_allclose(y, 2.0 * (np.asarray(x, np.float64) @ w + b), rtol=1e-6)
    undeclared = fnn.serial(Dense(2), fnn.Layer(init, apply, "Probe"))
    with pytest.raises(TypeError, match=r"serial\.apply: got unexpected keyword argument\(s\) "
                                        r"\['lengths'\]; its layers accept only key and train"):
        undeclared.apply(params, state, x, lengths=jnp.array([1]))


@pytest.mark.parametrize("block", ["residual", "concat", "serial"])
def test_keywords_pass_by_a_combinator_whose_children_do_not_take_them(key, block):
    """`lengths` for the LSTMs went into a residual/concat block too (its apply takes
    **extra), which then refused it: "residual.apply: got unexpected keyword argument(s)
    ['lengths']". A combinator now passes on only what its children take."""
    inner = fnn.serial(Dense(3), jnp.tanh)
    wrap = {"residual": fnn.residual, "concat": fnn.concat, "serial": fnn.serial}[block]
    first, middle, last = LSTM(3, return_sequences=True), wrap(inner), LSTM(2)
    model = fnn.serial(first, middle, last)
    x = jax.random.normal(key, (2, 4, 3))
    params, state = model.init(key, (4, 3))
    lengths = jnp.array([4, 2])
    y, _ = model.apply(params, state, x, lengths=lengths)
    # the same numbers as applying the three layers one by one
    names = list(params)
    h, _ = first.apply(params[names[0]], {}, x, lengths=lengths)
    h, _ = middle.apply(params[names[1]], {}, h)
    want, _ = last.apply(params[names[2]], {}, h, lengths=lengths)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    with pytest.raises(TypeError, match=r"serial.apply: got unexpected keyword argument\(s\) "
                                        r"\['lenghts'\]; its layers accept \['initial_state', "
                                        r"'lengths'\]"):
        model.apply(params, state, x, lenghts=lengths)
    with pytest.raises(TypeError, match=rf"{block}.apply: got unexpected keyword"):
        middle.apply(params[names[1]], {}, x[:, 0], lengths=lengths)


@pytest.mark.parametrize("block", ["residual", "concat", "serial"])
def test_a_combinator_checks_train_even_when_no_child_reads_it(key, block):
    """`train="yes"` went through a model without BatchNorm or Dropout unnoticed (and
    would have meant train mode in one that has them); a traced `train` still passes."""
    wrap = {"residual": fnn.residual, "concat": fnn.concat, "serial": fnn.serial}[block]
    model = wrap(fnn.serial(Dense(3), jnp.tanh))
    params, state = model.init(key, (3,))
    x = jnp.ones((2, 3))
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match=rf"{block}.apply: train must be a Python bool"):
            model.apply(params, state, x, train=bad)
    want, _ = model.apply(params, state, x, train=False)
    for good in (True, np.bool_(False), jnp.bool_(True)):
        np.testing.assert_allclose(model.apply(params, state, x, train=good)[0], want)
    traced = jax.jit(lambda t: model.apply(params, state, x, train=t)[0])(True)
    np.testing.assert_allclose(traced, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["Dense", "Conv2D", "MaxPool", "LSTM", "Embedding",
                                  "LayerNorm", "Flatten", "tanh"])
def test_layers_that_do_not_read_key_or_train_still_check_them(key, name):
    """Called directly, these layers took `train="yes"` or `key=5` without a word."""
    layer, shape, x = {
        "Dense": (Dense(2), (3,), jnp.ones((2, 3))),
        "Conv2D": (Conv2D(2, 3), (5, 5, 1), jnp.ones((1, 5, 5, 1))),
        "MaxPool": (fnn.layers.MaxPool(2), (4, 4, 1), jnp.ones((1, 4, 4, 1))),
        "LSTM": (LSTM(2), (3, 2), jnp.ones((1, 3, 2))),
        "Embedding": (fnn.layers.Embedding(5, 2), (3,), jnp.zeros((1, 3), jnp.int32)),
        "LayerNorm": (fnn.layers.LayerNorm(), (3,), jnp.ones((2, 3))),
        "Flatten": (Flatten(), (2, 2), jnp.ones((1, 2, 2))),
        "tanh": (as_layer(jnp.tanh), (3,), jnp.ones((1, 3))),
    }[name]
    params, state = layer.init(key, shape)
    where = layer.name
    with pytest.raises(TypeError, match=rf"{where}: train must be a Python bool, got 'yes'"):
        layer.apply(params, state, x, train="yes")
    with pytest.raises(TypeError, match=rf"{where}: key must be a PRNG key"):
        layer.apply(params, state, x, key=5)
    want, _ = layer.apply(params, state, x)
    got, _ = layer.apply(params, state, x, key=key, train=True)
    np.testing.assert_array_equal(got, want)
    traced = jax.jit(lambda t: layer.apply(params, state, x, train=t)[0])(True)
    np.testing.assert_allclose(traced, want, rtol=1e-6)


def test_batchnorm_and_dropout_check_a_key_they_do_not_need(key):
    x = jnp.ones((4, 3))
    for layer in (BatchNorm(), fnn.layers.Dropout(0.5)):
        params, state = layer.init(key, (3,))
        with pytest.raises(TypeError, match=rf"{layer.name}: key must be a PRNG key"):
            layer.apply(params, state, x, key=5)          # eval mode: the key is not used


def test_serial_under_jit_grad_vmap(key):
    model = fnn.serial(Dense(4), fnn.tanh, Dense(1))
    keys = jax.random.split(key, 3)
    params, state = jax.vmap(lambda k: model.init(k, (2,)))(keys)
    x = jnp.ones((5, 2))
    ys = jax.jit(jax.vmap(lambda p: model.apply(p, {}, x)[0]))(params)
    chex.assert_shape(ys, (3, 5, 1))
    for i in range(3):
        p_i = jax.tree.map(lambda a, i=i: a[i], params)
        np.testing.assert_allclose(ys[i], model.apply(p_i, {}, x)[0], rtol=1e-6)
    grads = jax.grad(lambda p: model.apply(p, {}, x)[0].sum())(jax.tree.map(lambda a: a[0], params))
    chex.assert_trees_all_equal_structs(grads, jax.tree.map(lambda a: a[0], params))


def _scale_layer(name="Scale"):
    """A user-written layer with params that reads them with a plain `params["v"]`."""
    def init(key, input_shape):
        del key
        return {"v": jnp.ones(input_shape[-1:])}, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        return x * params["v"].reshape(1, -1), state

    return fnn.Layer(init, apply, name)


@pytest.mark.parametrize("jit", [False, True])
def test_missing_params_entry_is_named_at_every_level(key, jit):
    model = fnn.serial(fnn.serial(Dense(3), fnn.relu), _scale_layer())
    params, state = model.init(key, (4,))
    run = (jax.jit(model.apply) if jit else model.apply)
    x = jnp.ones((2, 4))
    with pytest.raises(ValueError, match=r"serial\.apply: params has no entry '0_Serial' "
                                         r"\(for layer 0, Serial\), got a dict with keys "
                                         r"\['1_Scale'\]"):
        run({"1_Scale": params["1_Scale"]}, state, x)
    with pytest.raises(ValueError, match=r"serial\.apply: params has no entry '1_Scale' "
                                         r"\(for layer 1, Scale\)") as info:
        run({"0_Serial": params["0_Serial"]}, state, x)
    assert isinstance(info.value.__cause__, KeyError)  # the user layer's own error, chained


def test_missing_entry_check_leaves_parameter_free_layers_alone(key):
    def broken(params, state, x, *, key=None, train=False):
        return {}["oops"], state

    model = fnn.serial(Dense(2), fnn.Layer(lambda k, s: ({}, {}), broken, "Broken"))
    params = {"0_Dense": Dense(2).init(key, (3,))[0]}
    with pytest.raises(KeyError, match="oops"):  # not reported as a missing entry
        model.apply(params, {}, jnp.ones((1, 3)))


def test_concat_and_residual_name_their_missing_entries(key):
    x = jnp.ones((2, 4))
    with pytest.raises(ValueError, match=r"concat\.apply: params has no entry '1_Dense' "
                                         r"\(for branch 1, Dense\)"):
        fnn.concat(Flatten(), Dense(2)).apply({}, {}, x)
    with pytest.raises(ValueError, match=r"residual\.apply: params has no entry 'shortcut' "
                                         r"\(for the shortcut, Dense\)"):
        block = fnn.residual(Dense(4), Dense(4))
        params, _ = block.init(key, (4,))
        block.apply({"block": params["block"]}, {}, x)


def test_parameter_free_models_initialise_without_a_key():
    params, state = fnn.serial(Flatten(), fnn.relu).init(None, (2, 2))
    assert params == {} and state == {}


def test_init_compiles_the_whole_initialisation_once(key):
    model = fnn.serial(Conv2D(3, 3), BatchNorm(), fnn.relu, Flatten(), Dense(4))
    params, state = fnn.init(model, key, (6, 6, 2))
    want_p, want_s = model.init(key, (6, 6, 2))                     # eager, op by op
    chex.assert_trees_all_close(params, want_p, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_equal(state, want_s)
    assert jax.tree.structure(params) == jax.tree.structure(want_p)
    before = fnn._util._memo.cache_info().hits
    again, _ = fnn.init(model, key, [6, 6, 2])                       # same program, reused
    assert fnn._util._memo.cache_info().hits == before + 1
    chex.assert_trees_all_equal(again, params)
    if jax.default_backend() == "cpu":
        assert fnn.compiler.init_options() == {"xla_backend_optimization_level": 1}


def test_init_reports_the_layers_own_errors(key):
    with pytest.raises(ValueError, match=r"Conv2D: expected input_shape \(H, W, C\)"):
        fnn.init(Conv2D(3, 3), key, (6, 6))
    with pytest.raises(TypeError, match=r"init: input_shape must be a tuple \(d1, \.\.\., dk\), "
                                        r"without the batch axis, got 'abc'"):
        fnn.init(Dense(3), key, "abc")


# ---------------------------------------------------------------------------
# concat / residual check their branch shapes again in apply (another input size
# can make branches disagree after init agreed), also under jit and vmap


def _transformed(run, transform, x):
    """`run(params, x)` as is, under `jit`, or under `vmap` over a stack of one batch."""
    if transform == "jit":
        return jax.jit(run), x
    if transform == "vmap":
        return jax.vmap(run, in_axes=(None, 0)), x[None]
    return run, x


@pytest.mark.parametrize("transform", ["eager", "jit", "vmap"])
def test_concat_checks_branch_shapes_in_apply(transform):
    # like Conv2D(stride=2) with "SAME" and "VALID" padding: equal at H = 4, not at H = 5
    model = fnn.concat(lambda x: x[:, ::2], lambda x: x[:, 1::2])
    params, state = model.init(None, (4, 1))
    apply = lambda p, x: model.apply(p, state, x)[0]
    run, x = _transformed(apply, transform, jnp.ones((1, 5, 1)))
    with pytest.raises(ValueError, match=r"concat\.apply: branch outputs must match on all axes "
                                         r"but axis=-1; got \(1, 3, 1\) from 0_<lambda> and "
                                         r"\(1, 2, 1\) from 1_<lambda> for input \(1, 5, 1\)"):
        run(params, x)
    good, x = _transformed(apply, transform, jnp.arange(4.0).reshape(1, 4, 1))
    np.testing.assert_array_equal(good(params, x), jnp.array([[[0.0, 1.0], [2.0, 3.0]]]).reshape(
        x.shape[:-2] + (2, 2)))


def test_concat_apply_checks_batch_axis_and_axis_range():
    pair = fnn.concat(fnn.identity, lambda x: x[:1])
    with pytest.raises(ValueError, match=r"concat\.apply: .*got \(2, 3\) from 0_identity and "
                                         r"\(1, 3\) from 1_<lambda> for input \(2, 3\)"):
        pair.apply({}, {}, jnp.ones((2, 3)))
    wide = fnn.concat(fnn.identity, fnn.identity, axis=2)
    wide.init(None, (2, 3))                          # axis 2 exists at init ...
    with pytest.raises(ValueError, match=r"concat\.apply: axis=2 is out of range for the branch "
                                         r"outputs \(N, 3\) \(rank 2, from 0_identity\)"):
        wide.apply({}, {}, jnp.ones((4, 3)))         # ... not for this input


@pytest.mark.parametrize("transform", ["eager", "jit", "vmap"])
def test_residual_checks_shapes_in_apply(transform):
    model = fnn.residual(lambda x: x[:, ::2, ::2])  # like a stride-2 block: fine for 1x1 only
    params, state = model.init(None, (1, 1, 3))
    apply = lambda p, x: model.apply(p, state, x)[0]
    run, x = _transformed(apply, transform, jnp.ones((2, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"residual\.apply: block output \(2, 2, 2, 3\) and "
                                         r"shortcut output \(2, 4, 4, 3\) differ for input "
                                         r"\(2, 4, 4, 3\); give a projection shortcut"):
        run(params, x)
    good, x = _transformed(apply, transform, jnp.ones((2, 1, 1, 3)))
    np.testing.assert_array_equal(good(params, x), 2 * x)


def test_residual_never_broadcasts():
    pooled = fnn.residual(lambda x: x.sum((1, 2), keepdims=True))
    with pytest.raises(ValueError, match=r"residual\.apply: block output \(2, 1, 1, 3\) and "
                                         r"shortcut output \(2, 4, 4, 3\) differ"):
        pooled.apply({}, {}, jnp.ones((2, 4, 4, 3)))
    sliced = fnn.residual(fnn.identity, shortcut=lambda x: x[:, :1])
    with pytest.raises(ValueError, match=r"residual\.apply: block output \(2, 3\) and shortcut "
                                         r"output \(2, 1\) differ for input \(2, 3\)"):
        sliced.apply({}, {}, jnp.ones((2, 3)))


# ---------------------------------------------------------------------------
# the Layer protocol: explicit fields, read by combinators and tools


def _doubling_layer(name="Double", **fields):
    """A user layer written against the three-field protocol: `y = 2 x`, no params."""
    def init(key, input_shape):
        del key, input_shape
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        return 2.0 * x, state

    return fnn.Layer(init, apply, name, **fields)


def test_a_three_field_user_layer_keeps_working(key):
    """`Layer(init, apply, name)` as users wrote it for 0.1: a leaf on float input taking
    no extra keyword, composed, summarised, walked and memoised like any layer."""
    double = _doubling_layer()
    assert (double.children, double.keywords, double.combinator) == ((), frozenset(), None)
    assert double.input_dtype == jnp.float32
    model = fnn.serial(Dense(2), double)
    params, state = model.init(key, (3,))
    x = jnp.arange(6.0).reshape(2, 3)
    y, _ = model.apply(params, state, x)
    w, b = (np.asarray(params["0_Dense"][k], np.float64) for k in ("w", "b"))
    want = 2.0 * (np.asarray(x, np.float64) @ w + b)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    acts = fnn.intermediates(model, params, state, x)
    np.testing.assert_allclose(acts["1_Double"], want, rtol=1e-6)
    rows = fnn.summary(model, (3,)).rows
    assert [(r.path, r.output_shape, r.params) for r in rows] == [
        ("0_Dense", (2,), 8), ("1_Double", (2,), 0)]
    assert fnn.output_shape(double, (4, 5)) == (4, 5)
    same = fnn.Layer(double.init, double.apply, "Double")        # hashable: a memo key
    assert same == double and hash(same) == hash(double) and len({model, model}) == 1


def test_a_renamed_combinator_is_still_walked(key):
    """`_replace(name=...)` keeps the children, keywords and kind, so `summary` and
    `intermediates` still see inside (the zoo names its blocks so); a Layer rebuilt from
    `init` and `apply` alone is a leaf, one row and one output."""
    block = fnn.serial(Dense(3), fnn.relu)._replace(name="Block")
    assert (block.combinator, [k for k, _ in block.children]) == ("serial", ["0_Dense", "1_relu"])
    model = fnn.serial(block, Dense(2))
    params, state = model.init(key, (4,))
    assert set(params) == {"0_Block", "1_Dense"}
    x = jax.random.normal(key, (5, 4))
    acts = fnn.intermediates(model, params, state, x)
    p0, p1 = (jax.tree.map(lambda a: np.asarray(a, np.float64), params[k])
              for k in ("0_Block", "1_Dense"))
    h = np.asarray(x, np.float64) @ p0["0_Dense"]["w"] + p0["0_Dense"]["b"]
    np.testing.assert_allclose(acts["0_Block"]["0_Dense"], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["0_Block"]["1_relu"], np.maximum(h, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["1_Dense"], np.maximum(h, 0) @ p1["w"] + p1["b"], rtol=1e-5,
                               atol=1e-6)
    walked = fnn.summary(model, (4,))
    assert [r.path for r in walked.rows] == ["0_Block/0_Dense", "0_Block/1_relu", "1_Dense"]
    opaque = fnn.Layer(block.init, block.apply, "Block")
    flat = fnn.summary(fnn.serial(opaque, Dense(2)), (4,))
    assert [(r.path, r.params, r.macs) for r in flat.rows] == [("0_Block", 15, 12),
                                                                ("1_Dense", 8, 6)]
    assert walked.total_macs == flat.total_macs == 4 * 3 + 3 * 2


def test_input_dtype_is_a_field_combinators_read(key):
    """A user layer on integer input says so in `input_dtype`; `serial` probes the next
    layer's shape with it, and passes it on as its own."""
    def init(key, input_shape):
        del key
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params, key, train
        assert jnp.issubdtype(x.dtype, jnp.integer), x.dtype   # probed with ints
        return jax.nn.one_hot(x, 3), state

    one_hot = fnn.Layer(init, apply, "OneHot", input_dtype=jnp.int32)
    model = fnn.serial(one_hot, Flatten(), Dense(2))
    assert model.input_dtype == jnp.int32
    params, state = model.init(key, (4,))
    assert params["2_Dense"]["w"].shape == (12, 2)
    assert fnn.output_shape(model, (4,)) == (2,)


def test_fields_of_the_combinators():
    lstm = LSTM(3)
    assert lstm.keywords == frozenset({"lengths", "initial_state"})
    for wrap, kind in ((fnn.serial, "serial"), (fnn.concat, "concat"), (fnn.residual, "residual")):
        layer = wrap(lstm) if kind != "residual" else wrap(lstm, fnn.identity)
        assert layer.combinator == kind and layer.keywords == frozenset({"lengths",
                                                                         "initial_state"})
        assert [child for _, child in layer.children][0] is lstm
    assert fnn.serial(Dense(2), jnp.tanh).keywords == frozenset()
    assert fnn.serial(_doubling_layer(keywords=None), Dense(2)).keywords is None
    emb = fnn.layers.Embedding(5, 2)
    assert fnn.concat(emb, emb).input_dtype == jnp.int32
    model = fnn.serial(Dense(2), fnn.relu)
    assert "children=['0_Dense', '1_relu']" in repr(model) and "name='Serial'" in repr(model)


def test_combinators_read_fields_not_signatures():
    """No `inspect`, no `__qualname__`, no function attributes in the core: the protocol
    is the Layer's fields."""
    import ast
    import pathlib

    source = pathlib.Path(fnn.core.__file__).read_text()
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "inspect" not in imported
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not attributes & {"__qualname__", "signature", "__signature__", "accepted_keywords"}
    assert "getattr(layer" not in source and ".apply.children" not in source
