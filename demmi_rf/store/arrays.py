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
  synthesise it once; the clean pair a synthesis decoded is kept in the same LRU, so the clean windows of an item
  and the other settings of its pair do not decode it again.
  **Shared between forked workers** (:meth:`VirtualArrayStore.share`, called by ``DeMMIDataset`` before a
  DataLoader forks its workers): the degraded images of the chosen samples get fixed slots in one region of
  anonymous shared memory (``mmap`` ``MAP_SHARED``, at most ``cache_bytes``) that forked processes inherit, so
  the workers synthesise each image once between them, and re-forked workers (a new epoch without
  ``persistent_workers``) find it there. A slot is written only with a synthesis that passed the check, and a
  process serves a slot only after hashing it against the manifest's sha256 once (a slot caught half-written
  is synthesised again), so nothing unchecked leaves the store through it either. ``share`` also runs every
  setting's atoms once on a small blank pair, so that imports and lazily built tables (the ziggurat's) are
  inherited by the workers instead of being built again in each one.

A virtual dataset therefore has the same manifest, the same array sha256s and the same content hash as the
materialized build of the same recipe, and returns the same bytes; it can only be read by a toolkit whose
synthesis gives the build's bytes (the release notes name every version that changed them), which the check
enforces.
"""

from __future__ import annotations

import json
import mmap
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
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
#: (setting, recipe ranges) already run once in this process by :meth:`VirtualArrayStore.warm_up`
_WARM: set[tuple[str, str]] = set()


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
    of synthesised images and the clean pairs they were synthesised from (0: no cache), and the shared region of
    :meth:`share`."""

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
        #: per-process LRU: sample id -> its checked degraded images; (shard, path, shape) -> a decoded clean array
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._cached = 0
        self._shared: SharedImages | None = None
        #: synthesis count in this process (measured by benchmarks/bench_virtual.py and the tests)
        self.syntheses = 0

    def read(self, ref: SampleRef, name: str, window: Window | None = None) -> np.ndarray:
        if not ref.degraded(name):
            return self._clean_read(ref, name, window)
        return _window_copy(self.synthesised(ref)[name], window)

    def read_many(self, ref: SampleRef, names: Iterable[str], window: Window | None = None) -> dict[str, np.ndarray]:
        """Several arrays of a sample with at most one synthesis (VIS and IR come from one, even uncached)."""
        names = list(names)
        images = self.synthesised(ref) if any(map(ref.degraded, names)) else {}
        return {n: _window_copy(images[n], window) if ref.degraded(n) else self._clean_read(ref, n, window)
                for n in names}

    def _clean_read(self, ref: SampleRef, name: str, window: Window | None) -> np.ndarray:
        """A clean array (or window): from the decoded copy a synthesis left in the cache, else read from the shard
        (window reads decode only the chunks they touch)."""
        key = (ref.shard, ref.paths[name], ref.shape(name))
        whole = self._cache.get(key)
        if whole is None:
            return self.clean.read(ref, name, window)
        self._cache.move_to_end(key)
        return _window_copy(whole, window)

    def _clean_whole(self, ref: SampleRef, name: str) -> np.ndarray:
        """A whole clean array for a synthesis (read-only; decoded once per process while it stays cached)."""
        key = (ref.shard, ref.paths[name], ref.shape(name))
        whole = self._cache.get(key)
        if whole is not None:
            self._cache.move_to_end(key)
            return whole
        whole = self.clean.read(ref, name)
        whole.setflags(write=False)
        self._remember(key, whole, whole.nbytes)
        return whole

    def _remember(self, key: Any, value: Any, size: int) -> None:
        if size > self.cache_bytes:
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached -= _nbytes(old)
        self._cache[key] = value
        self._cached += size
        while self._cached > self.cache_bytes:
            _, gone = self._cache.popitem(last=False)
            self._cached -= _nbytes(gone)

    def share(self, refs: Sequence[SampleRef]) -> int:
        """Prepare this process's store for forked readers (DataLoader workers), before they fork: give the
        degraded images of ``refs`` (the first ones, in this order, that fit in ``cache_bytes``) slots in shared
        memory that the forked processes inherit (:class:`SharedImages`), and build what every synthesis needs
        once (imports, lazily computed tables) by running each of their settings on a small blank pair. Returns
        the number of samples given a slot (0 without a cache, or where ``fork`` or shared ``mmap`` is not
        available: then each process keeps its own cache). Calling it again replaces the region."""
        self.warm_up(sorted({ref.setting for ref in refs if ref.changes_vis or ref.changes_ir}))
        self._shared = None
        if not self.cache_bytes or not hasattr(os, "fork") or not hasattr(mmap, "MAP_SHARED"):
            return 0
        shared = SharedImages(refs, self.cache_bytes)
        self._shared = shared if len(shared) else None
        return len(shared)

    def warm_up(self, settings: Iterable[str]) -> None:
        """Run :func:`demmi_rf.degrade` under each setting on a blank 32 x 32 pair (results discarded, errors
        ignored: a real read reports them), so imports and the atoms' lazily built tables exist in this process
        and are inherited by the processes it forks."""
        from ..degradations.compose import degrade  # noqa: PLC0415 - OpenCV

        vis, ir = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)
        ranges = json.dumps(self.ranges, sort_keys=True, default=repr)
        for setting in settings:
            if (setting, ranges) in _WARM:  # what it builds lives as long as the process
                continue
            try:
                degrade(vis, ir, setting, 0, pair_id="warm-up", ranges=self.ranges)
            except Exception:  # noqa: BLE001, S112 - a warm-up only; the sample's own read reports the problem
                continue
            _WARM.add((setting, ranges))

    def synthesised(self, ref: SampleRef) -> dict[str, np.ndarray]:
        """The degraded arrays of a sample (read-only, checked), from a cache or synthesised now."""
        shared = self._shared
        if shared is not None and ref.sample_id in shared:
            images = shared.get(ref)
            if images is None:
                images = self._checked(ref)
                shared.put(ref, images)
            return images
        hit = self._cache.get(ref.sample_id)
        if hit is not None:
            self._cache.move_to_end(ref.sample_id)
            return hit
        images = self._checked(ref)
        self._remember(ref.sample_id, images, _nbytes(images))
        return images

    def _checked(self, ref: SampleRef) -> dict[str, np.ndarray]:
        """A synthesis that passed :meth:`check`, its arrays read-only; :class:`ShardError` otherwise."""
        images = self.synthesise(ref)
        problem = self.check(ref, images)
        if problem:
            raise ShardError(problem)
        for image in images.values():
            image.setflags(write=False)
        return images

    def synthesise(self, ref: SampleRef, stream_extra: tuple[object, ...] = ()) -> dict[str, Any]:
        """Run :func:`demmi_rf.degrade` on the stored clean arrays of a sample: ``{"vis": ..., "ir": ...}`` for
        the degraded modalities (unchecked) and ``"params"`` (the drawn parameters, plain JSON values).
        ``stream_extra`` selects another stream than the stored benchmark's (:func:`demmi_rf.rng.resample_parts`).
        """
        from ..degradations.compose import degrade  # noqa: PLC0415 - OpenCV: imported on the first synthesis

        vis = self._clean_whole(ref, "vis_clean")
        ir = self._clean_whole(ref, "ir_clean")
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
        self._shared = None  # unmapped once no array of it is referenced any more

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_cached"] = 0
        state["_shared"] = None  # anonymous shared memory reaches forked processes only
        return state


