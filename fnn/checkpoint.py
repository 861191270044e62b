"""Checkpoints: pytrees of arrays in one `.npz` file, written atomically, never pickled.

    fnn.checkpoint.save(path, tree, *, metadata=None)
    tree = fnn.checkpoint.load(path, like=None)
    meta = fnn.checkpoint.load_metadata(path)
    manager = fnn.checkpoint.CheckpointManager(directory, keep=3)

**What can be saved.** Any pytree built from `dict` (string keys; also
`OrderedDict`/`defaultdict`), `list`, `tuple`, `NamedTuple` (e.g. optimizer
states) and `None`, whose leaves are numeric arrays (`jax.Array`, `np.ndarray`,
NumPy scalars; bool, int, uint, float, complex and JAX's extra dtypes such as
bfloat16), Python `bool`/`int`/`float`/`complex` scalars, typed PRNG keys
(`jax.random.key`) and raw `uint32` keys (`jax.random.PRNGKey`, plain arrays).
Anything else (object arrays, strings, traced values, other classes) raises
`TypeError` naming the leaf path: a checkpoint never holds Python objects.

**On-disk format (version 1).** A standard uncompressed `.npz` (zip) archive
readable with `np.load(path, allow_pickle=False)`: `__fnn_meta__.npy`, a 0-d
unicode array holding the JSON `{"format": "fnn.checkpoint", "version": 1, "tree":
NODE, "metadata": {...}}` (`metadata`: the caller's JSON object), and one
`<entry>.npy` per leaf, named by its pytree path (`tree/params/0_Dense/w`). `NODE`
describes the tree node by node (`{"type": "dict", "keys": [...], "children": [...]}`,
`{"type": "array", "entry": ..., "dtype": ..., "shape": ..., ...}`; the table of
node kinds is in `fnn/_codec.py`).

**Reading is defensive.** `load` checks every zip CRC, refuses compressed,
encrypted, duplicated, missing and extra entries, checks every `.npy` header
(dtype, shape and byte count) before reading the data, loads arrays with
`np.load(..., allow_pickle=False)` (nothing in a file is ever executed) and accepts
a tree description only if it is exactly the one `save` writes for the tree it
decodes to. Any defect raises `ValueError("fnn.checkpoint.load: <path> is not a
valid fnn checkpoint: <reason>")` (one line); a missing file `FileNotFoundError`.

**Writing is atomic.** `save` writes a hidden temporary file in the target's folder,
fsyncs it, `os.replace`s it onto the target and fsyncs the folder (`fnn/_atomic.py`):
a crash leaves the previous file untouched (a killed process may leave the hidden
`.tmp` file behind; it is never mistaken for a checkpoint). Identical trees give
byte-identical files (the bytes fnn 0.1 wrote).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import zipfile

import numpy as np

from fnn._atomic import atomic_file
from fnn._checks import BadType, BadValue, describe_value, named
from fnn._codec import Corrupt, Mismatch, decode, encode, restore

__all__ = ["save", "load", "load_metadata", "CheckpointManager", "FORMAT_VERSION"]

FORMAT_NAME = "fnn.checkpoint"
FORMAT_VERSION = 1
_META = "__fnn_meta__"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _as_path(path, name: str = "path", hint: str = "") -> str:
    """A file or folder argument (str, bytes or os.PathLike) as a non-empty str."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise BadType(f"{name} must be a str or os.PathLike (e.g. pathlib.Path), "
                      f"got {describe_value(path)}.{hint}")
    path = os.fsdecode(path)
    if not path:
        raise BadValue(f"{name} must not be empty.")
    return path


# ---------------------------------------------------------------------------
# the archive


