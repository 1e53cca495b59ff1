"""The store's one seam for reading pixel arrays: :class:`ArrayStore` and the table :data:`ADAPTER_FOR_FORMAT`.

Every array a reader returns (``Dataset.read``, hence ``DeMMIDataset``, the baselines, evaluation, export) and every
array ``demmi verify`` checks comes through an :class:`ArrayStore` chosen by the dataset card's array format
(``storage.array_format``; absent means ``"hdf5"``, so every dataset written before this seam existed reads as
before). The shape follows TFDS's ``FileAdapter`` + ``ADAPTER_FOR_FORMAT``: a small abstract reader with a format
name and a file suffix, and a table from format name to implementation; a future backend (zarr, object storage)
is one more class and one more table entry.

* ``"hdf5"`` (:class:`HDF5ArrayStore`): *materialized*. Every array is stored in the shards. Shards are opened
  lazily per process through the store's gate (:func:`demmi_rf.store.safe.open_shard`: a path inside the dataset
  folder, no links, no external or virtual storage, no unknown filters); open files and ``h5py.Dataset`` handles
  are kept in bounded LRUs; every handle is checked against the manifest (uint8, height, width, channels) before
  it is read or cached. After a fork, the parent's handles are abandoned, never used.
* ``"virtual"`` (:class:`VirtualArrayStore`): the shards hold the clean pairs, the drawn parameters and the
  seed material, but not the degraded arrays. A degraded array is synthesised on read by the same
  :func:`demmi_rf.degrade` from the stored clean arrays, the recipe's seed and parameter ranges, the pair id and
  the setting (the seeded path of :mod:`demmi_rf.rng`), and **checked on every synthesis**: the drawn parameters
  must equal the manifest's ``params`` and each synthesised array's sha256 must equal the manifest's ``sha256_vis``
  / ``sha256_ir``, else :class:`~demmi_rf.errors.ShardError` (which says that the toolkit's synthesis differs from
  the build's). Hashing costs well under a tenth of the synthesis it checks, so the check is never skipped: no
  array leaves a virtual store unchecked. Whole degraded images (both modalities of a sample) are kept in a
  per-process LRU bounded by bytes (``cache_bytes``), so the crops of one image and the VIS and IR of one sample
  synthesise it once.

A virtual dataset therefore has the same manifest, the same array sha256s and the same content hash as the
materialized build of the same recipe, and returns the same bytes; it can only be read by a toolkit whose
synthesis gives the build's bytes (the release notes name every version that changed them), which the check
enforces.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from ..errors import DatasetError, ShardError
from .checksums import array_sha256
from .manifest import jsonable
from .safe import array_shape, check_array, close_quietly, open_shard

Window = tuple[int, int, int, int]
#: array names of a sample, in the manifest's order
ARRAY_NAMES = ("vis", "ir", "vis_clean", "ir_clean")
#: the card field (inside ``storage``) naming the array format; absent means :data:`DEFAULT_FORMAT`
FORMAT_KEY = "array_format"
DEFAULT_FORMAT = "hdf5"
#: default byte bound of a virtual store's per-process cache of synthesised images
DEFAULT_CACHE_BYTES = 256 << 20


@dataclass(frozen=True)
class SampleRef:
    """Where a sample's arrays are and what they must be: one manifest row, typed (no pixels)."""

    sample_id: str
    shard: str
    height: int
    width: int
    vis_channels: int
    #: HDF5 path of each array (a modality the setting leaves unchanged points to the clean array)
    paths: Mapping[str, str]
    #: the manifest's sha256 of each array
    sha256: Mapping[str, str]
    setting: str = ""
    pair_id: str = ""
    seed: int = 0
    #: the manifest's ``params`` JSON (every drawn parameter)
    params: str = "{}"
    changes_vis: bool = False
    changes_ir: bool = False

    def shape(self, name: str) -> tuple[int, ...]:
        return array_shape(self.height, self.width, self.vis_channels, name)

    def degraded(self, name: str) -> bool:
        """Whether array ``name`` is a degraded array (not a clean one, not a modality the setting leaves clean)."""
        return (name == "vis" and self.changes_vis) or (name == "ir" and self.changes_ir)


