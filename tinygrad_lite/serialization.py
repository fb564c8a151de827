"""Checkpoints in the safetensors format, written and read with NumPy and json only.

File layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then the raw
little-endian tensor bytes. A flat `{str: Tensor}` state dict is stored as exactly that, readable by other
safetensors tools. Anything else (optimizer state dicts, nested dicts, numbers, lists) is stored with its
tensors under path-like names (`optim/state/0/exp_avg`) and the rest of the structure as JSON in the
`__metadata__` entry `tinygrad_lite.structure`.

Loading never executes code: there is no pickle. Every offset and shape is checked against the real file
size before anything is allocated, so a lying header cannot cause a huge allocation.
"""
import io
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np

from ._size import Size
from .compile.hooks import refuse
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the reference implementation uses
_MAX_NESTING = 200
_STRUCTURE_KEY = "tinygrad_lite.structure"
_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2", "I32": "<i4", "I64": "<i8",
           "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "|b1"}
_DTYPES = {k: np.dtype(v) for k, v in _DTYPES.items()}
_DTYPE_NAMES = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items()}
_PICKLE_MSG = "this looks like a pickle / PyTorch .pt file; tinygrad_lite only loads safetensors"


class CheckpointError(ValueError):
    """A file that is not a valid tinygrad_lite / safetensors checkpoint (truncated, corrupted or foreign)."""

    def __init__(self, path, problem):
        self.path = path
        self.problem = problem
        super().__init__(f"cannot load checkpoint {path!r}: {problem}")


# -- saving -------------------------------------------------------------------------------------------------
def _leaf_array(value):
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    return None


def _prepare(name, arr):
    """The array as C-contiguous little-endian bytes-to-be, and its safetensors dtype name."""
    dtype_name = _DTYPE_NAMES.get((arr.dtype.kind, arr.dtype.itemsize)) if arr.dtype.kind in "fiub" else None
    if dtype_name is None:
        raise TypeError(f"tl.save: cannot store {name!r} of dtype {arr.dtype}; supported dtypes are float16/32/64, "
                        "int8/16/32/64, uint8/16/32/64 and bool")
    return np.asarray(arr, dtype=_DTYPES[dtype_name], order="C"), dtype_name


def _unique_name(path, tensors):
    base = "/".join(str(k) for k in path) or "tensor"
    name, n = base, 1
    while name in tensors or name == "__metadata__":
        name, n = f"{base}#{n}", n + 1
    return name


