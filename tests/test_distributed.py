"""fnn.distributed: data-parallel training equals single-device training.

The multi-device checks need 4 devices, which on CPU means
`XLA_FLAGS=--xla_force_host_platform_device_count=4` set before JAX starts; they
run once, in a subprocess (`tests/_distributed_worker.py`), and each test below
reports one of them. The argument checks run here, on this process's devices.
"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import distributed, train

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_distributed_worker.py")

CHECKS = [
    "four_devices",
    "mlp_matches_single_device",
    "batchnorm_cnn_matches_single_device",
    "batchnorm_uses_global_batch_statistics",
    "batch_sharded_and_params_replicated",
    "indivisible_batch_raises",
    "checkpoint_between_sharded_and_single",
    "model_axis_matches_single_device",
    "fit_with_mesh_matches_fit",
    "fit_with_mesh_and_steps_per_call_matches_fit",
]


@pytest.fixture(scope="module")
def worker_results():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, WORKER, *CHECKS], capture_output=True, text=True,
                          env=env, timeout=600)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["check"]] = r
    if not results:
        pytest.fail(f"the worker produced no results (exit {proc.returncode}):\n{proc.stderr}")
    return results


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS)
def test_on_four_devices(worker_results, check):
    r = worker_results.get(check)
    assert r is not None, f"check {check} did not report (the worker crashed?)"
    assert r["ok"], r["error"]


# ---------------------------------------------------------------------------
# argument checks, on this process's device(s)


def test_make_mesh_defaults_to_all_devices_on_the_data_axis():
    mesh = distributed.make_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.devices.size == jax.device_count()
    assert distributed.data_size(mesh) == jax.device_count()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(devices=[]), ValueError, "at least one device"),
    (dict(devices=["cpu:0"]), TypeError, "jax.Device"),
    (dict(devices=jax.devices()[:1] * 2), ValueError, "duplicates"),
    (dict(model_axis=0), ValueError, "positive int"),
    (dict(model_axis=jax.device_count() + 1), ValueError, "does not divide"),
])
def test_make_mesh_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        distributed.make_mesh(**kwargs)


def test_shard_batch_returns_one_sharded_array_per_argument():
    mesh = distributed.make_mesh()
    x, y = np.ones((8, 3), np.float32), np.arange(8)
    xs, ys = distributed.shard_batch(mesh, x, y)
    assert xs.sharding == distributed.batch_sharding(mesh)
    np.testing.assert_array_equal(np.asarray(ys), y)
    (only,) = distributed.shard_batch(mesh, x)
    assert only.shape == (8, 3)


@pytest.mark.parametrize("arrays, exc, match", [
    ((), ValueError, "at least one array"),
    ((np.ones((4, 2)), np.ones(3)), ValueError, r"same first \(batch\) dimension"),
    ((np.float32(1.0),), ValueError, "scalar"),
    (([1, 2],), TypeError, "must be an array"),
])
def test_shard_batch_rejects_bad_arguments(arrays, exc, match):
    with pytest.raises(exc, match=match):
        distributed.shard_batch(distributed.make_mesh(), *arrays)


def test_functions_reject_a_mesh_without_a_data_axis():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("batch",))
    with pytest.raises(ValueError, match="axis named 'data'"):
        distributed.shard_batch(mesh, np.ones((2, 2)))
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        distributed.replicate("mesh", {})


def test_model_sharding_is_replicated_without_a_model_axis():
    mesh = distributed.make_mesh()
    params = {"w": jnp.ones((512, 256)), "b": jnp.ones(256)}
    specs = distributed.model_sharding(mesh, params, min_size=0)
    assert all(s.spec == jax.sharding.PartitionSpec() for s in jax.tree.leaves(specs))


def test_single_device_step_equals_make_train_step(key):
    model, opt = fnn.models.mlp([8, 3]), fnn.optim.sgd(0.1)
    loss = fnn.losses.softmax_cross_entropy
    x, y = jax.random.normal(key, (4, 5)), jnp.array([0, 1, 2, 1])
    ts = train.init_train_state(model, opt, key, (5,))
    copy = lambda t: jax.tree.map(jnp.copy, t)
    ref, m_ref = train.make_train_step(model, loss, opt)(copy(ts), x, y)
    mesh = distributed.make_mesh()
    step = distributed.data_parallel(train.make_train_step(model, loss, opt, jit=False), mesh)
    out, m = step(distributed.replicate(mesh, copy(ts)), *distributed.shard_batch(mesh, x, y))
    for a, b in zip(jax.tree.leaves((ref, m_ref)), jax.tree.leaves((out, m)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_train_make_train_step_with_a_mesh_is_the_data_parallel_step():
    model, opt, loss = fnn.models.mlp([3]), fnn.optim.sgd(0.1), fnn.losses.mse
    mesh = distributed.make_mesh()
    step = train.make_train_step(model, loss, opt, mesh=mesh)
    assert step.mesh is mesh and hasattr(step.jitted, "lower")
    with pytest.raises(ValueError, match="mesh= needs jit=True"):
        train.make_train_step(model, loss, opt, mesh=mesh, jit=False)


def test_distributed_takes_steps_and_does_not_import_train():
    """`fnn.distributed` jits a step it is given; only `fnn.train` imports the other way."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(distributed))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("fnn.train") for m in imported), imported
    assert not any(isinstance(n, ast.ImportFrom) and n.module == "fnn" and
                   any(a.name == "train" for a in n.names) for n in ast.walk(tree))
