"""Read a ``torch.save`` file without executing anything it contains: a restricted unpickler that rebuilds
tensors and plain containers only.

Third-party checkpoints (the TG-ECNet authors' Lightning ``.ckpt`` and their ``stage1.pth``) are pickles. A
pickle can name any importable callable and have the loader call it (``os.system``, ``builtins.exec`` ...), so
loading one with plain ``pickle``/``torch.load(weights_only=False)`` runs whatever its author put in it. A
Lightning checkpoint also carries objects that ``torch.load(weights_only=True)`` refuses (hyper-parameter
``AttributeDict``/``Namespace``, callback states), so that loader cannot read it as a whole either.

This reader resolves every global the pickle names through an allow-list:

* tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` are replaced by our own functions
  that view bytes of the archive's storage records (``<archive>/data/<key>``) with a checked size, offset and
  stride (:func:`_view`); storage types (``torch.FloatStorage`` ...) map to dtypes;
* containers and scalars: ``collections.OrderedDict``, ``builtins`` ``set``/``frozenset``/``tuple``/``list``/
  ``dict``/``slice``/``complex``, ``torch.device``/``torch.Size``, ``_codecs.encode`` with the ``latin1``
  codec only (how protocol 2 stores bytes);
* anything else becomes an inert :class:`Opaque` record of its dotted name, arguments and state: nothing of
  the named module is imported and nothing is called.

Only the zip format of ``torch.save`` (PyTorch >= 1.6, the one Lightning writes) is read.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from demmi_rf.errors import DemmiError

# legacy typed-storage class names (how torch.save names a storage's dtype) -> dtype
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}
MAX_TENSOR_DIMS = 16


class UnsafeFileError(DemmiError, ValueError):
    """A checkpoint file that cannot be read safely (not a torch zip archive, inconsistent tensor records)."""


class Opaque:
    """Inert stand-in for an object whose class is not on the allow-list: records what the pickle asked for.

    ``name`` the dotted global name, ``args`` the constructor arguments, ``state`` what ``__setstate__``
    received. No code of the named class ever runs.
    """

    name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None
        self.items: list[Any] = []

    def __setstate__(self, state: Any) -> None:  # pickle BUILD
        self.state = state

    def append(self, item: Any) -> None:  # pickle APPEND(S) on list subclasses
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:  # pickle SETITEM(S) on dict subclasses
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<opaque {self.name}>"


def _opaque_class(module: str, name: str) -> type:
    return type(name if name.isidentifier() else "Opaque", (Opaque,), {"name": f"{module}.{name}"})


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding != "latin1":
        raise UnsafeFileError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return text.encode("latin1")


def _view(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> torch.Tensor:
    """A tensor over ``storage`` (a flat 1-D tensor) after checking that the view stays inside it."""
    if not isinstance(storage, torch.Tensor):
        raise UnsafeFileError("a tensor record does not refer to a storage")
    size, stride = tuple(size), tuple(stride)
    ok = (isinstance(offset, int) and offset >= 0 and len(size) == len(stride) <= MAX_TENSOR_DIMS
          and all(isinstance(v, int) and v >= 0 for v in size + stride))
    if not ok:
        raise UnsafeFileError(f"malformed tensor record (offset {offset!r}, size {size!r}, stride {stride!r})")
    if all(s > 0 for s in size):
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= storage.numel():
            raise UnsafeFileError(f"a tensor of size {size} reads past the end of its storage")
    return storage.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, *_rest: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafeFileError("a parameter record does not hold a tensor")
    return data


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _view,
    ("torch._utils", "_rebuild_tensor"): _view,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "tuple"): tuple,
    ("builtins", "list"): list, ("builtins", "dict"): dict, ("builtins", "slice"): slice,
    ("builtins", "complex"): complex, ("__builtin__", "set"): set,
    ("torch", "device"): torch.device, ("torch", "Size"): torch.Size,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix
        self._storages: dict[str, torch.Tensor] = {}
        self.opaque: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        found = ALLOWED.get((module, name))
        if found is not None:
            return found
        self.opaque.add(f"{module}.{name}")
        return _opaque_class(module, name)

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeFileError(f"unsupported persistent record {str(pid)[:80]!r}")
        _, stype, key, _location, numel = pid
        dtype = stype.dtype if isinstance(stype, _StorageType) else None
        if dtype is None or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise UnsafeFileError(f"unsupported storage record {str(pid)[:80]!r}")
        if key not in self._storages:
            try:
                info = self._archive.getinfo(f"{self._prefix}data/{key}")
            except KeyError as exc:
                raise UnsafeFileError(f"storage {key!r} is missing from the archive") from exc
            itemsize = torch.empty((), dtype=dtype).element_size()
            # sizes are compared from the archive's directory, before anything is read or inflated
            if info.file_size != numel * itemsize:
                raise UnsafeFileError(f"storage {key!r} holds {info.file_size} bytes, its record says "
                                      f"{numel} x {itemsize}")
            if info.compress_type != zipfile.ZIP_STORED:
                raise UnsafeFileError(f"storage {key!r} is compressed (torch.save never compresses tensor data)")
            raw = self._archive.read(info)
            flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            self._storages[key] = flat
        return self._storages[key]


def safe_torch_load(path: str | Path) -> tuple[Any, set[str]]:
    """Load a ``torch.save`` zip archive with the restricted unpickler.

    Returns ``(object, opaque)``: the unpickled object (tensors on the CPU, unknown objects as
    :class:`Opaque`) and the dotted names of the globals that were *not* resolved (for the report).
    Raises :class:`UnsafeFileError` naming the file when it is not such an archive or is inconsistent.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeFileError(f"{path}: not a torch.save zip archive ({exc}); only that format (PyTorch >= 1.6, "
                              "what Lightning writes) is read") from exc
    with archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise UnsafeFileError(f"{path}: not a torch.save archive (expected one <name>/data.pkl record)")
        prefix = pkls[0][: -len("data.pkl")]
        try:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
        except KeyError:
            byteorder = "little"
        if byteorder != "little":
            raise UnsafeFileError(f"{path}: big-endian tensor data is not supported")
        unpickler = _Unpickler(archive.read(pkls[0]), archive, prefix)
        try:
            obj = unpickler.load()
        except UnsafeFileError as exc:
            raise UnsafeFileError(f"{path}: {exc}") from exc
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
                RecursionError, RuntimeError) as exc:
            raise UnsafeFileError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    return obj, unpickler.opaque