def _encode(obj, path, tensors, depth=0):
    """A JSON-able description of `obj`; tensors go into `tensors` and are referenced by name."""
    if depth > _MAX_NESTING:
        raise ValueError(f"tl.save: object nested deeper than {_MAX_NESTING} levels at {'/'.join(map(str, path))}")
    arr = _leaf_array(obj)
    if arr is not None:
        name = _unique_name(path, tensors)
        tensors[name] = arr
        return {"tensor": name}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if isinstance(key, np.integer):
                key = int(key)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"tl.save: dict keys must be str or int, got {type(key).__name__} {key!r} at "
                                f"{'/'.join(map(str, path)) or 'the top level'}")
            items.append([key, _encode(value, path + (key,), tensors, depth + 1)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        kind = "size" if isinstance(obj, Size) else "tuple" if isinstance(obj, tuple) else "list"
        return {kind: [_encode(v, path + (i,), tensors, depth + 1) for i, v in enumerate(obj)]}
    where = "/".join(map(str, path)) or "the top level"
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"tl.save: cannot store a {type(obj).__name__} at {where}; only Tensors, NumPy arrays, "
                    f"dicts, lists, tuples, str, int, float, bool and None can be saved{hint}")


def _file_mode():
    """0o666 minus the process umask (read without changing it, which would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _write(f, header_bytes, arrays):
    f.write(struct.pack("<Q", len(header_bytes)))
    f.write(header_bytes)
    for arr in arrays:
        if arr.size:
            f.write(arr.reshape(-1).view(np.uint8).data)


def save(obj, path):
    """Write `obj` (a state dict, an optimizer state dict, or a nested dict/list of those and plain values) to
    `path` in the safetensors format, atomically: a temporary file in the same directory is written, synced and
    renamed over `path`, so a crash mid-save never leaves a broken checkpoint behind."""
    refuse("tl.save writes a file")  # (inside tl.compile: every call saves, eagerly)
    tensors = {}
    flat = isinstance(obj, dict) and all(isinstance(k, str) and k != "__metadata__" and _leaf_array(v) is not None
                                         for k, v in obj.items())
    if flat:
        for k, v in obj.items():
            tensors[k] = _leaf_array(v)
        metadata = None
    else:
        structure = _encode(obj, (), tensors)
        metadata = {"format": "tinygrad_lite", _STRUCTURE_KEY: json.dumps(structure, separators=(",", ":"))}
    prepared = {name: _prepare(name, arr) for name, arr in tensors.items()}
    # Data sorted by decreasing item size keeps every tensor aligned to its item size (the header is padded to 8)
    layout = sorted(prepared, key=lambda n: -prepared[n][0].dtype.itemsize)
    offsets, pos = {}, 0
    for name in layout:
        nbytes = prepared[name][0].nbytes
        offsets[name] = [pos, pos + nbytes]
        pos += nbytes
    header = {} if metadata is None else {"__metadata__": metadata}
    for name, (arr, dtype_name) in prepared.items():
        header[name] = {"dtype": dtype_name, "shape": list(arr.shape), "data_offsets": offsets[name]}
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    arrays = [prepared[name][0] for name in layout]
    if hasattr(path, "write"):
        _write(path, header_bytes, arrays)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, header_bytes, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every platform lets a directory be opened
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# -- loading ------------------------------------------------------------------------------------------------
def _sniff(prefix, last_byte):
    """A description of a known foreign format from the first bytes, or None."""
    if prefix.startswith(b"PK\x03\x04"):
        return _PICKLE_MSG + " (it is a zip archive, which is what torch.save writes)"
    if len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5:
        return _PICKLE_MSG + f" (it starts with the pickle protocol {prefix[1]} marker)"
    if prefix[:1] in (b"(", b"]", b"}", b"c") and last_byte == b".":
        return _PICKLE_MSG + " (it looks like a protocol 0/1 pickle)"
    if prefix.startswith(b"\x93NUMPY"):
        return "this is a NumPy .npy file, not a safetensors checkpoint; read it with numpy.load"
    return None


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(Exception):
    pass


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_header(path, raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(path, f"the header is not valid UTF-8 ({e.reason} at byte {8 + e.start})") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as e:
        raise CheckpointError(path, f"the header has the key {e.args[0]!r} twice") from None
    except RecursionError:
        raise CheckpointError(path, "the header JSON is nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError, and over-long integer literals
        raise CheckpointError(path, f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, f"the header must be a JSON object, got {type(header).__name__}")
    return header


def _check_entries(path, header, data_size):
    """Validate every tensor entry against the data size; return [(name, dtype, shape, begin, end)]."""
    metadata = header.pop("__metadata__", None)
    if metadata is not None and (not isinstance(metadata, dict) or
                                 not all(isinstance(v, str) for v in metadata.values())):
        raise CheckpointError(path, "__metadata__ must be an object mapping strings to strings")
    entries = []
    for name, info in header.items():
        what = f"tensor {name!r}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise CheckpointError(path, f"{what}: expected an object with dtype, shape and data_offsets")
        dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
            raise CheckpointError(path, f"{what}: unknown or unsupported dtype {dtype_name!r} (supported: "
                                        f"{', '.join(_DTYPES)})")
        dtype = _DTYPES[dtype_name]
        if not isinstance(shape, list) or len(shape) > 64 or not all(_is_int(d) and d >= 0 for d in shape):
            raise CheckpointError(path, f"{what}: shape must be a list of at most 64 non-negative integers, "
                                        f"got {str(shape)[:80]}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise CheckpointError(path, f"{what}: data_offsets must be two integers, got {str(offsets)[:80]}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise CheckpointError(path, f"{what}: data_offsets [{begin}, {end}] are outside the data section of "
                                        f"{data_size} bytes (truncated or corrupted file)")
        if math.prod(d for d in shape if d) * dtype.itemsize > sys.maxsize:
            raise CheckpointError(path, f"{what}: shape {shape} is too large for any array")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != end - begin:
            raise CheckpointError(path, f"{what}: shape {shape} of {dtype_name} needs {nbytes} bytes but "
                                        f"data_offsets [{begin}, {end}] span {end - begin}")
        entries.append((name, dtype, shape, begin, end))
    pos, prev = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < pos:
            raise CheckpointError(path, f"tensor {name!r} overlaps tensor {prev!r} (offsets {begin} < {pos})")
        if begin > pos:
            raise CheckpointError(path, f"the data section has a hole of {begin - pos} bytes before tensor "
                                        f"{name!r}")
        pos, prev = end, name
    if pos != data_size:
        raise CheckpointError(path, f"the data section has {data_size - pos} bytes after the last tensor "
                                    f"(the header describes {pos} of {data_size} bytes)")
    return metadata or {}, entries


def _make_array(path, buf, dtype, shape, begin, end, name):
    if end == begin:
        return np.zeros(shape, dtype=dtype.newbyteorder("="))
    arr = np.frombuffer(buf, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin).reshape(shape)
    if dtype.kind == "b" and arr.view(np.uint8).max() > 1:
        raise CheckpointError(path, f"tensor {name!r}: BOOL data holds bytes other than 0 and 1")
    if not arr.dtype.isnative or not arr.flags.aligned:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def _decode(path, node, tensors, depth=0):
    if depth > _MAX_NESTING:
        raise CheckpointError(path, f"the structure metadata is nested deeper than {_MAX_NESTING} levels")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (tag, value), = node.items()
        if tag == "tensor" and isinstance(value, str):
            if value not in tensors:
                raise CheckpointError(path, f"the structure refers to tensor {value!r}, which is not in the file")
            return tensors[value]
        if tag in ("list", "tuple", "size") and isinstance(value, list):
            items = [_decode(path, v, tensors, depth + 1) for v in value]
            if tag == "size":  # (a shape kept in a checkpoint loads as the torch.Size it was, as torch.load's)
                if not all(type(v) is int and v >= 0 for v in items):
                    raise CheckpointError(path, "the structure has a Size whose items are not non-negative ints")
                return Size(items)
            return tuple(items) if tag == "tuple" else items
        if tag == "dict" and isinstance(value, list):
            out = {}
            for item in value:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))
                        and not isinstance(item[0], bool)):
                    raise CheckpointError(path, "the structure has a malformed dict item")
                if item[0] in out:
                    raise CheckpointError(path, f"the structure has the dict key {item[0]!r} twice")
                out[item[0]] = _decode(path, item[1], tensors, depth + 1)
            return out
    raise CheckpointError(path, f"the structure metadata has an unknown node {str(node)[:80]}")


def _open(path):
    if hasattr(path, "read"):
        data = path.read()
        return io.BytesIO(data), len(data), getattr(path, "name", "<file object>")
    name = os.fspath(path)
    f = open(name, "rb")  # a missing file raises FileNotFoundError (an OSError), as it should
    try:
        return f, os.fstat(f.fileno()).st_size, name
    except BaseException:
        f.close()
        raise


def _foreign_or(path, f, size, prefix, problem):
    """Raise the foreign-format diagnosis if the bytes match one, else `problem`."""
    last = b""
    if size:
        f.seek(size - 1)
        last = f.read(1)
    raise CheckpointError(path, _sniff(prefix, last) or problem)


def load(path, map_location=None, *, weights_only=True, mmap=None):
    """Read a checkpoint written by `save` (or any safetensors file) and return its structure with Tensors.
    Raises OSError for a missing file and `CheckpointError` (a ValueError) for anything that is not a valid
    safetensors file; no code from the file is ever executed. `weights_only` (always true here: only tensors and
    plain containers can be stored) and `map_location` (the CPU) are accepted as PyTorch's."""
    from .devices import check
    check(map_location if not callable(map_location) and not isinstance(map_location, dict) else None, "load")
    f, size, name = _open(path)
    with f:
        prefix = f.read(8)
        if size < 8 or len(prefix) < 8:
            _foreign_or(name, f, size, prefix, f"the file has only {size} bytes; a safetensors file starts with an "
                                               "8-byte header length (truncated or empty file)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8 or header_len > MAX_HEADER_BYTES or header_len < 2:
            _foreign_or(name, f, size, prefix, f"the header length {header_len} does not fit the file of {size} "
                                               "bytes (truncated file, or not a safetensors file)")
        raw = f.read(header_len)
        if len(raw) != header_len:
            raise CheckpointError(name, "the file ended inside the header (it changed while being read?)")
        if raw[:1] != b"{":
            _foreign_or(name, f, size, prefix, "the header does not start with '{' (not a safetensors file)")
        header = _parse_header(name, raw)
        data_size = size - 8 - header_len
        metadata, entries = _check_entries(name, header, data_size)
        buf = bytearray(data_size)  # bounded by the real file size, checked above
        f.seek(8 + header_len)
        if f.readinto(buf) != data_size:
            raise CheckpointError(name, "the file ended before its data section (it changed while being read?)")
    arrays = {n: _make_array(name, buf, dt, shape, b, e, n) for n, dt, shape, b, e in entries}
    tensors = {n: Tensor(a) for n, a in arrays.items()}
    structure = metadata.get(_STRUCTURE_KEY)
    if structure is None:
        return tensors
    try:
        node = json.loads(structure)
    except RecursionError:
        raise CheckpointError(name, "the structure metadata is nested too deeply") from None
    except ValueError as e:
        raise CheckpointError(name, f"the structure metadata is not valid JSON ({e})") from None
    return _decode(name, node, tensors)