def refs_from_manifest(manifest: Any) -> dict[str, SampleRef]:
    """A :class:`SampleRef` per manifest row, keyed by sample id (column-wise: a pandas row per read is slow)."""
    cols = {c: manifest[c].tolist() for c in (
        "sample_id", "shard", "height", "width", "vis_channels", "setting", "pair_id", "seed", "params",
        "changes_vis", "changes_ir", *(f"{a}_path" for a in ARRAY_NAMES), *(f"sha256_{a}" for a in ARRAY_NAMES))}
    out = {}
    for i, sid in enumerate(cols["sample_id"]):
        out[sid] = SampleRef(
            sample_id=sid, shard=cols["shard"][i], height=int(cols["height"][i]), width=int(cols["width"][i]),
            vis_channels=int(cols["vis_channels"][i]),
            paths={a: cols[f"{a}_path"][i] for a in ARRAY_NAMES},
            sha256={a: cols[f"sha256_{a}"][i] for a in ARRAY_NAMES},
            setting=cols["setting"][i], pair_id=cols["pair_id"][i], seed=int(cols["seed"][i]),
            params=cols["params"][i], changes_vis=bool(cols["changes_vis"][i]),
            changes_ir=bool(cols["changes_ir"][i]))
    return out


def where(ref: SampleRef, name: str) -> str:
    """How a failed read is located in messages: ``shard <file>, sample <id>, array <path>``."""
    return f"shard {ref.shard}, sample {ref.sample_id}, array {ref.paths[name]}"


class ArrayStore(ABC):
    """Reads the pixel arrays of one dataset (abstract). Picklable: no open handle survives a pickle."""

    #: the format name recorded in the card (``storage.array_format``)
    format: ClassVar[str]
    #: the suffix of the files that hold the arrays
    suffix: ClassVar[str] = ".h5"
    #: whether every array is stored (False: some are synthesised on read)
    materialized: ClassVar[bool] = True

    @abstractmethod
    def read(self, ref: SampleRef, name: str, window: Window | None = None) -> np.ndarray:
        """The uint8 array ``name`` of a sample (or its ``(y0, x0, h, w)`` window; the caller checked it):
        a new array the caller may modify. :class:`~demmi_rf.errors.ShardError` naming the shard, sample and
        array when it cannot be produced."""

    def read_many(self, ref: SampleRef, names: Iterable[str], window: Window | None = None) -> dict[str, np.ndarray]:
        return {name: self.read(ref, name, window) for name in names}

    @abstractmethod
    def close(self) -> None:
        """Release what this process holds (files, handles, caches)."""