def _write_npz(fileobj, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def _read_npy(name: str, data: bytes) -> np.ndarray:
    """Parse one `.npy` entry, checking its header before touching the data."""
    bio = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(bio)
    except ValueError:
        raise Corrupt(f"entry {name!r} is not a .npy array") from None
    if version not in ((1, 0), (2, 0)):
        raise Corrupt(f"entry {name!r} has unsupported .npy version {version}")
    shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                       np.lib.format.read_array_header_2_0)(bio)
    if dtype.hasobject:
        raise Corrupt(f"entry {name!r} holds an object array (pickled Python objects); "
                      "fnn never unpickles")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - bio.tell() != expected:
        raise Corrupt(f"entry {name!r} holds {len(data) - bio.tell()} data bytes, its header "
                      f"({dtype}, shape {shape}) needs {expected}")
    bio.seek(0)
    return np.load(bio, allow_pickle=False)


def _read_archive(path: str, only_meta: bool) -> tuple[dict, dict]:
    """(header, {entry: array}) of the file at `path`; `Corrupt` or `OSError` if unreadable."""
    with open(path, "rb") as f:
        head = f.read(4)
        if not head.startswith(b"PK"):
            what = {b"\x80": "a raw pickle", b"\x93": "a single .npy array"}.get(
                head[:1], "not a zip archive")
            raise Corrupt(f"{what} (an fnn checkpoint is an .npz zip archive)")
        try:
            zf = zipfile.ZipFile(f)
        except zipfile.BadZipFile as e:
            raise Corrupt(f"damaged or truncated zip archive ({e})") from None
        with zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise Corrupt("duplicate entries in the archive")
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 \
                        or info.file_size != info.compress_size:
                    raise Corrupt(f"entry {info.filename!r} is compressed or encrypted; "
                                  "fnn writes plain stored entries")
                if not info.filename.endswith(".npy"):
                    raise Corrupt(f"unexpected entry {info.filename!r}")
            if sum(i.file_size for i in infos) > os.path.getsize(path):
                raise Corrupt("entry sizes exceed the file size")
            if _META + ".npy" not in names:
                raise Corrupt(f"no {_META} entry (not written by fnn.checkpoint.save)")
            arrays = {}
            for name in [_META + ".npy"] if only_meta else names:
                try:
                    data = zf.read(name)  # checks the CRC-32
                except (zipfile.BadZipFile, EOFError) as e:
                    raise Corrupt(f"entry {name!r} is damaged ({e})") from None
                arrays[name[:-4]] = _read_npy(name, data)
    meta = arrays.pop(_META)
    if meta.shape != () or meta.dtype.kind != "U":
        raise Corrupt(f"{_META} must be a 0-d unicode array, got {meta.dtype} {meta.shape}")
    try:
        header = json.loads(str(meta[()]))
    except (ValueError, RecursionError) as e:
        raise Corrupt(f"{_META} is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise Corrupt(f"{_META} does not describe an {FORMAT_NAME} file")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise Corrupt(f"unknown format version {version!r}")
    if version > FORMAT_VERSION:
        raise Corrupt(f"written in format version {version}; this fnn reads up to version "
                      f"{FORMAT_VERSION} (upgrade fnn)")
    if set(header) != {"format", "version", "tree", "metadata"}:
        raise Corrupt(f"unexpected header fields {sorted(header)}")
    if not isinstance(header["metadata"], dict):
        raise Corrupt("metadata must be a JSON object")
    return header, arrays


def _read(path: str, only_meta: bool = False):
    """The decoded tree (or the metadata) in `path`; errors name `load` (`load_metadata`)."""
    where = "fnn.checkpoint.load_metadata" if only_meta else "fnn.checkpoint.load"
    try:
        header, arrays = _read_archive(path, only_meta)
        return header["metadata"] if only_meta else decode(header["tree"], arrays)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: {path} does not exist.") from None
    except IsADirectoryError:
        raise IsADirectoryError(
            f"{where}: {path} is a folder, not a checkpoint file; for a folder of numbered "
            "checkpoints use fnn.checkpoint.CheckpointManager(folder).restore().") from None
    except (NotADirectoryError, PermissionError) as e:
        raise type(e)(f"{where}: cannot read {path}: {e.strerror or e}.") from None
    except Exception as e:  # noqa: BLE001 - hostile input may fail anywhere in the parsers
        reason = str(e) if isinstance(e, Corrupt) else f"{type(e).__name__}: {e}"
        raise ValueError(f"fnn.checkpoint.load: {path} is not a valid fnn checkpoint: "
                         f"{' '.join(reason.splitlines())}") from None


# ---------------------------------------------------------------------------
# the public functions


@named("fnn.checkpoint.save")
def save(path, tree, *, metadata: dict | None = None) -> str:
    """Write `tree` to `path` (one `.npz`, atomically) and return the path as a string.

    **Arguments:**
    - `path`: the file to write, a str or `os.PathLike` (used as given; no `.npz` is
      appended). Its folder must exist (a missing folder is more often a typo than a
      wish; `CheckpointManager` creates its own folder).
    - `tree`: a pytree of arrays and Python scalars (see `help(fnn.checkpoint)`).
    - `metadata`: an optional JSON-serialisable dict stored beside the tree (e.g. a
      trainer's `{"step": 12, "config": {...}}`); read it back with `load_metadata`.

    Raises `TypeError` for unsupported leaves (naming the leaf path), metadata JSON
    cannot encode or a `path` that is no str or `os.PathLike`; `IsADirectoryError`
    when `path` is a folder and `FileNotFoundError` when its folder does not exist.
    On any failure the file at `path` is untouched and no temporary file is left.
    """
    swapped = isinstance(tree, (str, os.PathLike)) and not isinstance(path, (str, os.PathLike))
    path = _as_path(path, hint=" The arguments are save(path, tree)." if swapped else "")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadType(f"metadata must be a dict or None, got {metadata!r}.")
    with atomic_file(path, "fnn.checkpoint.save") as f:
        spec, arrays = encode(tree)
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "tree": spec,
                  "metadata": dict(metadata or {})}
        try:
            text = json.dumps(header, ensure_ascii=True)
        except (TypeError, ValueError) as e:
            raise BadType(f"metadata must be JSON-serialisable: {e}") from e
        _write_npz(f, {_META: np.asarray(text), **arrays})
    return path


