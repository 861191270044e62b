"""fnn.checkpoint: round trips, `like` validation, refusal of bad files, atomic saves."""
import collections
import importlib.util
import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.fuzz_checkpoint import canon
from fnn import checkpoint

EXECUTED = []


def _mark_executed():  # what a malicious pickle would call if it were ever unpickled
    EXECUTED.append(True)


class _Evil:
    def __reduce__(self):
        return (_mark_executed, ())


class AdamLike(NamedTuple):
    step: jax.Array  # int32 scalar
    params: dict
    mu: dict
    nu: dict


def assert_identical(a, b, strict=True):
    assert canon(a, strict) == canon(b, strict)


def sample_tree():
    params = {"0_Dense": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)},
              "2_Dense": {"w": jnp.ones((3, 1)), "b": jnp.full((1,), 0.5)}}
    return {
        "params": params,
        "opt": AdamLike(jnp.asarray(7, jnp.int32), params,
                        jax.tree_util.tree_map(jnp.zeros_like, params),
                        jax.tree_util.tree_map(jnp.ones_like, params)),
        "model_state": {"1_BatchNorm": {"mean": jnp.zeros(3), "var": jnp.ones(3)}},
        "key": jax.random.key(3),
        "raw_key": jax.random.PRNGKey(4),
        "epoch": 2,
        "best": 0.125,
        "stopped": False,
        "counts": np.arange(4, dtype=np.int64),
        "history": [1.5, 2, (None, np.float32(3.0))],
    }


def test_round_trip_nested_tree_with_int_and_float_leaves(tmp_path):
    tree = sample_tree()
    path = checkpoint.save(tmp_path / "a.npz", tree)
    assert path == str(tmp_path / "a.npz")
    out = checkpoint.load(path)
    assert_identical(out, tree, strict=False)
    assert out["params"]["0_Dense"]["w"].dtype == jnp.float32
    assert out["opt"].step.dtype == jnp.int32
    assert out["counts"].dtype == np.int64 and isinstance(out["counts"], np.ndarray)


def test_namedtuple_state_comes_back_as_like_class(tmp_path):
    tree = sample_tree()
    checkpoint.save(tmp_path / "a.npz", tree)
    out = checkpoint.load(tmp_path / "a.npz", like=tree)
    assert type(out["opt"]) is AdamLike
    assert_identical(out, tree, strict=True)
    # Without like: a namedtuple rebuilt from the saved class and field names.
    plain = checkpoint.load(tmp_path / "a.npz")["opt"]
    assert type(plain).__name__ == "AdamLike" and type(plain)._fields == AdamLike._fields
    np.testing.assert_array_equal(plain.params["0_Dense"]["w"], tree["params"]["0_Dense"]["w"])


def test_numpy_float64_and_complex128_scalars_round_trip_with_like(tmp_path):
    """np.float64 and np.complex128 subclass Python's float and complex, yet are NumPy
    scalars; found by the fuzz test (a root `np.float64(0.0)` was refused with `like`)."""
    tree = {"f": np.float64(1.5), "c": np.complex128(1 - 2j), "p": 2.5}
    checkpoint.save(tmp_path / "a.npz", tree)
    for out in (checkpoint.load(tmp_path / "a.npz"),
                checkpoint.load(tmp_path / "a.npz", like=tree)):
        assert_identical(out, tree, strict=True)
        assert type(out["f"]) is np.float64 and type(out["p"]) is float
    with pytest.raises(ValueError, match="expected a Python float"):
        checkpoint.load(tmp_path / "a.npz", like={**tree, "f": 1.5})


def test_like_from_eval_shape(tmp_path):
    tree = {"w": jnp.ones((2, 2)), "k": jax.random.key(0), "n": 3}
    checkpoint.save(tmp_path / "a.npz", tree)
    like = jax.eval_shape(lambda: {"w": jnp.ones((2, 2)), "k": jax.random.key(0)})
    like["n"] = 0
    out = checkpoint.load(tmp_path / "a.npz", like=like)
    assert list(out) == list(like)  # like's key order
    assert_identical(out, {k: tree[k] for k in like})


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_typed_prng_key_round_trip_continues_the_stream(tmp_path, impl):
    key = jax.random.split(jax.random.key(11, impl=impl), 3)
    checkpoint.save(tmp_path / "k.npz", {"key": key, "one": key[0]})
    out = checkpoint.load(tmp_path / "k.npz")
    assert str(jax.random.key_impl(out["key"])) == impl
    assert out["key"].shape == (3,) and out["one"].shape == ()
    np.testing.assert_array_equal(jax.random.key_data(out["key"]), jax.random.key_data(key))
    np.testing.assert_array_equal(jax.random.uniform(out["one"], (4,)),
                                  jax.random.uniform(key[0], (4,)))