class HDF5ArrayStore(ArrayStore):
    """Materialized arrays in HDF5 shards (module docstring). ``max_open_shards`` files and ``max_open_arrays``
    array handles (0: none kept) stay open per process."""

    format = "hdf5"

    def __init__(self, root: str | Path, card: Mapping[str, Any] | None = None, *, max_open_shards: int = 64,
                 max_open_arrays: int = 128, **_: Any):
        self.root = Path(root)
        self.max_open_shards = max(1, int(max_open_shards))
        self.max_open_arrays = max(0, int(max_open_arrays))
        self._files: OrderedDict[str, h5py.File] = OrderedDict()
        self._arrays: OrderedDict[tuple[str, str], h5py.Dataset] = OrderedDict()
        self._pid = os.getpid()

    def _check_pid(self) -> None:
        """Forked: never touch the parent's HDF5 handles (files or arrays); this process opens its own."""
        if os.getpid() != self._pid:
            self._arrays = OrderedDict()
            self._files = OrderedDict()
            self._pid = os.getpid()

    def shard(self, rel: str) -> h5py.File:
        """The open handle of a shard in this process (least recently used handles beyond ``max_open_shards``
        are closed, so a dataset of thousands of shards never exhausts file handles)."""
        self._check_pid()
        h5 = self._files.get(rel)
        if h5 is None:
            h5 = open_shard(rel, root=self.root)
            self._files[rel] = h5
            while len(self._files) > self.max_open_shards:
                old_rel, old = self._files.popitem(last=False)
                self._drop_arrays(old_rel)  # before closing: no handle of a closed file stays cached
                close_quietly(old)
        else:
            self._files.move_to_end(rel)
        return h5

    def _drop_arrays(self, rel: str) -> None:
        for key in [k for k in self._arrays if k[0] == rel]:
            del self._arrays[key]

    def _array(self, rel: str, path: str, label: str, shape: tuple[int, ...]) -> h5py.Dataset:
        """The open ``h5py.Dataset`` at ``path`` in shard ``rel`` (LRU of ``max_open_arrays`` handles);
        :class:`ShardError` when it is absent, unreadable, not uint8 or not of ``shape``."""
        key = (rel, path)
        dset = self._arrays.get(key)
        if dset is not None:
            if dset.id.valid:  # its file is open: evicting or closing a file drops its handles first
                if dset.shape != shape:  # two manifest rows give one array two sizes
                    check_array(dset, label, shape)
                self._arrays.move_to_end(key)
                self._files.move_to_end(rel)
                return dset
            del self._arrays[key]  # pragma: no cover - defensive: the file was closed behind our back
        h5 = self.shard(rel)
        try:
            dset = h5[path]
        except KeyError as exc:
            raise ShardError(f"{label}: not found in the shard") from exc
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on corrupted metadata
            raise ShardError(f"{label}: unreadable: {exc}") from exc
        if not isinstance(dset, h5py.Dataset):
            raise ShardError(f"{label}: a group, not an array")
        check_array(dset, label, shape)
        if self.max_open_arrays:
            self._arrays[key] = dset
            while len(self._arrays) > self.max_open_arrays:
                self._arrays.popitem(last=False)
        return dset

    def read(self, ref: SampleRef, name: str, window: Window | None = None) -> np.ndarray:
        self._check_pid()
        rel, path, label = ref.shard, ref.paths[name], where(ref, name)
        dset = self._array(rel, path, label, ref.shape(name))
        try:
            if window is None:
                return np.asarray(dset[()])
            y0, x0, h, w = window
            return np.asarray(dset[y0 : y0 + h, x0 : x0 + w])
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on damaged chunks
            self._arrays.pop((rel, path), None)
            raise ShardError(f"{label}: data does not decode (corrupted?): {exc}") from exc

    def close(self) -> None:
        self._arrays = OrderedDict()  # dropped before their files close
        if os.getpid() == self._pid:
            for h5 in self._files.values():
                close_quietly(h5)
        self._files = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        state["_arrays"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


class VirtualArrayStore(ArrayStore):
    """Clean arrays from the HDF5 shards; degraded arrays synthesised on read and checked (module docstring).

    ``card`` supplies the recipe (its ``degradations`` ranges); the seed, pair id, setting and expected
    parameters and sha256s come from each sample's :class:`SampleRef`. ``cache_bytes`` bounds the per-process LRU
    of synthesised images (0: no cache)."""

    format = "virtual"
    materialized = False

    def __init__(self, root: str | Path, card: Mapping[str, Any] | None = None, *, max_open_shards: int = 64,
                 max_open_arrays: int = 128, cache_bytes: int = DEFAULT_CACHE_BYTES, **_: Any):
        self.root = Path(root)
        recipe = (card or {}).get("recipe")
        ranges = recipe.get("degradations") if isinstance(recipe, Mapping) else None
        if not isinstance(ranges, Mapping):
            raise DatasetError(f"{self.root}: a virtual dataset's card must hold its recipe's degradations ranges")
        self.ranges = _thaw(ranges)
        self.clean = HDF5ArrayStore(root, card, max_open_shards=max_open_shards, max_open_arrays=max_open_arrays)
        self.cache_bytes = max(0, int(cache_bytes))
        self._cache: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._cached = 0
        #: synthesis count in this process (measured by benchmarks/bench_virtual.py and the tests)
        self.syntheses = 0

    def read(self, ref: SampleRef, name: str, window: Window | None = None) -> np.ndarray:
        if not ref.degraded(name):
            return self.clean.read(ref, name, window)
        return _window_copy(self.synthesised(ref)[name], window)

    def read_many(self, ref: SampleRef, names: Iterable[str], window: Window | None = None) -> dict[str, np.ndarray]:
        """Several arrays of a sample with at most one synthesis (VIS and IR come from one, even uncached)."""
        names = list(names)
        images = self.synthesised(ref) if any(map(ref.degraded, names)) else {}
        return {n: _window_copy(images[n], window) if ref.degraded(n) else self.clean.read(ref, n, window)
                for n in names}

    def synthesised(self, ref: SampleRef) -> dict[str, np.ndarray]:
        """The degraded arrays of a sample (read-only, checked), from the cache or synthesised now."""
        hit = self._cache.get(ref.sample_id)
        if hit is not None:
            self._cache.move_to_end(ref.sample_id)
            return hit
        images = self.synthesise(ref)
        problem = self.check(ref, images)
        if problem:
            raise ShardError(problem)
        for image in images.values():
            image.setflags(write=False)
        size = sum(a.nbytes for a in images.values())
        if size <= self.cache_bytes:
            self._cache[ref.sample_id] = images
            self._cached += size
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= sum(a.nbytes for a in old.values())
        return images

    def synthesise(self, ref: SampleRef, stream_extra: tuple[object, ...] = ()) -> dict[str, Any]:
        """Run :func:`demmi_rf.degrade` on the stored clean arrays of a sample: ``{"vis": ..., "ir": ...}`` for
        the degraded modalities (unchecked) and ``"params"`` (the drawn parameters, plain JSON values).
        ``stream_extra`` selects another stream than the stored benchmark's (:func:`demmi_rf.rng.resample_parts`).
        """
        from ..degradations.compose import degrade  # noqa: PLC0415 - OpenCV: imported on the first synthesis

        vis = self.clean.read(ref, "vis_clean")
        ir = self.clean.read(ref, "ir_clean")
        try:
            out = degrade(vis, ir, ref.setting, ref.seed, pair_id=ref.pair_id, ranges=self.ranges,
                          stream_extra=stream_extra)
        except Exception as exc:  # noqa: BLE001 - a crafted card or manifest can make degrade() refuse anything
            raise ShardError(f"shard {ref.shard}, sample {ref.sample_id}: cannot be synthesised: {exc}") from exc
        self.syntheses += 1
        images: dict[str, Any] = {m: getattr(out, m) for m in ("vis", "ir") if ref.degraded(m)}
        images["params"] = jsonable(dict(out.params))
        return images

    @staticmethod
    def check(ref: SampleRef, images: dict[str, Any]) -> str | None:
        """What differs between a synthesis (:meth:`synthesise`, whose ``params`` entry it removes) and the
        manifest: the drawn parameters, then each degraded array's sha256 (None when both match)."""
        params = images.pop("params")
        try:
            expected = json.loads(ref.params)
        except ValueError:
            expected = None
        head = f"shard {ref.shard}, sample {ref.sample_id}"
        advice = ("this toolkit's synthesis differs from the build's (another version? see CHANGELOG.md) or the "
                  "dataset was edited; run 'demmi verify'")
        if params != expected:
            return f"{head}: re-synthesised drawn parameters differ from the manifest's: {advice}"
        for name, image in images.items():
            if array_sha256(image) != ref.sha256[name]:
                return f"{where(ref, name)}: re-synthesised array differs from the manifest's sha256: {advice}"
        return None

    def close(self) -> None:
        self.clean.close()
        self._cache = OrderedDict()
        self._cached = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_cached"] = 0
        return state


#: format name (the card's ``storage.array_format``) -> implementation
ADAPTER_FOR_FORMAT: dict[str, type[ArrayStore]] = {
    HDF5ArrayStore.format: HDF5ArrayStore,
    VirtualArrayStore.format: VirtualArrayStore,
}


def array_format(card: Mapping[str, Any]) -> str:
    """The array format a card records (``storage.array_format``; ``"hdf5"`` when absent)."""
    storage = card.get("storage")
    value = storage.get(FORMAT_KEY, DEFAULT_FORMAT) if isinstance(storage, Mapping) else DEFAULT_FORMAT
    return value if isinstance(value, str) else repr(value)


def build_storage(virtual: bool = False) -> dict[str, Any]:
    """The storage settings a build records in its card (and in each shard's plan key): the materialized defaults
    (:data:`demmi_rf.store.layout.STORAGE`, unchanged, so v1 builds keep their bytes and keys) or, for
    ``virtual``, the same plus ``array_format = "virtual"`` (the clean arrays are stored with those settings)."""
    from .layout import STORAGE  # noqa: PLC0415

    return {**STORAGE, FORMAT_KEY: VirtualArrayStore.format} if virtual else dict(STORAGE)


def is_virtual(storage: Mapping[str, Any] | None) -> bool:
    """Whether storage settings (a card's or a shard task's) are those of a virtual build."""
    return isinstance(storage, Mapping) and storage.get(FORMAT_KEY) == VirtualArrayStore.format


def open_array_store(root: str | Path, card: Mapping[str, Any], **options: Any) -> ArrayStore:
    """The :class:`ArrayStore` of the card's array format; :class:`DatasetError` for a format this toolkit does
    not know (naming the ones it does)."""
    name = array_format(card)
    adapter = ADAPTER_FOR_FORMAT.get(name)
    if adapter is None:
        raise DatasetError(f"{Path(root) / 'dataset.json'}: storage.{FORMAT_KEY} {name!r} is not a known array "
                           f"format (known: {', '.join(sorted(ADAPTER_FOR_FORMAT))}); a newer toolkit may read it")
    return adapter(root, card, **options)


def _window_copy(image: np.ndarray, window: Window | None) -> np.ndarray:
    """A new array holding ``image`` or its ``(y0, x0, h, w)`` window (callers may modify it)."""
    if window is None:
        return image.copy()
    y0, x0, h, w = window
    return image[y0 : y0 + h, x0 : x0 + w].copy()


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value




__all__ = ["ADAPTER_FOR_FORMAT", "ArrayStore", "HDF5ArrayStore", "SampleRef", "VirtualArrayStore", "array_format",
           "build_storage", "is_virtual", "open_array_store", "refs_from_manifest"]
