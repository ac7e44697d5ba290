"""Device objects: `cpu`, `cuda`, `cuda:N`, with torch.device's parsing, equality and repr."""

from vibetensor import runtime as _runtime  # the runtime is below us: allowed (and CUDA-free to import)

_TYPES = ("cpu", "cuda", "meta")


_interned = {}


class device:
    """Devices are interned: equal devices are the same object, so hashing is identity (cheap on
    every op's hot path) and `is` comparisons are exact."""
    __slots__ = ("type", "index")

    def __new__(cls, type, index=None):
        if isinstance(type, device):
            return type
        key = (type, index) if isinstance(type, str) else None  # raw strings cached too: hot in factories
        d = _interned.get(key)
        if d is None:
            name, index = _parse(type, index)
            d = _interned.get((name, index))
            if d is None:
                d = object.__new__(cls)
                d.type, d.index = name, index
                _interned[(name, index)] = d
            if key is not None:
                _interned[key] = d
        return d

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return self is other

    __hash__ = object.__hash__

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __reduce__(self):
        return (device, (self.type, self.index))


def _parse(type, index):
    """(type name, index) from torch.device's argument forms, with torch's errors."""
    if isinstance(type, int) and not isinstance(type, bool):  # torch.device(0) is cuda:0
        type, index = "cuda", type
    if not isinstance(type, str):
        raise TypeError(f"device() received an invalid combination of arguments - got ({type!r})")
    name, sep, ordinal = type.partition(":")
    if name not in _TYPES:
        raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of device string: {type}")
    if sep:
        if index is not None:
            raise RuntimeError(f"type (string) must not include an index because index was passed explicitly: {type}")
        if not ordinal.isdigit():
            raise RuntimeError(f"Invalid device string: '{type}'")
        index = int(ordinal)
    if index is not None and (not isinstance(index, int) or index < 0):
        raise RuntimeError(f"Device index must not be negative, got {index}")
    if name == "cpu" and index not in (None, 0):
        raise RuntimeError(f"CPU device index must be -1 or zero, got {index}")
    return name, index


CPU = device("cpu")


def canonical(d):
    """The device a tensor actually lives on: `cuda` means the current CUDA device (0 until the
    CUDA runtime says otherwise); strings and ordinals are parsed."""
    if d is None:
        return CPU
    if not isinstance(d, device):
        d = device(d)
    if d.type == "cpu":
        return CPU
    if d.type == "cuda" and d.index is None:
        return device("cuda", _current_cuda_index())
    return d


def _current_cuda_index():
    return _runtime.current_cuda_device_index()