def test_raw_uint32_key_stays_raw(tmp_path):
    key = jax.random.PRNGKey(5)
    checkpoint.save(tmp_path / "k.npz", key)
    out = checkpoint.load(tmp_path / "k.npz")
    assert out.dtype == jnp.uint32 and out.shape == (2,)
    np.testing.assert_array_equal(jax.random.normal(out, (3,)), jax.random.normal(key, (3,)))


def test_python_scalars_come_back_as_python_scalars(tmp_path):
    tree = [0, -(2**63), 2**63 - 1, 1.5, float("nan"), float("-inf"), True, False, 1 - 2j]
    checkpoint.save(tmp_path / "s.npz", tree)
    out = checkpoint.load(tmp_path / "s.npz")
    assert [type(v) for v in out] == [type(v) for v in tree]
    assert_identical(out, tree)


def test_python_int_out_of_int64_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"does not fit in int64"):
        checkpoint.save(tmp_path / "s.npz", {"big": 2**64})


def test_edge_leaves_round_trip(tmp_path):
    tree = {
        "bf16": jnp.asarray([1.5, -2.0], jnp.bfloat16),
        "weak": jnp.asarray(1.0),
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.uint8(7),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "big_endian": np.arange(3, dtype=">f4"),
        "containers": ({}, [], (), None, collections.OrderedDict(b=1, a=2)),
        "odd keys": {"": 1, "a/b": 2, "a%2Fb": 3, "..": 4, "ü": 5, "x.npy": 6},
    }
    checkpoint.save(tmp_path / "e.npz", tree)
    out = checkpoint.load(tmp_path / "e.npz")
    assert out["bf16"].dtype == jnp.bfloat16 and out["weak"].weak_type
    np.testing.assert_array_equal(out["big_endian"], tree["big_endian"])
    assert out["big_endian"].dtype.isnative  # stored in native byte order
    assert out["odd keys"] == tree["odd keys"]
    assert list(out["containers"][4]) == ["b", "a"]  # insertion order kept
    like_out = checkpoint.load(tmp_path / "e.npz", like=tree)
    assert type(like_out["containers"][4]) is collections.OrderedDict


def test_file_is_a_plain_npz_keyed_by_path(tmp_path):
    checkpoint.save(tmp_path / "a.npz", {"params": {"w": jnp.ones(2)}, "step": 3},
                    metadata={"step": 3, "config": {"lr": 0.1}})
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["__fnn_meta__", "tree/params/w", "tree/step"]
        np.testing.assert_array_equal(z["tree/params/w"], np.ones(2, np.float32))
    assert checkpoint.load_metadata(tmp_path / "a.npz") == {"step": 3, "config": {"lr": 0.1}}


def test_identical_trees_give_identical_bytes(tmp_path):
    checkpoint.save(tmp_path / "a.npz", sample_tree())
    checkpoint.save(tmp_path / "b.npz", sample_tree())
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


# ---------------------------------------------------------------------------
# like mismatches name the first bad leaf


