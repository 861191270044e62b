"""A long fuzzing campaign against `fnn.checkpoint.load`.

    python benchmarks/fuzz_checkpoint.py --cases 20000 --seed 0 [--json out.json]

Each case saves a random pytree (nested dicts/lists/tuples/NamedTuples; NumPy,
JAX, bfloat16, NumPy-scalar, Python-scalar, None and PRNG-key leaves), damages
the file in one of the ways below, and loads it. Allowed outcomes:

| mutation | what is done | allowed |
|---|---|---|
| truncate | cut the file at a random length | rejected |
| bitflip | flip 1–3 random bits | exact tree or rejected |
| byte | overwrite 1–4 random bytes | exact tree or rejected |
| metadata | rewrite the JSON header (replace/delete/add), valid CRCs | rejected, exact, other |
| missing | drop one zip entry | rejected |
| extra | add an entry (array, bytes or pickle) | rejected |
| object | replace an entry by a pickled object array or raw pickle | rejected |
| pickle | replace the whole file by a raw pickle | rejected |
| random | random bytes, sometimes behind a zip signature | rejected |
| reorder | rewrite the archive with its entries shuffled | exact tree |

"other" is another valid tree; "rejected" means
`ValueError("... is not a valid fnn checkpoint: ...")`. Any other exception, a
different tree where none is allowed, or the execution of a pickled payload (it
would record itself) counts as a failure; the script prints a table of outcomes
per mutation and exits with status 1 if anything failed. A metadata rewrite
recomputes the zip CRCs, so (like any format without a signature) it may
describe another valid tree; that is counted, not failed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import random
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checkpoint

EXECUTED = []


def _mark_executed():
    EXECUTED.append(True)


class _Evil:
    def __reduce__(self):
        return (_mark_executed, ())


class State(NamedTuple):
    step: object
    params: object


# ---------------------------------------------------------------------------
# random trees


def random_leaf(rng: random.Random):
    kind = rng.choice(["np", "np", "jax", "jax", "bf16", "npscalar", "int", "float", "bool",
                       "complex", "none", "key", "rawkey"])
    shape = tuple(rng.randint(0, 3) for _ in range(rng.randint(0, 2)))
    dtype = rng.choice([np.float32, np.int32, np.uint8, np.bool_, np.float64, np.int64])
    values = np.random.default_rng(rng.getrandbits(32)).normal(size=shape) * 100
    array = values.astype(dtype)
    if kind == "np":
        return array
    if kind == "jax":
        return jnp.asarray(array.astype(np.float32 if dtype == np.float64 else
                                        np.int32 if dtype == np.int64 else dtype))
    if kind == "bf16":
        return jnp.asarray(values, jnp.bfloat16)
    if kind == "npscalar":
        return dtype(rng.randint(0, 100))
    if kind == "int":
        return rng.randint(-(2**63), 2**63 - 1)
    if kind == "float":
        return rng.choice([rng.uniform(-1e9, 1e9), float("nan"), float("inf"), -0.0])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "complex":
        return complex(rng.uniform(-5, 5), rng.uniform(-5, 5))
    if kind == "none":
        return None
    if kind == "key":
        return jax.random.key(rng.randint(0, 2**31))
    return jax.random.PRNGKey(rng.randint(0, 2**31))


def random_key(rng: random.Random) -> str:
    alphabet = "abcxyz_0123/.%ü é"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))


def random_tree(rng: random.Random, depth: int = 0):
    if depth >= 3 or rng.random() < 0.35:
        return random_leaf(rng)
    kind = rng.choice(["dict", "dict", "list", "tuple", "state"])
    n = rng.randint(0, 3)
    if kind == "dict":
        return {random_key(rng): random_tree(rng, depth + 1) for _ in range(n)}
    if kind == "state":
        return State(random_tree(rng, depth + 1), random_tree(rng, depth + 1))
    children = [random_tree(rng, depth + 1) for _ in range(n)]
    return children if kind == "list" else tuple(children)


def canon(x, strict: bool = True):
    """A comparable, bit-exact description of a tree: types, dtypes, shapes, bytes.

    `strict=False` compares NamedTuples by class name and fields instead of by class
    (trees whose classes are rebuilt on load). Also used by the test suite.
    """
    if x is None:
        return ("none",)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return ("key", str(jax.random.key_impl(x)), x.shape,
                np.asarray(jax.random.key_data(x)).tobytes())
    if isinstance(x, jax.Array):
        return ("jax", str(x.dtype), x.shape, np.asarray(x).tobytes(), x.weak_type)
    if isinstance(x, np.ndarray):
        return ("np", str(x.dtype), x.shape, x.tobytes())
    if isinstance(x, np.generic):
        return ("npscalar", str(x.dtype), x.tobytes())
    if isinstance(x, float):
        return ("float", x.hex())
    if isinstance(x, complex):
        return ("complex", x.real.hex(), x.imag.hex())
    if isinstance(x, (bool, int)):
        return (type(x).__name__, repr(x))
    if isinstance(x, dict):
        return (type(x).__name__, tuple((k, canon(v, strict)) for k, v in x.items()))
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        kind = type(x) if strict else (type(x).__name__, type(x)._fields)
        return ("namedtuple", kind, tuple(canon(v, strict) for v in x))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(canon(v, strict) for v in x))
    raise TypeError(type(x))


# ---------------------------------------------------------------------------
# mutations: each returns (bytes, allowed outcomes)


def read_entries(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def write_zip(entries: dict) -> bytes:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return bio.getvalue()


def npy_bytes(array, allow_pickle=False) -> bytes:
    bio = io.BytesIO()
    np.lib.format.write_array(bio, array, allow_pickle=allow_pickle)
    return bio.getvalue()


def _random_json(rng: random.Random, depth=0):
    choice = rng.randint(0, 7 if depth < 2 else 4)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice([0, 1, -1, 2**40, 3, 7])
    if choice == 3:
        return rng.choice(["", "array", "dict", "key", "int", "tree", "float32", "jax",
                           "threefry2x32", "namedtuple", "tree/x"])
    if choice == 4:
        return rng.uniform(-3, 3)
    if choice in (5, 6):
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {random_key(rng): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _mutate_json(rng: random.Random, node):
    if isinstance(node, (dict, list)) and node and rng.random() < 0.8:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = rng.choice(keys)
        action = rng.choice(["recurse", "recurse", "recurse", "delete", "replace", "swap"])
        if action == "recurse":
            node[k] = _mutate_json(rng, node[k])
        elif action == "delete":
            del node[k]
        elif action == "swap" and len(keys) > 1:
            j = rng.choice(keys)
            node[k], node[j] = node[j], node[k]
        else:
            node[k] = _random_json(rng)
        return node
    if isinstance(node, dict) and rng.random() < 0.5:
        node[random_key(rng)] = _random_json(rng)
        return node
    if isinstance(node, bool):
        return not node
    if isinstance(node, int):
        return node + rng.choice([-1, 1, 2**33])
    return _random_json(rng)


def m_truncate(rng, raw):
    return raw[: rng.randrange(len(raw))], {"rejected"}


def m_bitflip(rng, raw):
    out = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out), {"rejected", "exact"}


def m_byte(rng, raw):
    out = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out), {"rejected", "exact"}


def m_metadata(rng, raw):
    entries = read_entries(raw)
    header = json.loads(str(np.load(io.BytesIO(entries["__fnn_meta__.npy"]))[()]))
    for _ in range(rng.randint(1, 3)):
        header = _mutate_json(rng, header)
    form = rng.choice(["json", "json", "json", "garbage", "uint8"])
    text = json.dumps(header)
    if form == "garbage":
        text = text[: rng.randrange(len(text) + 1)]
    entries["__fnn_meta__.npy"] = (npy_bytes(np.frombuffer(text.encode(), np.uint8))
                                   if form == "uint8" else npy_bytes(np.asarray(text)))
    return write_zip(entries), {"rejected", "exact", "other"}


def m_missing(rng, raw):
    entries = read_entries(raw)
    del entries[rng.choice(sorted(entries))]
    return write_zip(entries), {"rejected"}


def m_extra(rng, raw):
    entries = read_entries(raw)
    name = rng.choice(["tree/extra.npy", "tree.npy", "x", "__fnn_meta__", "tree/0/1.npy"])
    while name in entries:
        name = "tree/z" + name
    entries[name] = rng.choice([npy_bytes(np.ones(2)), pickle.dumps(_Evil()), b"", os.urandom(20)])
    return write_zip(entries), {"rejected"}


def m_object(rng, raw):
    entries = read_entries(raw)
    name = rng.choice(sorted(entries))
    entries[name] = rng.choice([
        npy_bytes(np.array([_Evil(), 1], dtype=object), allow_pickle=True),
        pickle.dumps(np.array([_Evil()], dtype=object)),
        pickle.dumps(_Evil()),
    ])
    return write_zip(entries), {"rejected"}


def m_pickle(rng, raw):
    return pickle.dumps({"evil": _Evil(), "n": rng.random()},
                        protocol=rng.randint(0, pickle.HIGHEST_PROTOCOL)), {"rejected"}


def m_random(rng, raw):
    blob = os.urandom(rng.randint(0, 300))
    if rng.random() < 0.5:
        blob = b"PK\x03\x04" + blob
    return blob, {"rejected"}


def m_reorder(rng, raw):
    items = list(read_entries(raw).items())
    rng.shuffle(items)
    return write_zip(dict(items)), {"exact"}


MUTATIONS = {f.__name__[2:]: f for f in (m_truncate, m_bitflip, m_byte, m_metadata, m_missing,
                                         m_extra, m_object, m_pickle, m_random, m_reorder)}


# ---------------------------------------------------------------------------


def run(cases: int, seed: int, verbose: bool = False) -> tuple[dict, list]:
    rng = random.Random(seed)
    counts: dict[str, Counter] = defaultdict(Counter)
    failures = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "c.npz")
        names = list(MUTATIONS)
        for case in range(cases):
            name = names[case % len(names)]
            tree = random_tree(rng)
            checkpoint.save(path, tree)
            with open(path, "rb") as f:
                raw = f.read()
            data, allowed = MUTATIONS[name](rng, raw)
            with open(path, "wb") as f:
                f.write(data)
            try:
                out = checkpoint.load(path)
                same = canon(out, strict=False) == canon(tree, strict=False)
                outcome = "exact" if same else "other"
            except ValueError as e:
                outcome = "rejected" if "is not a valid fnn checkpoint" in str(e) else "bad-error"
            except Exception as e:  # noqa: BLE001 - this is what the campaign looks for
                outcome = f"crash:{type(e).__name__}"
            if EXECUTED:
                outcome = "EXECUTED"
                EXECUTED.clear()
            counts[name][outcome] += 1
            if outcome not in allowed:
                failures.append({"case": case, "mutation": name, "outcome": outcome})
                if verbose:
                    print(f"FAIL case {case} ({name}): {outcome}", file=sys.stderr)
    return counts, failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="number of cases (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the counts to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="print each failure")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be >= 1")
    t0 = time.perf_counter()
    counts, failures = run(args.cases, args.seed, args.verbose)
    seconds = time.perf_counter() - t0
    columns = ["exact", "rejected", "other"]
    extra = sorted({o for c in counts.values() for o in c} - set(columns))
    columns += extra
    print(f"fnn.checkpoint fuzzing: {args.cases} cases, seed {args.seed}, {seconds:.1f} s")
    print(f"{'mutation':<10}" + "".join(f"{c:>10}" for c in columns) + f"{'failed':>8}")
    for name in MUTATIONS:
        failed = sum(1 for f in failures if f["mutation"] == name)
        print(f"{name:<10}" + "".join(f"{counts[name][c]:>10}" for c in columns) + f"{failed:>8}")
    total = Counter()
    for c in counts.values():
        total.update(c)
    print(f"{'total':<10}" + "".join(f"{total[c]:>10}" for c in columns) + f"{len(failures):>8}")
    print("pickled payloads executed: 0" if not any(f["outcome"] == "EXECUTED" for f in failures)
          else "pickled payloads executed: YES")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": args.cases, "seed": args.seed, "seconds": seconds,
                       "counts": {k: dict(v) for k, v in counts.items()},
                       "failures": failures[:100], "failed": len(failures)}, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
