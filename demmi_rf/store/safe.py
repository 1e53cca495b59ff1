"""The store's seam: the one place where a dataset's files are located and its HDF5 shards are opened.

Every reader of shards (:class:`~demmi_rf.store.reader.Dataset`, hence ``DeMMIDataset`` and ``demmi baseline``;
``demmi verify``, quick and full; a resumed build's reuse check through :func:`demmi_rf.store.shard.open_shard`)
goes through :func:`open_shard`, which refuses, with a :class:`~demmi_rf.errors.ShardError` naming the shard and
the problem, anything a DeMMI-RF build does not write and that could make a read leave the file:

* a shard path that is absolute, contains ``..`` or ``\\``, is not ``shards/<name>.h5``, or resolves (symbolic
  links included) outside the dataset folder, or is not a regular file (:func:`shard_path`);
* a root ``format`` attribute that is not the string ``demmi-rf-shard`` (an array, a number...), or a
  ``format_version`` that is not an integer this toolkit reads;
* any link that is not a hard link inside the file: soft links, external links, user-defined links
  (HDF5 follows external links into other files, and soft links alias objects);
* any object that is not a group or a dataset (committed datatypes);
* any dataset whose layout is not contiguous or chunked (virtual datasets map other files' data; compact is
  never written), that has external raw storage (``H5Pset_external``: its bytes live in another file), whose
  filters are not in :data:`ALLOWED_FILTERS` (built-in deflate, shuffle, fletcher32: a filter id outside
  them would make HDF5 load a plugin library), whose element type is not an integer, or that does not store
  every byte (contiguous) or every chunk (chunked) its shape declares: a build writes them all, and a sparse
  dataset would decode to fill values (gigabytes from a file of a few kilobytes).

Pixel arrays are then read through :func:`read_array`, which also refuses an array that is not uint8 or whose
shape differs from the one the manifest records (``height``, ``width``, ``vis_channels``).

The structure walk visits every link and object of the file once per opened file (about 0.3 ms per object);
a shard already checked in this process, with the same device, inode, size, modification and status-change
times, is not walked again (:data:`_CHECKED`).
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections import OrderedDict
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
from h5py import h5d, h5l, h5o, h5t, h5z

from ..errors import DatasetError, ShardError
from .layout import SHARD_DIR, SHARD_EXT, SHARD_FORMAT, SHARD_FORMAT_VERSION

#: HDF5 filters a shard may use: built into every HDF5 library (no plugin is ever loaded). The toolkit writes
#: deflate (gzip) and, when the storage settings ask for it, shuffle; fletcher32 is a checksum.
ALLOWED_FILTERS = {h5z.FILTER_DEFLATE: "deflate", h5z.FILTER_SHUFFLE: "shuffle",
                   h5z.FILTER_FLETCHER32: "fletcher32"}
_LAYOUTS = {h5d.CONTIGUOUS: "contiguous", h5d.CHUNKED: "chunked"}
_LAYOUT_NAMES = {h5d.COMPACT: "compact", h5d.VIRTUAL: "virtual"}
_LINK_NAMES = {h5l.TYPE_SOFT: "a soft link", h5l.TYPE_EXTERNAL: "an external link"}
_SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHECKED: OrderedDict[tuple[str, int, int, int, int, int], None] = OrderedDict()
_CHECKED_MAX = 4096


# ---- paths ------------------------------------------------------------------------------------------------
def shard_name_problem(rel: object) -> str | None:
    """Why ``rel`` is not a valid shard path of a card or manifest (``shards/<name>.h5``, relative, no ``..``),
    or None when it is one. Pure: looks at the text only."""
    if not isinstance(rel, str):
        return f"must be a string, got {type(rel).__name__}"
    if not rel or "\x00" in rel or "\\" in rel:
        return f"{rel!r} is not a relative POSIX path"
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("/"):
        return f"{rel!r} is an absolute path (a shard lies inside the dataset folder)"
    if ".." in pure.parts:
        return f"{rel!r} contains '..' (a shard lies inside the dataset folder)"
    if len(pure.parts) != 2 or pure.parts[0] != SHARD_DIR or not rel.endswith(SHARD_EXT) \
            or not _SHARD_NAME.fullmatch(pure.parts[1]):
        return f"{rel!r} is not of the form {SHARD_DIR}/<name>{SHARD_EXT}"
    return None


def inside(root: str | Path, rel: str, label: str | None = None, error: type[DatasetError] = DatasetError) -> Path:
    """``root / rel`` when it resolves (symbolic links included) inside ``root``; ``error`` naming ``label``
    (default ``rel``) otherwise. Does not require the file to exist."""
    base = Path(root).resolve()
    path = Path(root) / rel
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise error(f"{label or rel}: path cannot be resolved: {exc}") from exc
    if resolved != base and base not in resolved.parents:
        raise error(f"{label or rel}: resolves to {resolved}, outside the dataset folder {base} "
                    "(a symbolic link or a crafted path); refused")
    return path


def shard_path(root: str | Path, rel: str) -> Path:
    """The path of shard ``rel`` of the dataset at ``root``, checked: a valid shard name
    (:func:`shard_name_problem`) that resolves inside ``root``. :class:`ShardError` naming the shard otherwise.
    The file need not exist (callers report a missing shard themselves)."""
    problem = shard_name_problem(rel)
    if problem is not None:
        raise ShardError(f"shard {rel!r}: invalid path: {problem}")
    return inside(root, rel, label=f"shard {rel}", error=ShardError)


# ---- opening ----------------------------------------------------------------------------------------------
def open_shard(path: str | Path, label: str | None = None, root: str | Path | None = None) -> h5py.File:
    """Open a shard read-only after every check of the module docstring; :class:`ShardError` naming the shard
    (``label``, default the path) when it is missing, not a regular file, truncated, not HDF5, not a DeMMI-RF
    shard, of a newer format, or holds anything a build does not write (links, external or virtual storage,
    unknown filters...). With ``root``, ``path`` is the shard's path relative to that dataset folder and is
    checked by :func:`shard_path` first."""
    if root is not None:
        name = label or str(path)
        path = shard_path(root, str(path))
    else:
        path = Path(path)
        name = label or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ShardError(f"shard {name}: file is missing") from None
    except OSError as exc:
        raise ShardError(f"shard {name}: cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ShardError(f"shard {name}: not a regular file")
    try:
        h5 = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - OSError mostly; h5py raises others on damaged superblocks
        raise ShardError(f"shard {name}: cannot be opened as HDF5 (truncated or corrupted?): {exc}") from exc
    try:
        _check_header(h5, name)
        key = _identity(h5, path)
        if key is None or key not in _CHECKED:
            check_structure(h5, name)
            if key is not None:
                _CHECKED[key] = None
                while len(_CHECKED) > _CHECKED_MAX:
                    _CHECKED.popitem(last=False)
        else:
            _CHECKED.move_to_end(key)
    except BaseException:
        close_quietly(h5)
        raise
    return h5


def _identity(h5: h5py.File, path: Path) -> tuple[str, int, int, int, int, int] | None:
    """(resolved path, device, inode, size, mtime, ctime) of the file HDF5 actually opened (fstat of its descriptor),
    or None when that cannot be told (then the structure is always walked)."""
    try:
        fd = h5.id.get_vfd_handle()
        st = os.fstat(fd)
    except Exception:  # noqa: BLE001 - another driver, or no descriptor
        return None
    return (str(Path(path).resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _check_header(h5: h5py.File, name: str) -> None:
    """Root attributes ``format`` (the string ``demmi-rf-shard``) and ``format_version`` (an integer this
    toolkit reads)."""
    try:
        fmt = h5.attrs.get("format")
        version = h5.attrs.get("format_version", None)
    except Exception as exc:  # noqa: BLE001 - h5py raises many types on corrupted metadata
        raise ShardError(f"shard {name}: unreadable header attributes: {exc}") from exc
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if not isinstance(fmt, str):
        raise ShardError(f"shard {name}: not a DeMMI-RF shard (root attribute 'format' is "
                         f"{_describe_value(fmt)}, expected the string {SHARD_FORMAT!r})")
    if fmt != SHARD_FORMAT:
        raise ShardError(f"shard {name}: not a DeMMI-RF shard (format attribute {fmt[:80]!r})")
    if version is None:
        return  # shards of the first builds carry no version; they are version 1
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise ShardError(f"shard {name}: root attribute 'format_version' is {_describe_value(version)}, "
                         "expected an integer")
    if int(version) > SHARD_FORMAT_VERSION:
        raise ShardError(f"shard {name}: shard format version {int(version)} is newer than this toolkit reads "
                         f"({SHARD_FORMAT_VERSION}); upgrade demmi-rf")


def _describe_value(value: object) -> str:
    if value is None:
        return "missing"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    return f"a {type(value).__name__}"


def check_structure(h5: h5py.File, name: str) -> None:
    """Walk every link and object of an open shard; :class:`ShardError` naming the shard, the object and the
    problem at the first link that is not a hard link or object a build does not write (module docstring)."""
    links: list[tuple[str, int]] = []

    def on_link(link: bytes, info: h5l.LinkInfo) -> None:
        links.append((link.decode("utf-8", "replace"), info.type))

    try:
        h5.id.links.visit(on_link, info=True)
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"shard {name}: its groups cannot be listed (corrupted?): {exc}") from exc
    for link, kind in links:
        if kind != h5l.TYPE_HARD:
            what = _LINK_NAMES.get(kind, f"a user-defined link (type {kind})")
            target = _link_target(h5, link)
            why = "it would read another file" if kind != h5l.TYPE_SOFT else "it aliases another object"
            raise ShardError(f"shard {name}: /{link} is {what}{target}; a shard holds only its own groups and "
                             f"datasets, each under one name (refused: {why})")
    objects: list[tuple[str, int]] = []  # each object once, however many hard links name it

    def on_object(obj: bytes, info: h5o.ObjInfo) -> None:
        objects.append((obj.decode("utf-8", "replace"), info.type))

    try:
        h5o.visit(h5.id, on_object, info=True)
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"shard {name}: its objects cannot be listed (corrupted?): {exc}") from exc
    for obj, kind in objects:
        if kind == h5o.TYPE_GROUP:
            continue
        if kind != h5o.TYPE_DATASET:
            what = "a committed datatype" if kind == h5o.TYPE_NAMED_DATATYPE else f"an object of type {kind}"
            raise ShardError(f"shard {name}: /{obj} is {what}; a shard holds only groups and datasets")
        try:
            oid = h5d.open(h5.id, obj.encode("utf-8"))
        except Exception as exc:  # noqa: BLE001
            raise ShardError(f"shard {name}: /{obj} cannot be opened (corrupted?): {exc}") from exc
        _check_dataset(oid, name, obj)


def _link_target(h5: h5py.File, link: str) -> str:
    try:
        obj = h5.get(link, getlink=True)
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(obj, h5py.ExternalLink):
        return f" to {obj.filename}:{obj.path}"
    if isinstance(obj, h5py.SoftLink):
        return f" to {obj.path}"
    return ""


def _check_dataset(oid: h5d.DatasetID, name: str, link: str) -> None:
    where = f"shard {name}: dataset /{link}"
    try:
        plist = oid.get_create_plist()
        layout = plist.get_layout()
        external = plist.get_external_count()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        type_class = oid.get_type().get_class()
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"{where}: storage properties unreadable (corrupted?): {exc}") from exc
    if external:
        raise ShardError(f"{where} has external raw storage ({external} file(s) outside the shard); refused")
    if layout not in _LAYOUTS:
        what = _LAYOUT_NAMES.get(layout, f"layout {layout}")
        extra = " (it maps data of other files)" if layout == h5d.VIRTUAL else ""
        raise ShardError(f"{where} is a {what} dataset{extra}; a shard holds contiguous or chunked datasets only")
    bad = [f for f in filters if f not in ALLOWED_FILTERS]
    if bad:
        raise ShardError(f"{where} uses HDF5 filter(s) {', '.join(map(str, bad))}; a shard may use only "
                         f"{', '.join(ALLOWED_FILTERS.values())} (refused: another filter loads a plugin)")
    if type_class != h5t.INTEGER:
        raise ShardError(f"{where} has a non-integer element type (class {type_class}); refused")
    try:
        shape = tuple(int(n) for n in oid.shape)
        nbytes = math.prod(shape) * oid.get_type().get_size()
        if layout == h5d.CHUNKED:
            chunk = plist.get_chunk()
            expected = math.prod(-(-n // c) for n, c in zip(shape, chunk))
            stored = oid.get_num_chunks() if nbytes else 0
        else:
            expected, stored = nbytes, oid.get_storage_size()
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"{where}: storage unreadable (corrupted?): {exc}") from exc
    if stored != expected:
        unit = "chunks" if layout == h5d.CHUNKED else "bytes"
        raise ShardError(f"{where} declares shape {shape} but stores {stored} of its {expected} {unit}; a build "
                         "writes every byte (refused: reading would invent data, or expand a small file)")


# ---- reading ----------------------------------------------------------------------------------------------
def array_shape(height: int, width: int, vis_channels: int, name: str) -> tuple[int, ...]:
    """The shape the manifest implies for array ``name`` (``vis``/``vis_clean``: HxWx3, or HxW when
    ``vis_channels`` is 1; ``ir``/``ir_clean``: HxW)."""
    if name.startswith("vis") and int(vis_channels) != 1:
        return (int(height), int(width), int(vis_channels))
    return (int(height), int(width))


def check_array(dset: h5py.Dataset, where: str, shape: tuple[int, ...] | None = None) -> None:
    """:class:`ShardError` (``where`` names shard, sample, array) unless ``dset`` is uint8 with ``shape``."""
    if dset.dtype != np.uint8:
        raise ShardError(f"{where}: stored as {dset.dtype}, not uint8")
    if shape is not None and tuple(dset.shape) != tuple(shape):
        raise ShardError(f"{where}: stored shape {tuple(dset.shape)} differs from the manifest's {tuple(shape)} "
                         "(height, width[, channels])")


def read_array(h5: h5py.File, path: str, label: str, window: tuple[int, int, int, int] | None = None,
               sample: str | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a uint8 array (or a ``(y0, x0, h, w)`` window of it) from a shard opened by :func:`open_shard`;
    :class:`ShardError` naming the shard (and sample) when it is missing, not uint8, not of ``shape`` (when
    given) or its chunks do not decode."""
    where = f"shard {label}" + (f", sample {sample}" if sample else "") + f", array {path}"
    try:
        dset = h5[path]
    except KeyError as exc:
        raise ShardError(f"{where}: not found in the shard") from exc
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"{where}: unreadable: {exc}") from exc
    if not isinstance(dset, h5py.Dataset):
        raise ShardError(f"{where}: a group, not an array")
    check_array(dset, where, shape)
    try:
        if window is None:
            return np.asarray(dset[()])
        y0, x0, h, w = window
        return np.asarray(dset[y0 : y0 + h, x0 : x0 + w])
    except Exception as exc:  # noqa: BLE001
        raise ShardError(f"{where}: data does not decode (corrupted?): {exc}") from exc


def close_quietly(h5: h5py.File) -> None:
    try:
        h5.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken handle must not raise
        pass


__all__ = ["ALLOWED_FILTERS", "array_shape", "check_array", "check_structure", "inside", "open_shard",
           "read_array", "shard_name_problem", "shard_path"]