@named("fnn.checkpoint.load")
def load(path, like=None):
    """Read a checkpoint written by `save`.

    **Arguments:**
    - `path`: the `.npz` file.
    - `like`: an optional pytree with the expected structure (arrays or
      `jax.ShapeDtypeStruct`s as leaves, e.g. a freshly initialised train state).

    **Returns** the tree. With `like`, it has exactly `like`'s container types (its
    `NamedTuple` classes, dict key order) and leaf types (a `jax.Array` or
    `ShapeDtypeStruct` leaf gives a `jax.Array`, an `np.ndarray` an `np.ndarray`, a
    Python scalar a Python scalar). Without `like`, everything comes back as saved,
    except that a NamedTuple is a `collections.namedtuple` of the saved class and
    field names (pass `like` for the original class), and dict subclasses are dicts.
    A 64-bit array saved from JAX with x64 enabled comes back as a NumPy array when
    x64 is disabled, rather than being silently truncated.

    **Raises** `ValueError` when the file is not a valid checkpoint ("... is not a
    valid fnn checkpoint: <reason>") and when it does not match `like`, naming the
    first mismatching leaf path (in `jax.tree_util` leaf order), what was expected
    and what was found; `FileNotFoundError` when the file does not exist,
    `IsADirectoryError` when `path` is a folder, `TypeError` when it is no str or
    `os.PathLike`.
    """
    path = _as_path(path)
    root = _read(path)
    if like is None:
        return restore(root)
    try:
        return restore(root, like)
    except Mismatch as e:
        where, expected, found = e.args
        raise ValueError(f"fnn.checkpoint.load: {path} does not match `like` at {where}: "
                         f"expected {expected} (from like), found {found} in the checkpoint."
                         ) from None


