"""Multi-device checks for tests/test_distributed.py, run in a subprocess.

The parent sets `XLA_FLAGS=--xla_force_host_platform_device_count=4` (which must
happen before JAX starts, hence the subprocess) and runs

    python tests/_distributed_worker.py [check ...]

Each check runs in turn; the worker prints one JSON line per check,
`{"check": name, "ok": bool, "error": traceback-or-null}`, so one failing check
does not hide the others. Without arguments every check runs.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_numpy_rank_promotion", "raise")

import fnn  # noqa: E402
from fnn import checkpoint, distributed, train  # noqa: E402
from fnn.layers import BatchNorm, Conv2D, Dense, GlobalAvgPool  # noqa: E402

LOSS = fnn.losses.softmax_cross_entropy
RTOL, ATOL = 1e-4, 1e-5  # float32: the all-reduce adds in a different order


def _data(shape, n=16, classes=3, seed=1):
    kx, ky = jax.random.split(jax.random.key(seed))
    return (jax.random.normal(kx, (n, *shape), jnp.float32),
            jax.random.randint(ky, (n,), 0, classes))


class Setup:
    """A model, an optimizer, data, a fresh state and both steps (compiled once)."""

    def __init__(self, model, optimizer, shape, mesh):
        self.model, self.optimizer, self.mesh = model, optimizer, mesh
        self.x, self.y = _data(shape)
        self.ts0 = train.init_train_state(model, optimizer, jax.random.key(0), shape)
        self.single = train.make_train_step(model, LOSS, optimizer)
        self.parallel = distributed.data_parallel(
            train.make_train_step(model, LOSS, optimizer, jit=False), mesh)
        self.xs, self.ys = distributed.shard_batch(mesh, self.x, self.y)

    def fresh(self, parallel: bool):
        ts = jax.tree.map(jnp.copy, self.ts0)
        return distributed.replicate(self.mesh, ts) if parallel else ts

    def run(self, ts, parallel: bool, steps: int):
        step, x, y = ((self.parallel, self.xs, self.ys) if parallel
                      else (self.single, self.x, self.y))
        metrics = None
        for _ in range(steps):
            ts, metrics = step(ts, x, y)
        return ts, metrics


def close(a, b, rtol=RTOL, atol=ATOL):
    for (path, u), v in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b),
                            strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol,
                                   err_msg=jax.tree_util.keystr(path))


def equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


_SETUPS: dict = {}


def mlp() -> Setup:
    if "mlp" not in _SETUPS:
        model = fnn.models.mlp([32, 3])
        _SETUPS["mlp"] = Setup(model, fnn.optim.adam(1e-2), (8,), distributed.make_mesh())
    return _SETUPS["mlp"]


def cnn() -> Setup:
    if "cnn" not in _SETUPS:
        model = fnn.serial(Conv2D(4, 3), BatchNorm(), fnn.relu, GlobalAvgPool(), Dense(3))
        _SETUPS["cnn"] = Setup(model, fnn.optim.momentum(0.1), (6, 6, 2),
                               distributed.make_mesh())
    return _SETUPS["cnn"]


# ---------------------------------------------------------------------------
# checks


def check_four_devices():
    assert jax.device_count() == 4, jax.devices()
    mesh = distributed.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == 4
    assert distributed.data_size(mesh) == 4
    mesh2 = distributed.make_mesh(model_axis=2)
    assert dict(mesh2.shape) == {"data": 2, "model": 2}
    assert distributed.make_mesh(jax.devices()[:2]).shape["data"] == 2


def _same_as_single_device(s: Setup):
    one_s, m_s = s.run(s.fresh(False), False, 1)
    one_p, m_p = s.run(s.fresh(True), True, 1)
    close(one_s, one_p)
    close(m_s, m_p)
    twenty_s, m_s = s.run(one_s, False, 19)
    twenty_p, m_p = s.run(one_p, True, 19)
    close(twenty_s, twenty_p)
    close(m_s, m_p)
    assert int(twenty_p.step) == 20
    # training did something (the comparison is not between two untouched states)
    assert float(m_p["loss"]) < float(s.run(s.fresh(False), False, 1)[1]["loss"])
    return twenty_p


def check_mlp_matches_single_device():
    _same_as_single_device(mlp())


def check_batchnorm_cnn_matches_single_device():
    s = cnn()
    ts = _same_as_single_device(s)
    # the running statistics moved away from their init (0 mean, 1 var) identically
    assert float(jnp.max(jnp.abs(ts.model_state["1_BatchNorm"]["mean"]))) > 1e-3


def check_batchnorm_uses_global_batch_statistics():
    """BatchNorm's batch mean under a sharded batch is the mean of all 16 examples,
    not of one device's 4: compare with numpy on the whole batch."""
    s = cnn()
    bn = BatchNorm(decay=0.0)  # running stats := this batch's stats
    params, state = bn.init(None, (6, 6, 2))
    x = np.asarray(s.x) * np.arange(1, 17, dtype=np.float32)[:, None, None, None]
    (xs,) = distributed.shard_batch(s.mesh, x)
    f = jax.jit(lambda p, st, x: bn.apply(p, st, x, train=True),
                out_shardings=distributed.replicated_sharding(s.mesh))
    _, new = f(params, state, xs)
    np.testing.assert_allclose(np.asarray(new["mean"]), x.mean(axis=(0, 1, 2)), rtol=1e-5)
    n = x.shape[0] * 36
    np.testing.assert_allclose(np.asarray(new["var"]), x.var(axis=(0, 1, 2)) * n / (n - 1),
                               rtol=1e-4)


