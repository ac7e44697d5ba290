"""torch.save / torch.load in the safetensors format: no pickle, no code runs on load.

The file is plain safetensors (https://github.com/huggingface/safetensors), readable by
`safetensors.torch.load_file`:

    8 bytes          N, the header's length, little-endian unsigned
    N bytes          the header: JSON {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..],
                     "data_offsets": [begin, end]}, ...}, padded with spaces to a multiple of 8
    the rest         every tensor's bytes, row-major, little-endian, back to back (largest itemsize
                     first, so each tensor starts aligned); offsets count from the end of the header

`save(obj, f)` stores a tensor, or any nesting of dicts, lists and tuples whose leaves are tensors,
numbers, strings, booleans, None, dtypes and devices (a module's state_dict, an optimizer's
state_dict with its int keys and hyper-parameters, a whole training checkpoint). The tensors go in
as safetensors entries under flattened names ("model.fc.weight", "optimizer.state.0.exp_avg"); the
shape of the object, with its non-tensor leaves and each tensor's device and requires_grad, goes in
the header's `__metadata__` as JSON under the key "vibetensor". A file without that key (written
by safetensors or any other tool) loads as a dict name -> tensor.

Files are written atomically: a temporary file in the same directory is written, flushed and
fsync'ed, renamed over the target (os.replace), and the directory is fsync'ed; a save that fails
midway leaves any old file at the path untouched. Loading validates the whole header against the
file's size before it reads a tensor; a truncated or corrupt file raises CheckpointError (a
RuntimeError, as torch.load raises for a corrupt archive) naming the file, and never modifies it.

Differences from torch: Parameters come back as plain tensors (load_state_dict copies them into a
module's parameters), tensors that shared storage come back as independent copies (as with
safetensors), namedtuples come back as tuples, `weights_only` is accepted and ignored (nothing is
ever executed), complex128 and dtypes safetensors lacks cannot be stored, and a callable map_location
gets each tensor (on the CPU) where torch passes a storage.
"""
import json
import os
import secrets
import sys
from collections import OrderedDict

import numpy as np

from vibetensor.tensor import dtype as dt
from vibetensor.tensor.device import device as Device
from vibetensor.tensor.tensor import Tensor, array

__all__ = ["save", "load", "CheckpointError"]

# safetensors dtype names <-> ours
_CODES = {dt.float64: "F64", dt.float32: "F32", dt.float16: "F16", dt.bfloat16: "BF16", dt.int64: "I64",
          dt.int32: "I32", dt.int16: "I16", dt.int8: "I8", dt.uint8: "U8", dt.bool_: "BOOL", dt.complex64: "C64",
          dt.uint16: "U16", dt.uint32: "U32", dt.uint64: "U64"}
_DTYPES = {code: d for d, code in _CODES.items()}
_META_KEY = "vibetensor"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the header's size


class CheckpointError(RuntimeError):
    """A checkpoint file that is truncated, corrupt, or not safetensors."""


# -- writing ------------------------------------------------------------------------------------------------

def save(obj, f, *args, **kwargs):
    """torch.save(obj, f): obj (a tensor or a nesting of containers, see the module docstring) into f,
    a path (written atomically) or a binary file object. torch's pickle options are accepted and ignored."""
    tensors = {}
    structure = _encode(obj, "", tensors)
    _write(f, tensors, {_META_KEY: json.dumps(structure), "format": "pt"})


def save_file(tensors, filename, metadata=None):
    """safetensors.torch.save_file: a dict name -> tensor, with optional str -> str metadata."""
    if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                for k, v in tensors.items()):
        raise ValueError("save_file() expects a dict of str -> Tensor")
    if metadata is not None and not (isinstance(metadata, dict) and
                                     all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ValueError("save_file() expects metadata to be a dict of str -> str")
    _write(filename, dict(tensors), metadata)


def _name(path):
    return path if path else "tensor"


def _unique(tensors, key):
    """key, or key#1, key#2... when a flattened name collides ({"a.b": x, "a": {"b": y}})."""
    name, k = key, 0
    while name in tensors:
        k += 1
        name = f"{key}#{k}"
    return name


def _encode(x, path, tensors):
    """The JSON shape of x, moving its tensors into `tensors` under flattened names."""
    if isinstance(x, Tensor):
        name = _unique(tensors, _name(path))
        tensors[name] = x
        node = {"T": name}
        if x._device.type != "cpu":
            node["device"] = str(x._device)
        if x.requires_grad:
            node["requires_grad"] = True
        return node
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"V": x}
    if isinstance(x, dt.dtype):
        return {"dtype": x.name}
    if isinstance(x, Device):
        return {"device": str(x)}
    if isinstance(x, dict):
        keys = [_encode_key(k) for k in x]
        items = [[k, _encode(v, f"{path}.{k['V']}" if path else str(k["V"]), tensors)] for k, v in zip(keys, x.values())]
        return {"D": items, "ordered": isinstance(x, OrderedDict)}
    if isinstance(x, (list, tuple)):
        kind = "L" if isinstance(x, list) else "U"
        return {kind: [_encode(v, f"{path}.{i}" if path else str(i), tensors) for i, v in enumerate(x)]}
    raise TypeError(f"save(): can't store an object of type {type(x).__name__} in a safetensors checkpoint "
                    "(only tensors, dicts, lists, tuples, numbers, strings, booleans, None, dtypes and devices)")