@named("fnn.checkpoint.load_metadata")
def load_metadata(path) -> dict:
    """The `metadata` dict stored by `save` (e.g. `{"step": 12, "config": {...}}`).

    Reads and validates only the metadata entry (cheap, does not load the arrays).
    Raises `ValueError` for an invalid file and `OSError`s for a bad path, like `load`.
    """
    return _read(_as_path(path), only_meta=True)


# ---------------------------------------------------------------------------
# a folder of numbered checkpoints


_CKPT_RE = re.compile(r"ckpt_(\d{8,})\.npz")


class CheckpointManager:
    """A folder of numbered checkpoints `ckpt_00000012.npz`, keeping the newest `keep`.

    **Arguments:**
    - `directory`: the folder, a str or `os.PathLike` (created if missing, with its
      parents; an existing file there is a `NotADirectoryError`).
    - `keep`: how many checkpoints to keep (the highest steps); `None` keeps all.

    `save(step, tree, metadata=None)` writes atomically, then deletes the oldest
    checkpoints beyond `keep`. The stored metadata is `{"step": step, **metadata}`.
    Files that do not match `ckpt_<digits>.npz` exactly (such as the hidden
    temporary files of an interrupted save) are ignored.
    """

    @named("CheckpointManager")
    def __init__(self, directory, keep: int | None = 3):
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise BadValue(f"keep must be a positive int or None, got {keep!r}.")
        self.directory = _as_path(directory, "directory")
        self.keep = keep
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise NotADirectoryError(
                f"CheckpointManager: {self.directory} is a file; expected a folder for the "
                "numbered checkpoints (to load one file, use fnn.checkpoint.load).")
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:  # a parent is a file, no permission, ...
            raise type(e)(f"CheckpointManager: cannot create the folder {self.directory}: "
                          f"{e.strerror or e}.") from None

    def path(self, step: int) -> str:
        """The file name used for `step`."""
        if isinstance(step, bool) or not hasattr(step, "__index__") or int(step) < 0:
            raise ValueError(f"CheckpointManager: step must be a non-negative int, got {step!r}.")
        return os.path.join(self.directory, f"ckpt_{int(step):08d}.npz")

    def all_steps(self) -> list[int]:
        """The steps of the checkpoints on disk, ascending."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_CKPT_RE.fullmatch, names) if m)

    def latest(self) -> int | None:
        """The newest step on disk, or `None` when there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, tree, metadata: dict | None = None) -> str:
        """Save `tree` as checkpoint `step` (atomically), prune to `keep`; return its path."""
        path = self.path(step)
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"CheckpointManager.save: metadata must be a dict, got {metadata!r}.")
        meta = {**(metadata or {}), "step": int(step)}
        if (metadata or {}).get("step", step) != step:
            raise ValueError(f"CheckpointManager.save: metadata['step']={metadata['step']!r} "
                             f"differs from step={step}.")
        save(path, tree, metadata=meta)
        for old in self.all_steps()[:-self.keep] if self.keep is not None else ():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path(old))
        return path

    def _resolve(self, step) -> str:
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"CheckpointManager: no checkpoints in {self.directory}.")
            step = steps[-1]
        path = self.path(step)
        if not os.path.exists(path):
            raise FileNotFoundError(f"CheckpointManager: no checkpoint for step {step} in "
                                    f"{self.directory}; available steps: {steps}.")
        return path

    def restore(self, step: int | None = None, like=None):
        """Load checkpoint `step` (default: the latest); see `load` for `like`."""
        return load(self._resolve(step), like=like)

    def load_metadata(self, step: int | None = None) -> dict:
        """The metadata of checkpoint `step` (default: the latest), including `"step"`."""
        return load_metadata(self._resolve(step))

    def __repr__(self) -> str:
        return f"CheckpointManager({self.directory!r}, keep={self.keep})"
