"""Checkpoint fuzzing (hypothesis, bounded): `load` returns the exact tree or raises ValueError.

Random trees are saved, then damaged: truncated, bit-flipped, metadata rewritten,
entries removed/added/replaced by object arrays, the whole file replaced by a raw
pickle. `load` must never raise anything but `ValueError`, never unpickle (a
pickled payload here would record its execution), and never return a tree that
differs from the one saved unless the archive was rewritten with valid CRCs
(an attacker can always write a different *valid* checkpoint). The longer
campaign is `benchmarks/fuzz_checkpoint.py`.
"""
import io
import json
import os
import pickle
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmarks.fuzz_checkpoint import canon, npy_bytes, read_entries, write_zip
from fnn import checkpoint

EXECUTED = []
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _mark_executed():
    EXECUTED.append(True)


class _Evil:
    def __reduce__(self):
        return (_mark_executed, ())


class Pair(NamedTuple):
    first: object
    second: object


# ---------------------------------------------------------------------------
# random trees

_DTYPES = [np.float32, np.int32, np.uint8, np.bool_, np.float64, np.int64]


@st.composite
def _array_leaf(draw):
    dtype = draw(st.sampled_from(_DTYPES))
    array = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0,
                                                    max_side=3)))
    kind = draw(st.sampled_from(["numpy", "jax", "bf16", "scalar"]))
    if kind == "jax" and dtype not in (np.float64, np.int64):
        return jnp.asarray(array)
    if kind == "bf16":
        with np.errstate(over="ignore", invalid="ignore"):  # float64 extremes become inf
            return jnp.asarray(array.astype(np.float32), jnp.bfloat16)
    if kind == "scalar":
        return array.reshape(-1)[0] if array.size else np.float32(0)
    return array


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=False, max_magnitude=1e6),
    _array_leaf(),
    st.integers(0, 2**32 - 1).map(jax.random.key),
    st.integers(0, 2**32 - 1).map(jax.random.PRNGKey),
)
_KEYS = st.text(alphabet=st.characters(codec="utf-8"), max_size=6)
TREES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.dictionaries(_KEYS, children, max_size=3),
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.tuples(children, children).map(lambda t: Pair(*t)),
    ),
    max_leaves=8,
)


# ---------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz"))


def _saved(folder, tree):
    path = os.path.join(folder, "c.npz")
    checkpoint.save(path, tree)
    with open(path, "rb") as f:
        return path, f.read()


def _load_outcome(path, data, tree, exact=True):
    """Write `data`, load it: 'rejected', 'exact' or (when not `exact`) 'other'."""
    with open(path, "wb") as f:
        f.write(data)
    try:
        out = checkpoint.load(path)
    except ValueError as e:
        assert "is not a valid fnn checkpoint" in str(e)
        return "rejected"
    finally:
        assert not EXECUTED, "a pickled payload was executed"
    if canon(out, strict=False) == canon(tree, strict=False):
        return "exact"
    assert not exact, "load returned a tree different from the one saved"
    return "other"


# ---------------------------------------------------------------------------
# properties


@SETTINGS
@given(TREES)
def test_round_trip_is_exact(folder, tree):
    path, _ = _saved(folder, tree)
    assert canon(checkpoint.load(path), strict=False) == canon(tree, strict=False)
    assert canon(checkpoint.load(path, like=tree), strict=False) == canon(tree, strict=False)


@SETTINGS
@given(TREES, st.data())
def test_truncation_is_rejected(folder, tree, data):
    path, raw = _saved(folder, tree)
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert _load_outcome(path, raw[:cut], tree) == "rejected"


@SETTINGS
@given(TREES, st.data())
def test_bit_flips_give_exact_tree_or_error(folder, tree, data):
    path, raw = _saved(folder, tree)
    flipped = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        flipped[i] ^= 1 << data.draw(st.integers(0, 7))
    _load_outcome(path, bytes(flipped), tree)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**40) | st.text(max_size=4),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                        max_size=3),
                     max_leaves=5)


def _mutate_json(node, data):
    """Replace, delete or add one random part of a JSON document."""
    if isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = data.draw(st.sampled_from(keys))
        action = data.draw(st.sampled_from(["recurse", "delete", "replace"]))
        if action == "recurse":
            node[k] = _mutate_json(node[k], data)
        elif action == "delete":
            del node[k]
        else:
            node[k] = data.draw(_JSON)
        return node
    if isinstance(node, dict) and data.draw(st.booleans()):
        node[data.draw(st.text(max_size=6))] = data.draw(_JSON)
        return node
    return data.draw(_JSON)


@SETTINGS
@given(TREES, st.data())
def test_wrong_metadata_is_rejected_or_valid(folder, tree, data):
    path, raw = _saved(folder, tree)
    entries = read_entries(raw)
    header = json.loads(str(np.load(io.BytesIO(entries["__fnn_meta__.npy"]))[()]))
    mutated = _mutate_json(header, data)
    text = data.draw(st.sampled_from(["json", "garbage", "bytes"]))
    if text == "json":
        meta = npy_bytes(np.asarray(json.dumps(mutated)))
    elif text == "garbage":
        meta = npy_bytes(np.asarray(data.draw(st.text(max_size=20))))
    else:
        meta = npy_bytes(np.frombuffer(json.dumps(mutated).encode(), np.uint8))
    entries["__fnn_meta__.npy"] = meta
    # A rewritten archive with valid CRCs may legitimately describe another tree.
    _load_outcome(path, write_zip(entries), tree, exact=False)


@SETTINGS
@given(TREES, st.data())
def test_missing_entries_are_rejected(folder, tree, data):
    path, raw = _saved(folder, tree)
    entries = read_entries(raw)
    del entries[data.draw(st.sampled_from(sorted(entries)))]
    assert _load_outcome(path, write_zip(entries), tree) == "rejected"


@SETTINGS
@given(TREES, st.data())
def test_extra_entries_are_rejected(folder, tree, data):
    path, raw = _saved(folder, tree)
    entries = read_entries(raw)
    name = data.draw(st.sampled_from(["tree/extra.npy", "tree.npy", "x", "tree/a/b.npy"]))
    if name in entries:
        name = "tree/zz_extra.npy"
    payload = data.draw(st.sampled_from(["npy", "bytes", "pickle"]))
    entries[name] = (npy_bytes(np.ones(2)) if payload == "npy" else
                     pickle.dumps(_Evil()) if payload == "pickle" else
                     data.draw(st.binary(max_size=30)))
    assert _load_outcome(path, write_zip(entries), tree) == "rejected"


@SETTINGS
@given(TREES, st.data())
def test_object_arrays_and_pickles_are_rejected(folder, tree, data):
    path, raw = _saved(folder, tree)
    entries = read_entries(raw)
    name = data.draw(st.sampled_from(sorted(entries)))
    payload = data.draw(st.sampled_from(["object_npy", "raw_pickle_entry", "raw_pickle_file"]))
    if payload == "object_npy":
        entries[name] = npy_bytes(np.array([_Evil(), 1], dtype=object), allow_pickle=True)
        blob = write_zip(entries)
    elif payload == "raw_pickle_entry":
        entries[name] = pickle.dumps(np.array([_Evil()], dtype=object))
        blob = write_zip(entries)
    else:
        blob = pickle.dumps({"tree": tree, "evil": _Evil()})
    assert _load_outcome(path, blob, tree) == "rejected"


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected(folder, blob):
    path = os.path.join(folder, "r.npz")
    assert _load_outcome(path, blob, object()) == "rejected"
