"""`fnn.interop.save_safetensors` / `load_safetensors`: files that PyTorch's own
`safetensors.torch` reads and writes, `/`-joined nested keys, `like=` checks as
`fnn.checkpoint.load`, atomic writes."""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

safetensors_torch = pytest.importorskip("safetensors.torch")
torch = pytest.importorskip("torch")

import fnn  # noqa: E402
from fnn.interop import load_safetensors, save_safetensors  # noqa: E402


def _tree():
    model = fnn.serial(fnn.layers.Conv2D(3, 3), fnn.layers.BatchNorm(), fnn.relu,
                       fnn.layers.Flatten(), fnn.layers.Dense(2))
    params, state = model.init(jax.random.PRNGKey(0), (4, 4, 1))
    return {"params": params, "state": state,
            "extra": {"half": jnp.arange(3, dtype=jnp.bfloat16), "ids": np.arange(4, dtype=np.int32),
                      "flag": np.array([True, False])}}


def _assert_exact(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: (np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
                               (x.dtype == y.dtype) or pytest.fail(f"{x.dtype} != {y.dtype}")),
                 a, b)


def test_round_trip_with_and_without_like(tmp_path):
    tree, path = _tree(), tmp_path / "t.safetensors"
    assert save_safetensors(path, tree) == str(path)
    loaded = load_safetensors(path)
    assert isinstance(loaded["params"]["0_Conv2D"]["w"], jax.Array)
    _assert_exact(loaded, tree)
    _assert_exact(load_safetensors(path, like=tree), tree)
    as_struct = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
    _assert_exact(load_safetensors(path, like=as_struct), tree)
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]   # no temporary left


def test_torch_reads_fnn_files_with_slash_joined_names(tmp_path):
    tree, path = _tree(), str(tmp_path / "t.safetensors")
    save_safetensors(path, tree)
    tensors = safetensors_torch.load_file(path)
    assert set(tensors) == {"params/0_Conv2D/w", "params/0_Conv2D/b", "params/1_BatchNorm/scale",
                            "params/1_BatchNorm/bias", "params/4_Dense/w", "params/4_Dense/b",
                            "state/1_BatchNorm/mean", "state/1_BatchNorm/var", "extra/half",
                            "extra/ids", "extra/flag"}
    np.testing.assert_array_equal(tensors["params/4_Dense/w"].numpy(),
                                  np.asarray(tree["params"]["4_Dense"]["w"]))
    assert tensors["extra/half"].dtype == torch.bfloat16
    np.testing.assert_array_equal(tensors["extra/half"].float().numpy(), [0.0, 1.0, 2.0])
    assert tensors["extra/ids"].dtype == torch.int32 and tensors["extra/flag"].dtype == torch.bool


def test_fnn_reads_torch_files(tmp_path):
    path = str(tmp_path / "torch.safetensors")
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    sd = {k: v.contiguous() for k, v in module.state_dict().items()}
    sd["half"] = torch.arange(3, dtype=torch.bfloat16)
    safetensors_torch.save_file(sd, path)
    loaded = load_safetensors(path)       # "0.weight" has no "/": a flat dict
    for key, t in sd.items():
        value = np.asarray(loaded[key])
        expected = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        np.testing.assert_array_equal(value.astype(expected.dtype), expected)
    assert loaded["half"].dtype == jnp.bfloat16
    # and straight into fnn params
    params, state = fnn.interop.from_torch(
        fnn.serial(fnn.layers.Dense(2), fnn.layers.BatchNorm()),
        {k: v for k, v in loaded.items() if k != "half"}, (3,))
    np.testing.assert_array_equal(params["0_Dense"]["w"], sd["0.weight"].numpy().T)


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "t.safetensors"
    save_safetensors(path, {"a": np.ones(2, np.float32)})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_safetensors(path, {"a": "not an array"})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["t.safetensors"]


def _saved(tmp_path, tree):
    path = tmp_path / "x.safetensors"
    save_safetensors(path, tree)
    return path


BAD_INPUT = [
    ("path-type", lambda d: save_safetensors(3, {}), TypeError,
     r"save_safetensors: path must be a str or os.PathLike, got"),
    ("swapped-arguments", lambda d: save_safetensors({"a": np.ones(1)}, str(d / "x")),
     TypeError, r"The arguments are save_safetensors\(path, tree\)"),
    ("not-a-dict", lambda d: save_safetensors(d / "x", [np.ones(1)]), TypeError,
     r"save_safetensors: expected a \(nested\) dict of arrays, got"),
    ("slash-in-key", lambda d: save_safetensors(d / "x", {"a/b": np.ones(1)}), ValueError,
     r"save_safetensors: keys must be non-empty strings without '/' .* got 'a/b'"),
    ("non-array-leaf", lambda d: save_safetensors(d / "x", {"a": {"b": 1.0}}), TypeError,
     r"save_safetensors: 'a/b' must be an array or a dict, got"),
    ("complex-dtype", lambda d: save_safetensors(d / "x", {"c": np.ones(2, np.complex64)}),
     TypeError, r"save_safetensors: 'c' has dtype complex64, which safetensors does not hold"),
    ("missing-folder", lambda d: save_safetensors(d / "no" / "x", {}), FileNotFoundError,
     r"save_safetensors: cannot write .* does not exist"),
    ("load-missing", lambda d: load_safetensors(d / "none"), FileNotFoundError,
     r"load_safetensors: .*none does not exist"),
    ("load-folder", lambda d: load_safetensors(d), IsADirectoryError,
     r"load_safetensors: .* is a folder; expected a .safetensors file"),
    ("load-path-type", lambda d: load_safetensors(None), TypeError,
     r"load_safetensors: path must be a str or os.PathLike"),
    ("load-damaged", lambda d: (d / "bad").write_bytes(b"garbage!garbage") and load_safetensors(
        d / "bad"), ValueError, r"load_safetensors: .*bad is not a valid safetensors file"),
    ("like-shape", lambda d: load_safetensors(_saved(d, {"a": np.ones(2, np.float32)}),
                                              like={"a": np.ones(3, np.float32)}), ValueError,
     r"load_safetensors: .* does not match `like` at \['a'\]: expected float32 array of shape "
     r"\(3,\) \(from like\), found float32 array of shape \(2,\) in the file"),
    ("like-dtype", lambda d: load_safetensors(_saved(d, {"a": np.ones(2, np.float32)}),
                                              like={"a": np.ones(2, np.float16)}), ValueError,
     r"does not match `like` at \['a'\]: expected float16 array"),
    ("like-missing-key", lambda d: load_safetensors(_saved(d, {"a": np.ones(2, np.float32)}),
                                                    like={"a": np.ones(2, np.float32),
                                                          "b": np.ones(1, np.float32)}),
     ValueError, r"does not match `like` at \['b'\]: expected float32 array of shape \(1,\) "
                 r"\(from like\), found nothing"),
]


@pytest.mark.parametrize("trigger, exc, match", [pytest.param(*c[1:], id=c[0])
                                                 for c in BAD_INPUT])
def test_bad_input(tmp_path, trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger(tmp_path)