def check_batch_sharded_and_params_replicated():
    s = mlp()
    data = jax.sharding.PartitionSpec("data")
    for a in (s.xs, s.ys):
        assert isinstance(a.sharding, jax.sharding.NamedSharding), a.sharding
        assert a.sharding.spec == data, a.sharding.spec
        assert not a.sharding.is_fully_replicated
        assert sorted(sh.data.shape[0] for sh in a.addressable_shards) == [4, 4, 4, 4]
        assert len({sh.device for sh in a.addressable_shards}) == 4
    ts, metrics = s.run(s.fresh(True), True, 2)
    for leaf in jax.tree.leaves((ts, metrics)):
        assert leaf.sharding.is_fully_replicated, leaf.sharding
        assert len(leaf.sharding.device_set) == 4
    # the gradient average is an XLA all-reduce (inserted by sharding propagation)
    hlo = s.parallel.jitted.lower(ts, s.xs, s.ys).compile().as_text()
    assert "all-reduce" in hlo


def check_indivisible_batch_raises():
    s = mlp()
    for fn in (lambda: distributed.shard_batch(s.mesh, s.x[:10], s.y[:10]),
               lambda: s.parallel(s.fresh(True), s.x[:10], s.y[:10])):
        try:
            fn()
        except ValueError as e:
            msg = str(e)
            assert "10 examples" in msg and "4 devices" in msg and "8 or 12" in msg, msg
        else:
            raise AssertionError("no ValueError for a batch of 10 on 4 devices")
    try:
        train.fit(s.model, s.optimizer, LOSS, (s.x, s.y), epochs=1, batch_size=10,
                  key=jax.random.key(0), progress=False, mesh=s.mesh)
    except ValueError as e:
        assert "10" in str(e) and "4 devices" in str(e), str(e)
    else:
        raise AssertionError("fit: no ValueError for batch_size=10 on 4 devices")


def check_checkpoint_between_sharded_and_single():
    s = mlp()
    with tempfile.TemporaryDirectory() as tmp:
        # sharded -> single device
        parallel, _ = s.run(s.fresh(True), True, 5)
        checkpoint.save(os.path.join(tmp, "p.npz"), parallel)
        loaded = checkpoint.load(os.path.join(tmp, "p.npz"), like=s.ts0)
        equal(loaded, parallel)
        assert all(len(a.devices()) == 1 for a in jax.tree.leaves(loaded))
        cont_single, _ = s.run(loaded, False, 5)
        # single device -> sharded
        single, _ = s.run(s.fresh(False), False, 5)
        checkpoint.save(os.path.join(tmp, "s.npz"), single)
        loaded = distributed.replicate(
            s.mesh, checkpoint.load(os.path.join(tmp, "s.npz"), like=s.ts0))
        equal(loaded, single)
        cont_parallel, _ = s.run(loaded, True, 5)
        # both continuations are 10 steps from the same start
        close(cont_single, cont_parallel)


