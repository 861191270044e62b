"""`fnn.export` and `fnn export`: a model with its weights as `jax.export` bytes that
a process with only jax (and numpy) runs, with the same outputs and any batch size."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import fnn
from fnn.layers import _onednn_conv

_RUNNER = """
import sys
import jax, numpy as np
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(exported.call(x)))
assert not [m for m in sys.modules if m.split(".")[0] in ("fnn", "fnn_onednn", "torch")]
"""


def _run_in_fresh_process(tmp_path, blob: bytes, x: np.ndarray) -> np.ndarray:
    (tmp_path / "model.bin").write_bytes(blob)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("PYTHONPATH", None)   # not even importable: the bytes must be enough
    subprocess.run([sys.executable, "-c", _RUNNER, "model.bin", "x.npy", "y.npy"],
                   cwd=tmp_path, env=env, check=True, timeout=300)
    return np.load(tmp_path / "y.npy")


def test_lenet5_runs_from_its_bytes_in_a_process_with_only_jax(tmp_path):
    model = fnn.models.lenet5()
    params, state = fnn.init(model, jax.random.PRNGKey(0), (28, 28, 1))
    exported = fnn.export(model, params, state, (28, 28, 1))
    assert str(exported.in_avals[0].shape[0]) == "N"      # batch size symbolic
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 28, 28, 1)), np.float32)
    y = _run_in_fresh_process(tmp_path, exported.serialize(), x)
    np.testing.assert_allclose(y, np.asarray(model.apply(params, state, x)[0]),
                               rtol=1e-5, atol=1e-6)


def test_any_batch_size_and_inference_mode():
    model = fnn.serial(fnn.layers.Conv2D(4, 3), fnn.layers.BatchNorm(), fnn.relu,
                       fnn.layers.Dropout(0.5), fnn.layers.GlobalAvgPool(), fnn.layers.Dense(3))
    params, state = fnn.init(model, jax.random.PRNGKey(0), (16, 16, 3))
    state = jax.tree.map(lambda v: v + 0.5, state)
    restored = jax.export.deserialize(fnn.export(model, params, state, (16, 16, 3)).serialize())
    for n in (1, 3):
        x = np.asarray(jax.random.normal(jax.random.PRNGKey(n), (n, 16, 16, 3)), np.float32)
        np.testing.assert_allclose(np.asarray(restored.call(x)),
                                   np.asarray(model.apply(params, state, x)[0]),
                                   rtol=1e-5, atol=1e-5)


def test_embedding_models_take_integer_input():
    model = fnn.serial(fnn.layers.Embedding(11, 4), fnn.layers.LSTM(3), fnn.layers.Dense(2))
    params, state = fnn.init(model, jax.random.PRNGKey(0), (6,))
    exported = fnn.export(model, params, state, (6,))
    assert exported.in_avals[0].dtype == np.int32
    ids = np.arange(12, dtype=np.int32).reshape(2, 6) % 11
    np.testing.assert_allclose(np.asarray(exported.call(ids)),
                               np.asarray(model.apply(params, state, ids)[0]), rtol=1e-6)


def test_export_leaves_the_onednn_switch_as_it_was():
    before = _onednn_conv.enabled()
    model = fnn.serial(fnn.layers.Conv2D(2, 3))
    params, state = model.init(jax.random.PRNGKey(0), (5, 5, 2))
    text = fnn.export(model, params, state, (5, 5, 2)).mlir_module()
    # only XLA's own ops (and jax's check of N >= 1): runnable with jax alone
    assert set(re.findall(r"custom_call @(\w+)", text)) <= {"shape_assertion"}
    assert _onednn_conv.enabled() == before
    if before:   # the extension is in use here: a plain jax.export would call it, and refuses
        with pytest.raises(ValueError, match="fnn_onednn_conv_fwd"):
            jax.export.export(jax.jit(lambda x: model.apply(params, state, x)[0]))(
                jax.ShapeDtypeStruct((2, 5, 5, 2), np.float32))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from fnn import cli
    out = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FNN_CACHE_DIR", "off")
        assert cli.main(["train", "--dataset", "spiral", "--limit", "64", "--batch-size", "16",
                         "--epochs", "1", "--no-progress", "--out", str(out),
                         "--name", "run"]) == 0
    return out / "run"


def test_cli_export_of_a_trained_run(trained_run, tmp_path, capsys):
    from fnn import cli
    out = tmp_path / "m.bin"
    assert cli.main(["export", str(trained_run), "--out", str(out)]) == 0
    assert f"exported to {out}" in capsys.readouterr().out
    restored = jax.export.deserialize(out.read_bytes())
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (4, 2)), np.float32)
    assert restored.call(x).shape == (4, 3)      # spiral: 2-D points, 3 classes


def test_cli_export_without_checkpoint_fails(trained_run, tmp_path, capsys):
    from fnn import cli
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.unlink()
    assert cli.main(["export", str(run), "--out", str(tmp_path / "m.bin")]) == 1
    assert "has no checkpoint yet" in capsys.readouterr().err
    assert not (tmp_path / "m.bin").exists()


_DENSE = fnn.layers.Dense(2)
_P, _S = _DENSE.init(jax.random.PRNGKey(0), (3,))

BAD_INPUT = [
    ("model", lambda: fnn.export("lenet", _P, _S, (3,)), TypeError,
     r"fnn.export: model must be a fnn.Layer, got"),
    ("shape", lambda: fnn.export(_DENSE, _P, _S, 3), TypeError,
     r"fnn.export: input_shape must be a tuple"),
    ("params", lambda: fnn.export(_DENSE, [1], _S, (3,)), TypeError,
     r"fnn.export: params must be a dict"),
    ("dtype", lambda: fnn.export(_DENSE, _P, _S, (3,), dtype="floaty"), TypeError,
     r"fnn.export: .*dtype"),
    ("platforms", lambda: fnn.export(_DENSE, _P, _S, (3,), platforms="cpu"), TypeError,
     r"fnn.export: platforms must be a sequence of names"),
    ("wrong-params", lambda: fnn.export(_DENSE, _P, _S, (4,)), ValueError,
     r"Dense: .*4"),
    ("symbolic-batch", lambda: fnn.export(
        fnn.Layer(lambda k, s: ({}, {}), lambda p, s, x, **kw: (x.reshape(2, -1), s), "Fixed"),
        {}, {}, (3,)), ValueError, r"fnn.export: the model cannot run with a symbolic batch"),
]


@pytest.mark.parametrize("trigger, exc, match", [pytest.param(*c[1:], id=c[0])
                                                 for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