def _encode_key(k):
    if k is None or isinstance(k, (bool, int, float, str)):
        return {"V": k}
    raise TypeError(f"save(): can't store a dict key of type {type(k).__name__} in a safetensors checkpoint")


def _header(tensors, metadata):
    """(header bytes, [(name, tensor)] in file order): largest itemsize first keeps every tensor aligned."""
    for name, t in tensors.items():
        if t._dtype not in _CODES:
            raise TypeError(f"save(): safetensors has no dtype for {t._dtype} (tensor '{name}')")
    order = sorted(tensors.items(), key=lambda kv: -kv[1]._dtype.itemsize)
    header = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, t in order:
        n = t.numel() * t._dtype.itemsize
        header[name] = {"dtype": _CODES[t._dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return text, order


def _tensor_bytes(t):
    """t's values as little-endian row-major bytes (a copy from the device when it is not on CPU)."""
    host = t.detach()
    if host._device.type != "cpu":
        host = host.cpu()
    a = np.ascontiguousarray(array(host))
    if sys.byteorder == "big":
        a = a.byteswap()
    return a.reshape(-1).view(np.uint8)


def _write(f, tensors, metadata):
    header, order = _header(tensors, metadata)
    chunks = _chunks(header, order)
    if hasattr(f, "write"):
        for c in chunks:
            f.write(c)
        return
    _write_atomic(os.fspath(f), chunks)


def _chunks(header, order):
    yield len(header).to_bytes(8, "little")
    yield header
    for _, t in order:
        yield _tensor_bytes(t)


def _write_atomic(path, chunks):
    """Write chunks to a fresh file beside `path`, fsync it, rename it over `path`, fsync the directory."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            for c in chunks:
                out.write(c)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _fsync_dir(folder):
    """Make the rename durable (POSIX); directories can't be opened for fsync on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------------------------------------

def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **kwargs):
    """torch.load(f): the object save() stored (a file from any safetensors writer loads as a dict
    name -> tensor). Tensors go back to the device they were saved from, or to map_location: a device
    (or its name or ordinal) for all, a dict {saved device name: device}, or torch's callable
    `map_location(storage, location)` (here given each tensor, on the CPU, and its saved device's
    name; it returns the tensor where it should go, or None for the saved device)."""
    name, data = _read(f)
    metadata, entries = _parse(name, data)
    structure = metadata.get(_META_KEY)
    tensors = _tensors(name, data, entries)
    if structure is None:
        return {k: _place(t, "cpu", map_location) for k, t in tensors.items()}
    try:
        tree = json.loads(structure)
    except ValueError as e:
        raise CheckpointError(f"{name}: corrupt checkpoint: the object structure is not valid JSON ({e})") from None
    return _decode(name, tree, tensors, map_location)


def load_file(filename, device="cpu"):
    """safetensors.torch.load_file: a dict name -> tensor, every tensor on `device` (a name or a CUDA ordinal)."""
    name, data = _read(filename)
    _, entries = _parse(name, data)
    return {k: _place(t, "cpu", device) for k, t in _tensors(name, data, entries).items()}


def _read(f):
    """(a name for messages, the file's bytes). The file is only opened for reading."""
    if hasattr(f, "read"):
        return getattr(f, "name", None) or repr(f), f.read()
    path = os.fspath(f)
    with open(path, "rb") as fh:
        return path, fh.read()


def _corrupt(name, why):
    return CheckpointError(f"{name}: not a valid safetensors checkpoint (truncated or corrupt file?): {why}")


def _parse(name, data):
    """(metadata, {tensor name: (dtype, shape, begin, end)}) after checking the header against the file."""
    if len(data) < 8:
        raise _corrupt(name, f"the file has {len(data)} bytes, fewer than the 8 of the header length")
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER or 8 + n > len(data):
        raise _corrupt(name, f"the header length {n} runs past the end of the file ({len(data)} bytes)")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _corrupt(name, f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _corrupt(name, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _corrupt(name, "__metadata__ is not a dict of strings")
    size = len(data) - 8 - n
    return metadata, {k: _entry(name, k, v, size) for k, v in header.items()}


def _entry(name, key, info, size):
    try:
        dtype = _DTYPES[info["dtype"]]
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
    except KeyError as e:
        if isinstance(info, dict) and "dtype" in info and e.args[0] == info["dtype"]:
            raise CheckpointError(f"{name}: tensor '{key}' has dtype {info['dtype']}, which vibetensor does not "
                                  "support") from None
        raise _corrupt(name, f"tensor '{key}' has a malformed entry {info!r}") from None
    except (TypeError, ValueError):
        raise _corrupt(name, f"tensor '{key}' has a malformed entry {info!r}") from None
    if not all(type(s) is int and s >= 0 for s in shape) or type(begin) is not int or type(end) is not int:
        raise _corrupt(name, f"tensor '{key}' has a malformed shape or offsets {info!r}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not 0 <= begin <= end or end - begin != nbytes:
        raise _corrupt(name, f"tensor '{key}' of shape {list(shape)} ({info['dtype']}) needs {nbytes} bytes, its "
                             f"offsets [{begin}, {end}] hold {end - begin}")
    if end > size:
        raise _corrupt(name, f"tensor '{key}' ends at byte {end} of the data, which has only {size} bytes")
    return dtype, shape, begin, end


def _tensors(name, data, entries):
    """Our CPU tensors (copies owning their memory) for every header entry."""
    from vibetensor.torch.creation import from_numpy
    start = 8 + int.from_bytes(data[:8], "little")
    out = {}
    for key, (dtype, shape, begin, end) in entries.items():
        count = (end - begin) // dtype.itemsize
        a = np.frombuffer(data, dtype=dtype.np, count=count, offset=start + begin) if count else np.empty(0, dtype.np)
        a = a.reshape(shape).copy()
        if sys.byteorder == "big":
            a = a.byteswap()
        out[key] = from_numpy(a)
    return out


def _place(t, saved, map_location):
    """The CPU tensor t (saved from device `saved`, a name) where map_location sends it."""
    if map_location is None:
        return _move(t, saved)
    if isinstance(map_location, dict):
        return _move(t, map_location.get(saved, saved))
    if callable(map_location):  # torch's map_location(storage, location)
        moved = map_location(t, saved)
        if moved is None:
            return _move(t, saved)
        if not isinstance(moved, Tensor):
            raise TypeError(f"load(): map_location returned {type(moved).__name__}; expected the tensor it was "
                            "given, moved where it should go, or None")
        return moved
    return _move(t, map_location)


def _move(t, where):
    dev = Device(where)
    if dev.type == "cpu":
        return t
    if dev.type == "cuda":
        _check_cuda(dev)
    return t.to(dev)


def _check_cuda(dev):
    """torch.load's errors for a CUDA location this machine lacks (torch.serialization._validate_cuda_device)."""
    from vibetensor.torch import cuda
    if not cuda.is_available():
        raise RuntimeError("Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is "
                           "False. If you are running on a CPU-only machine, please use torch.load with "
                           "map_location=torch.device('cpu') to map your storages to the CPU.")
    count = cuda.device_count()
    index = cuda.current_device() if dev.index is None else dev.index
    if index >= count:
        raise RuntimeError(f"Attempting to deserialize object on CUDA device {index} but "
                           f"torch.cuda.device_count() is {count}. Please use torch.load with map_location to map "
                           "your storages to an existing device.")


class _Placing(Exception):
    """An error of map_location or of the target device: carried out of the structure's decoding unchanged
    (it says nothing about the file)."""


def _decode(name, node, tensors, map_location):
    try:
        return _decode_node(node, tensors, map_location)
    except CheckpointError:
        raise
    except _Placing as e:
        raise e.args[0]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{name}: corrupt checkpoint: the object structure does not match its tensors "
                              f"({type(e).__name__}: {e})") from None


def _decode_node(node, tensors, map_location):
    if "T" in node:
        t, saved = tensors[node["T"]], node.get("device", "cpu")
        try:
            t = _place(t, saved, map_location)
        except Exception as e:
            raise _Placing(e) from None
        return t.requires_grad_(True) if node.get("requires_grad") else t
    if "V" in node:
        return node["V"]
    if "dtype" in node:
        return getattr(dt, node["dtype"] if node["dtype"] != "bool" else "bool_")
    if "device" in node:
        return Device(node["device"])
    if "D" in node:
        items = [(k["V"], _decode_node(v, tensors, map_location)) for k, v in node["D"]]
        return OrderedDict(items) if node.get("ordered") else dict(items)
    if "L" in node:
        return [_decode_node(v, tensors, map_location) for v in node["L"]]
    if "U" in node:
        return tuple(_decode_node(v, tensors, map_location) for v in node["U"])
    raise ValueError(f"unknown node {sorted(node)}")