def check_model_axis_matches_single_device():
    s = cnn()
    mesh = distributed.make_mesh(model_axis=2)
    step = distributed.data_parallel(train.make_train_step(s.model, LOSS, s.optimizer, jit=False),
                                     mesh, min_shard_size=0)
    ts = distributed.shard_model(mesh, s.fresh(False), min_size=0)
    w = ts.opt_state.params["0_Conv2D"]["w"]
    assert w.sharding.spec == jax.sharding.PartitionSpec(None, None, None, "model")
    xs, ys = distributed.shard_batch(mesh, s.x, s.y)
    for _ in range(5):
        ts, _ = step(ts, xs, ys)
    ref, _ = s.run(s.fresh(False), False, 5)
    close(ref, ts)
    spec = ts.opt_state.v["0_Conv2D"]["w"].sharding.spec  # slots follow their params
    assert spec == jax.sharding.PartitionSpec(None, None, None, "model"), spec
    assert ts.opt_state.params["0_Conv2D"]["b"].sharding.is_fully_replicated


def check_fit_with_mesh_matches_fit():
    s = cnn()
    x, y = _data((6, 6, 2), n=48, seed=3)
    kwargs = dict(epochs=2, batch_size=16, key=jax.random.key(5), progress=False,
                  val_data=(x[:8], y[:8]))
    ts_1, hist_1 = train.fit(s.model, s.optimizer, LOSS, (x, y), **kwargs)
    ts_4, hist_4 = train.fit(s.model, s.optimizer, LOSS, (x, y), mesh=s.mesh, **kwargs)
    close(ts_1, ts_4)
    assert set(hist_1) == set(hist_4)
    for k in hist_1:
        np.testing.assert_allclose(hist_1[k], hist_4[k], rtol=RTOL, atol=ATOL, err_msg=k)
    leaf = ts_4.opt_state.params["0_Conv2D"]["w"]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4
    # a run checkpointed by fit on the mesh resumes without it (and lands on the same result)
    with tempfile.TemporaryDirectory() as tmp:
        train.fit(s.model, s.optimizer, LOSS, (x, y), mesh=s.mesh, checkpoint_dir=tmp,
                  **dict(kwargs, epochs=1))
        ts_r, hist_r = train.fit(s.model, s.optimizer, LOSS, (x, y), checkpoint_dir=tmp,
                                 **kwargs)
    close(ts_1, ts_r)
    np.testing.assert_allclose(hist_1["loss"], hist_r["loss"], rtol=RTOL, atol=ATOL)


def check_fit_with_mesh_and_steps_per_call_matches_fit():
    # 5 steps per epoch, 2 per call: scanned pairs plus a single step, data-parallel
    s = mlp()
    x, y = _data((8,), n=40, seed=4)
    kwargs = dict(epochs=2, batch_size=8, key=jax.random.key(6), progress=False)
    ts_1, hist_1 = train.fit(s.model, s.optimizer, LOSS, (x, y), **kwargs)
    ts_4, hist_4 = train.fit(s.model, s.optimizer, LOSS, (x, y), mesh=s.mesh, steps_per_call=2,
                             fused_form="scan", **kwargs)
    close(ts_1, ts_4)
    np.testing.assert_allclose(hist_1["loss"], hist_4["loss"], rtol=RTOL, atol=ATOL)
    leaf = jax.tree.leaves(ts_4.opt_state.params)[0]
    assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4
    # a CNN keeps single steps on CPU ("auto"), still data-parallel
    c = cnn()
    xc, yc = _data((6, 6, 2), n=32, seed=5)
    kw = dict(epochs=1, batch_size=8, key=jax.random.key(7), progress=False)
    ts_c1, _ = train.fit(c.model, c.optimizer, LOSS, (xc, yc), **kw)
    ts_c4, _ = train.fit(c.model, c.optimizer, LOSS, (xc, yc), mesh=c.mesh, steps_per_call=2,
                         **kw)
    close(ts_c1, ts_c4)


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items()
          if name.startswith("check_")}


def main(names):
    for name in names or CHECKS:
        try:
            CHECKS[name]()
            result = {"check": name, "ok": True, "error": None}
        except Exception:  # noqa: BLE001 - reported to the parent test
            result = {"check": name, "ok": False, "error": traceback.format_exc()}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