class SharedImages:
    """Checked degraded images in one region of anonymous shared memory, one fixed slot per chosen sample.

    ``mmap.mmap(-1, n)`` maps ``n`` bytes ``MAP_SHARED | MAP_ANONYMOUS``: processes forked after it was made
    (DataLoader workers) see the same pages, and the memory is returned to the OS when the last of them unmaps
    it; nothing is left behind if a process is killed. Layout: one state byte per slot (0 empty, 1 written),
    then the slots, each the degraded arrays of one sample (C-order uint8: VIS then IR, as the setting degrades
    them) at a 64-byte aligned offset; the slots of the first ``refs`` whose arrays fit in ``budget`` bytes.

    Safety without locks: a slot is only written with arrays that passed the manifest check, and every synthesis
    of a sample gives the same bytes, so two processes writing one slot write the same bytes. A process serves a
    slot only after hashing each array against the manifest's sha256 once (:meth:`get`); a slot read while still
    being written fails that check and is synthesised again. After the check the bytes can no longer change.
    """

    def __init__(self, refs: Sequence[SampleRef], budget: int):
        self._slots: dict[str, tuple[int, int, tuple[tuple[str, tuple[int, ...]], ...]]] = {}
        chosen: list[tuple[str, tuple[tuple[str, tuple[int, ...]], ...], int]] = []
        total = 0
        for ref in refs:
            if ref.sample_id in self._slots or not (ref.changes_vis or ref.changes_ir):
                continue
            layout = tuple((m, ref.shape(m)) for m in ("vis", "ir") if ref.degraded(m))
            size = _align(sum(int(np.prod(shape)) for _, shape in layout))
            if total + size + _align(len(chosen) + 1) > budget:
                continue
            chosen.append((ref.sample_id, layout, size))
            total += size
        head = _align(len(chosen))
        self._map = mmap.mmap(-1, max(1, head + total)) if chosen else None
        offset = head
        for index, (sid, layout, size) in enumerate(chosen):
            self._slots[sid] = (index, offset, layout)
            offset += size
        self._state = np.frombuffer(self._map, np.uint8, len(chosen)) if self._map is not None else None
        self._verified: set[int] = set()  # slots this process (or its parent, before the fork) hashed

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._slots

    @property
    def nbytes(self) -> int:
        """Bytes mapped (pages are only backed by memory once written)."""
        return len(self._map) if self._map is not None else 0

    def _views(self, ref: SampleRef) -> dict[str, np.ndarray] | None:
        index, offset, layout = self._slots[ref.sample_id]
        if layout != tuple((m, ref.shape(m)) for m in ("vis", "ir") if ref.degraded(m)):
            return None  # not the sample the slot was made for (another manifest row with this id)
        views = {}
        for name, shape in layout:
            n = int(np.prod(shape))
            views[name] = np.frombuffer(self._map, np.uint8, n, offset).reshape(shape)
            offset += n
        return views

    def get(self, ref: SampleRef) -> dict[str, np.ndarray] | None:
        """The sample's checked arrays (read-only views into the region), or None when its slot is empty, holds
        arrays that fail the check (being written right now), or does not fit ``ref``."""
        index = self._slots[ref.sample_id][0]
        if not self._state[index]:
            return None
        views = self._views(ref)
        if views is None:
            return None
        if index not in self._verified:
            if any(array_sha256(v) != ref.sha256[name] for name, v in views.items()):
                return None
            self._verified.add(index)
        for view in views.values():
            view.setflags(write=False)
        return views

    def put(self, ref: SampleRef, images: Mapping[str, np.ndarray]) -> None:
        """Store a checked synthesis of the sample in its slot (a no-op when this process checked the slot's
        arrays already; a slot that failed the check is overwritten: every writer writes the same bytes)."""
        index = self._slots[ref.sample_id][0]
        if index in self._verified:
            return
        views = self._views(ref)
        if views is None:
            return
        for name, view in views.items():
            view[...] = images[name]
        self._verified.add(index)  # checked before it was written
        self._state[index] = 1


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


def _nbytes(value: Any) -> int:
    """Bytes of a cache entry: an array or a dict of arrays."""
    return value.nbytes if isinstance(value, np.ndarray) else sum(a.nbytes for a in value.values())


def _align(n: int, to: int = 64) -> int:
    return -(-n // to) * to


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value




__all__ = ["ADAPTER_FOR_FORMAT", "ArrayStore", "HDF5ArrayStore", "SampleRef", "SharedImages", "VirtualArrayStore",
           "array_format", "build_storage", "is_virtual", "open_array_store", "refs_from_manifest"]