def _like_cases():
    base = {"params": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}, "step": 1,
            "opt": AdamLike(jnp.zeros((), jnp.int32), {}, {}, {}), "key": jax.random.key(0)}

    def edit(fn):
        tree = jax.tree_util.tree_map(lambda x: x, base)
        tree = {**tree, "params": dict(tree["params"])}
        fn(tree)
        return tree

    return base, [
        ("shape", edit(lambda t: t["params"].update(w=jnp.ones((3, 2)))),
         "['params']['w']", "float32 array of shape (3, 2)"),
        ("dtype", edit(lambda t: t["params"].update(w=jnp.ones((2, 3), jnp.int32))),
         "['params']['w']", "int32 array of shape (2, 3)"),
        ("missing", edit(lambda t: t["params"].update(a=jnp.ones(1))),
         "['params']['a']", "found nothing in the checkpoint"),
        ("extra", edit(lambda t: t["params"].pop("b")), "['params']['b']",
         "expected nothing (from like), found float32"),
        ("container", edit(lambda t: t.update(params=[t["params"]["b"], t["params"]["w"]])),
         "['params']", "a list of length 2"),
        ("scalar", edit(lambda t: t.update(step=1.0)), "['step']", "a Python float"),
        ("array_vs_scalar", edit(lambda t: t.update(step=jnp.ones(()))), "['step']",
         "float32 array of shape ()"),
        ("namedtuple", edit(lambda t: t.update(opt=(1, 2, 3, 4))), "['opt']", "a tuple"),
        ("typed_vs_raw_key", edit(lambda t: t.update(key=jax.random.PRNGKey(0))), "['key']",
         "uint32 array of shape (2,)"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_like_mismatch_names_the_leaf(tmp_path, case):
    base, cases = _like_cases()
    _, like, where, expected = cases[case]
    checkpoint.save(tmp_path / "a.npz", base)
    with pytest.raises(ValueError, match=re.escape(f"does not match `like` at {where}")) as e:
        checkpoint.load(tmp_path / "a.npz", like=like)
    assert expected in str(e.value)


def test_like_mismatch_reports_first_leaf_in_tree_order(tmp_path):
    checkpoint.save(tmp_path / "a.npz", {"a": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(ValueError, match=re.escape("at ['a']")):
        checkpoint.load(tmp_path / "a.npz", like={"a": jnp.ones(3), "c": jnp.ones(2)})


# ---------------------------------------------------------------------------
# save refuses what it cannot store faithfully


@pytest.mark.parametrize("tree, match", [
    ({"x": np.array([1, "a"], dtype=object)}, r"leaf \['x'\] is an object array"),
    ({"x": "text"}, r"unsupported value of type str at \['x'\]"),
    ({1: jnp.ones(1)}, r"non-string key 1"),
    ({"x": [object()]}, r"unsupported value of type object at \['x'\]\[0\]"),
    ({"x": np.array(["a"])}, r"leaf \['x'\] has unsupported dtype"),
])
def test_save_refuses_unsupported_values(tmp_path, tree, match):
    with pytest.raises(TypeError, match=match):
        checkpoint.save(tmp_path / "a.npz", tree)
    assert not os.listdir(tmp_path)


def test_save_refuses_traced_values(tmp_path):
    def f(x):
        checkpoint.save(tmp_path / "a.npz", {"x": x})
        return x

    with pytest.raises(TypeError, match=r"traced value"):
        jax.jit(f)(jnp.ones(2))


def test_save_refuses_non_json_metadata(tmp_path):
    with pytest.raises(TypeError, match="JSON-serialisable"):
        checkpoint.save(tmp_path / "a.npz", {}, metadata={"f": object()})


# ---------------------------------------------------------------------------
# load refuses bad files with a clear ValueError, never unpickling


def _rewrite(src, dst, replace=None, drop=(), add=None):
    with zipfile.ZipFile(src) as zf:
        entries = {n: zf.read(n) for n in zf.namelist() if n not in drop}
    entries.update(replace or {})
    entries.update(add or {})
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _npy_bytes(array, allow_pickle=False):
    import io
    bio = io.BytesIO()
    np.lib.format.write_array(bio, array, allow_pickle=allow_pickle)
    return bio.getvalue()


INVALID = "is not a valid fnn checkpoint"


def test_pickle_bearing_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([_Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=INVALID):
        checkpoint.load(path)
    # The same object array smuggled into an otherwise valid checkpoint.
    checkpoint.save(tmp_path / "good.npz", {"w": jnp.ones(2)})
    evil = _npy_bytes(np.array([_Evil()], dtype=object), allow_pickle=True)
    _rewrite(tmp_path / "good.npz", tmp_path / "smuggled.npz", replace={"tree/w.npy": evil})
    with pytest.raises(ValueError, match=INVALID + ".*object array"):
        checkpoint.load(tmp_path / "smuggled.npz")
    assert not EXECUTED


def test_raw_pickle_and_foreign_files_are_refused(tmp_path):
    cases = {
        "pickle.npz": pickle.dumps({"w": _Evil()}),
        "empty.npz": b"",
        "text.npz": b"hello, not a checkpoint",
        "npy.npz": _npy_bytes(np.ones(3)),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=re.escape(f"{tmp_path / name} {INVALID}")):
            checkpoint.load(tmp_path / name)
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(ValueError, match="no __fnn_meta__ entry"):
        checkpoint.load(tmp_path / "plain.npz")
    assert not EXECUTED


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path, fraction):
    path = checkpoint.save(tmp_path / "a.npz", sample_tree())
    data = open(path, "rb").read()
    (tmp_path / "t.npz").write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=INVALID):
        checkpoint.load(tmp_path / "t.npz")


def test_missing_extra_and_compressed_entries_are_refused(tmp_path):
    path = checkpoint.save(tmp_path / "a.npz", {"w": jnp.ones(2), "b": jnp.zeros(1)})
    _rewrite(path, tmp_path / "missing.npz", drop=("tree/b.npy",))
    with pytest.raises(ValueError, match="missing from the archive"):
        checkpoint.load(tmp_path / "missing.npz")
    _rewrite(path, tmp_path / "extra.npz", add={"tree/c.npy": _npy_bytes(np.ones(1))})
    with pytest.raises(ValueError, match="not described by the metadata"):
        checkpoint.load(tmp_path / "extra.npz")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "zip.npz", "w",
                                                       zipfile.ZIP_DEFLATED) as dst:
        for n in src.namelist():
            dst.writestr(n, src.read(n))
    with pytest.raises(ValueError, match="compressed"):
        checkpoint.load(tmp_path / "zip.npz")


def test_metadata_from_a_newer_format_is_refused(tmp_path):
    import json
    path = checkpoint.save(tmp_path / "a.npz", {"w": jnp.ones(2)})
    with zipfile.ZipFile(path) as zf:
        header = json.loads(str(np.load(zf.open("__fnn_meta__.npy"))[()]))
    header["version"] = 99
    _rewrite(path, tmp_path / "new.npz",
             replace={"__fnn_meta__.npy": _npy_bytes(np.asarray(json.dumps(header)))})
    with pytest.raises(ValueError, match="format version 99"):
        checkpoint.load(tmp_path / "new.npz")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "nope.npz")


# ---------------------------------------------------------------------------
# atomic writes


def _tmp_files(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_crash_mid_save_leaves_previous_checkpoint(tmp_path, monkeypatch, where):
    path = tmp_path / "ckpt.npz"
    old = {"w": jnp.arange(4.0), "step": 1}
    checkpoint.save(path, old)
    before = path.read_bytes()

    class Crash(Exception):
        pass

    if where == "write":
        real = np.lib.format.write_array

        def broken(fp, array, *args, **kwargs):
            if array.ndim and array.size > 100:  # crash in the middle of the big leaf
                fp.write(b"\x00" * 64)
                raise Crash("disk full")
            return real(fp, array, *args, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", broken)
    else:
        def boom(*args, **kwargs):
            raise Crash(where)

        monkeypatch.setattr(os, where, boom)
    with pytest.raises(Crash):
        checkpoint.save(path, {"w": jnp.arange(1000.0), "step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert_identical(checkpoint.load(path), old)
    assert _tmp_files(tmp_path) == []


# ---------------------------------------------------------------------------
# CheckpointManager


def test_manager_keeps_the_newest(tmp_path):
    manager = checkpoint.CheckpointManager(tmp_path / "run", keep=2)
    assert manager.latest() is None and manager.all_steps() == []
    for step in (1, 2, 5, 3, 10):
        manager.save(step, {"w": jnp.full((2,), float(step))}, metadata={"epoch": step})
    assert manager.all_steps() == [5, 10]
    assert manager.latest() == 10
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt_00000005.npz", "ckpt_00000010.npz"]
    np.testing.assert_array_equal(manager.restore()["w"], [10.0, 10.0])
    np.testing.assert_array_equal(manager.restore(5, like={"w": jnp.ones(2)})["w"], [5.0, 5.0])
    assert manager.load_metadata() == {"epoch": 10, "step": 10}
    with pytest.raises(FileNotFoundError, match=r"available steps: \[5, 10\]"):
        manager.restore(3)


def test_manager_ignores_temp_and_foreign_files(tmp_path):
    manager = checkpoint.CheckpointManager(tmp_path, keep=None)
    manager.save(4, {"w": jnp.ones(1)})
    # What a SIGKILL in the middle of a save leaves behind, and unrelated files.
    (tmp_path / ".ckpt_00000009.npz.0123456789ab.tmp").write_bytes(b"PK\x03\x04partial")
    for name in ("ckpt_9.npz", "ckpt_00000007.npz.bak", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert manager.all_steps() == [4] and manager.latest() == 4
    for step in range(5, 10):
        manager.save(step, {"w": jnp.ones(1)})
    assert manager.all_steps() == [4, 5, 6, 7, 8, 9]  # keep=None keeps all


def test_manager_crash_mid_save_keeps_latest_readable(tmp_path, monkeypatch):
    manager = checkpoint.CheckpointManager(tmp_path, keep=3)
    manager.save(1, {"w": jnp.ones(3)})
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        manager.save(2, {"w": jnp.zeros(3)})
    monkeypatch.undo()
    assert manager.latest() == 1 and _tmp_files(tmp_path) == []
    np.testing.assert_array_equal(manager.restore()["w"], np.ones(3))


def test_manager_errors(tmp_path):
    with pytest.raises(ValueError, match="keep must be a positive int"):
        checkpoint.CheckpointManager(tmp_path, keep=0)
    manager = checkpoint.CheckpointManager(tmp_path / "new")
    assert os.path.isdir(tmp_path / "new")
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        manager.restore()
    with pytest.raises(ValueError, match="non-negative int"):
        manager.save(-1, {})
    with pytest.raises(ValueError, match="differs from step"):
        manager.save(1, {}, metadata={"step": 2})


# ---------------------------------------------------------------------------
# bad paths: clear errors naming the user's path (never the temporary file)


def test_save_path_of_wrong_type(tmp_path):
    with pytest.raises(TypeError, match=r"fnn\.checkpoint\.save: path must be a str or "
                                        r"os\.PathLike .*got 3\."):
        checkpoint.save(3, {"w": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"fnn\.checkpoint\.save: path .*"
                                        r"The arguments are save\(path, tree\)"):
        checkpoint.save({"w": jnp.ones(2)}, tmp_path / "a.npz")
    with pytest.raises(ValueError, match=r"fnn\.checkpoint\.save: path must not be empty"):
        checkpoint.save("", {"w": jnp.ones(2)})
    assert os.listdir(tmp_path) == []


def test_save_onto_a_folder(tmp_path):
    (tmp_path / "ck").mkdir()
    with pytest.raises(IsADirectoryError,
                       match=rf"fnn\.checkpoint\.save: {re.escape(str(tmp_path / 'ck'))} is a "
                             r"folder; expected the path of a file"):
        checkpoint.save(tmp_path / "ck", {"w": jnp.ones(2)})
    with pytest.raises(IsADirectoryError, match=r"fnn\.checkpoint\.save: .*new/ is a folder"):
        checkpoint.save(f"{tmp_path}/new/", {"w": jnp.ones(2)})
    assert os.listdir(tmp_path) == ["ck"] and os.listdir(tmp_path / "ck") == []


def test_save_into_a_missing_folder_or_a_file(tmp_path):
    target = tmp_path / "nope" / "y.npz"
    with pytest.raises(FileNotFoundError,
                       match=rf"fnn\.checkpoint\.save: cannot write {re.escape(str(target))}: "
                             rf"the folder {re.escape(str(tmp_path / 'nope'))} does not exist"):
        checkpoint.save(target, {"w": jnp.ones(2)})
    assert os.listdir(tmp_path) == []  # folders are not created (a typo stays visible)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"fnn\.checkpoint\.save: cannot write .*"
                                                 r"file/y\.npz: .*file is a file, not a folder"):
        checkpoint.save(tmp_path / "file" / "y.npz", {"w": jnp.ones(2)})


def test_os_error_while_saving_names_the_target_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match=rf"fnn\.checkpoint\.save: cannot write "
                                              rf"{re.escape(str(path))}: Permission denied") as e:
        checkpoint.save(path, {"w": jnp.ones(2)})
    assert ".tmp" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_save_accepts_path_like_and_long_names(tmp_path):
    name = "c" * 240 + ".npz"  # a valid name; its temporary sibling must stay valid too
    for path in (tmp_path / name, os.fsencode(tmp_path / "b.npz")):
        checkpoint.save(path, {"w": jnp.ones(2)})
        np.testing.assert_array_equal(checkpoint.load(path)["w"], [1.0, 1.0])
    assert sorted(os.listdir(tmp_path)) == ["b.npz", name]


def test_load_path_errors(tmp_path):
    with pytest.raises(TypeError, match=r"fnn\.checkpoint\.load: path must be a str or "
                                        r"os\.PathLike .*got 3\."):
        checkpoint.load(3)
    with pytest.raises(TypeError, match=r"fnn\.checkpoint\.load_metadata: path must be .*None"):
        checkpoint.load_metadata(None)
    with pytest.raises(IsADirectoryError, match=rf"fnn\.checkpoint\.load: "
                                                rf"{re.escape(str(tmp_path))} is a folder, not a "
                                                r"checkpoint file.*CheckpointManager"):
        checkpoint.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"fnn\.checkpoint\.load_metadata: .*nope\.npz "
                                                r"does not exist"):
        checkpoint.load_metadata(tmp_path / "nope.npz")


def test_manager_directory_errors(tmp_path):
    with pytest.raises(TypeError, match=r"CheckpointManager: directory must be a str or "
                                        r"os\.PathLike .*got 3\."):
        checkpoint.CheckpointManager(3)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"CheckpointManager: .*file is a file; "
                                                 r"expected a folder"):
        checkpoint.CheckpointManager(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match=r"CheckpointManager: cannot create the folder "
                                                 r".*file/run"):
        checkpoint.CheckpointManager(tmp_path / "file" / "run")
    manager = checkpoint.CheckpointManager(tmp_path / "a" / "b")  # parents are created
    manager.save(1, {"w": jnp.ones(1)})
    assert manager.all_steps() == [1]


# ---------------------------------------------------------------------------
# checkpoints written by fnn 0.1 (tests/data/fnn_0_1, made by its make_fixtures.py with
# fnn 0.1.0): `expected.json` is what fnn 0.1's own `load` read back from them


FIXTURES = Path(__file__).parent / "data" / "fnn_0_1"


@pytest.fixture(scope="module")
def v01():
    """The fixtures' builder module (NumPy and JAX only) and `expected.json`."""
    spec = importlib.util.spec_from_file_location("fnn_0_1_fixtures",
                                                  FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


def test_v01_every_node_kind_loads_bit_exactly(v01):
    fixtures, _ = v01
    tree = fixtures.build_tree()  # rebuilt here, with the values fnn 0.1 saved
    out = checkpoint.load(FIXTURES / "tree.npz", like=tree)
    assert_identical(out, tree)  # classes, dtypes, shapes, weak types, bytes
    assert out["weak"]["float"].weak_type and out["weak"]["vector"].weak_type
    assert not out["jax"]["scalar"].weak_type
    assert type(out["containers"]["default"]) is collections.defaultdict
    assert checkpoint.load_metadata(FIXTURES / "tree.npz") == fixtures.METADATA


@pytest.mark.parametrize("name", ["tree.npz", "x64.npz", "run/ckpt_00000001.npz",
                                  "run/ckpt_00000002.npz"])
def test_v01_files_load_as_fnn_0_1_read_them(v01, name):
    fixtures, expected = v01
    path = FIXTURES / name
    assert fixtures.describe(checkpoint.load(path)) == expected["files"][name]["tree"]
    assert checkpoint.load_metadata(path) == expected["files"][name]["metadata"]


def test_v01_without_like_gives_the_documented_types(v01):
    out = checkpoint.load(FIXTURES / "tree.npz")
    opt = out["opt"]  # a namedtuple rebuilt from the saved class name and fields
    assert type(opt).__name__ == "AdamState" and opt._fields == ("step", "lr", "params", "m", "v")
    assert type(out["containers"]["ordered"]) is dict and list(out["containers"]["ordered"]) == [
        "b", "a"]
    assert out["python"][3] == -(2**63) and type(out["python"][3]) is int
    assert str(jax.random.key_impl(out["keys"]["rbg"])) == "rbg"
    assert out["numpy"]["bfloat16"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(out["numpy"]["big_endian"], [-1.5, -0.5, 0.5, 1.5])
    assert out["odd keys"] == {"": 1, "a/b": 2, "a%2Fb": 3, "..": 4, ".": 5, "ü": 6, "x.npy": 7,
                               "sp ace": 8, "tree": 9, "__fnn_meta__": 10, "日本": 11, "%": 12}


def test_v01_x64_arrays(v01):
    fixtures, _ = v01
    out = checkpoint.load(FIXTURES / "x64.npz")  # x64 off: NumPy, never truncated
    assert all(isinstance(v, np.ndarray) for v in out.values())
    np.testing.assert_array_equal(out["float64"], [1 / 3, -1e300])
    assert out["int64"].dtype == np.int64 and out["int64"][0] == 2**40
    with jax.enable_x64(True):
        tree = fixtures.build_x64_tree()
        out = checkpoint.load(FIXTURES / "x64.npz", like=tree)
        assert_identical(out, tree)
        assert out["weak_float64"].dtype == jnp.float64 and out["weak_float64"].weak_type


def test_v01_run_folder(v01):
    _, expected = v01
    manager = checkpoint.CheckpointManager(FIXTURES / "run")
    assert manager.all_steps() == [1, 2]
    meta = manager.load_metadata()
    assert meta["step"] == meta["epoch"] == 2 and meta["history"] == expected["run_history"]
    assert meta["history"]["lr_scale"] == [1.0, 0.5]  # the plateau rule acted at epoch 2
    tree = manager.restore()
    assert sorted(tree) == ["early_stopping", "plateau", "train_state"]
    assert type(tree["train_state"]).__name__ == "TrainState"
    assert type(tree["plateau"]).__name__ == "PlateauState"
    np.testing.assert_array_equal(tree["plateau"].scale, np.float32(0.5))


def test_new_files_are_byte_identical_to_fnn_0_1s(v01, tmp_path):
    """The format is unchanged: every node kind is written exactly as fnn 0.1 wrote it,
    so fnn 0.1 reads what this fnn writes."""
    fixtures, _ = v01
    for name, tree, meta in [("tree.npz", fixtures.build_tree(), fixtures.METADATA),
                             ("x64.npz", fixtures.build_x64_tree(), None)]:
        checkpoint.save(tmp_path / name, tree, metadata=meta)
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name


def test_every_node_kind_round_trips_bit_exactly(v01, tmp_path):
    fixtures, expected = v01
    tree = fixtures.build_tree()
    checkpoint.save(tmp_path / "a.npz", tree)
    assert_identical(checkpoint.load(tmp_path / "a.npz", like=tree), tree)
    # without like, as fnn 0.1 read its own file of the same tree
    out = checkpoint.load(tmp_path / "a.npz")
    assert fixtures.describe(out) == expected["files"]["tree.npz"]["tree"]


@pytest.mark.parametrize("damage", ["truncate", "json", "node", "dtype", "shape", "entry"])
def test_damaged_files_give_one_line_errors(tmp_path, damage):
    path = checkpoint.save(tmp_path / "a.npz", sample_tree())
    with zipfile.ZipFile(path) as zf:
        header = json.loads(str(np.load(zf.open("__fnn_meta__.npy"))[()]))
    node = header["tree"]["children"][0]["children"][0]["children"][0]  # params/0_Dense/w
    if damage == "truncate":
        (tmp_path / "b.npz").write_bytes(open(path, "rb").read()[:-100])
    else:
        if damage == "json":
            header = "{not json"
        elif damage == "node":
            node["type"] = ["array"]
        elif damage in ("dtype", "shape"):
            node.update(dtype="float16") if damage == "dtype" else node.update(shape=[3, 2])
        else:
            node["entry"] = "tree/params/0_Dense/b"  # two leaves, one entry
        text = header if isinstance(header, str) else json.dumps(header)
        _rewrite(path, tmp_path / "b.npz", replace={"__fnn_meta__.npy": _npy_bytes(
            np.asarray(text))})
    with pytest.raises(ValueError, match=INVALID) as e:
        checkpoint.load(tmp_path / "b.npz")
    assert "\n" not in str(e.value) and e.value.__cause__ is None
