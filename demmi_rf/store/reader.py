"""Reading a built dataset: :func:`open_dataset` -> :class:`Dataset`.

HDF5 files are opened lazily, per process: the object stores the root path and opens ``h5py.File`` handles
on first use in the current process id, so it pickles (handles are dropped) and works in DataLoader worker
processes, forked or spawned. After a fork, handles inherited from the parent are abandoned, never used.

Open ``h5py.Dataset`` handles are cached too (bounded LRU keyed by ``(shard, array path)``): re-opening an array
costs a nested-group traversal per call, and keeping the handle keeps HDF5's per-dataset chunk cache, so the
clean arrays a pair shares across its settings are not decompressed again for every setting. A file closed by
the shard LRU drops its array handles first, so no handle of a closed file is ever used.

Every array is read through the dataset's :class:`~demmi_rf.store.arrays.ArrayStore` (the seam chosen by the
card's ``storage.array_format``: ``hdf5`` materialized, ``virtual`` synthesised on read and checked against the
manifest's sha256), which holds these handles. Every shard is opened through
:func:`demmi_rf.store.safe.open_shard` (the store's one gate: a path inside the dataset folder, no links, no
external or virtual storage, no unknown filters) and every array handle is checked against the manifest
(uint8, the recorded height, width and channels) before it is read or cached.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..errors import DatasetError, ShardError, did_you_mean
from ..settings import parse_setting
from .arrays import (
    ARRAY_NAMES,
    DEFAULT_CACHE_BYTES,
    ArrayStore,
    HDF5ArrayStore,
    SampleRef,
    VirtualArrayStore,
    open_array_store,
    refs_from_manifest,
)
from .card import Card, card_hash, load_card, recipe_hash_problem
from .checksums import file_sha256
from .identity import card_content_hash
from .layout import ARRAYS, CARD, MANIFEST
from .manifest import read_manifest
from .safe import inside

_ARRAY_NAMES = ARRAY_NAMES


def _canonical_setting(name: str) -> str:
    """The canonical name by the toolkit's one setting parser; an unparsable name is kept (it then matches no
    manifest row and is reported as unknown by the caller)."""
    try:
        return parse_setting(name).name
    except ValueError:
        return name


class Dataset:
    """A built DeMMI-RF dataset (see ``docs/dataset-layout.md``).

    Attributes: ``root`` (Path), ``card`` (dict), ``record`` (the validated, typed card:
    :class:`~demmi_rf.store.card.Card`), ``card_hash`` (sha256 of ``dataset.json``'s bytes),
    ``content_hash`` (:mod:`.identity`: recipe + samples + array sha256s, independent of the HDF5 bytes),
    ``manifest`` (DataFrame, one row per sample, default RangeIndex).
    """

    def __init__(self, root: str | Path, max_open_shards: int = 64, max_open_arrays: int = 128,
                 cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.root = Path(root).absolute()
        self.max_open_shards = max(1, int(max_open_shards))
        self.max_open_arrays = max(0, int(max_open_arrays))
        self.record: Card = load_card(self.root)
        self.card = json.loads(self.record.raw.decode("utf-8"))
        self.card_hash = card_hash(self.record.raw)
        problem = recipe_hash_problem(self.record)
        if problem:
            raise DatasetError(problem + "; run 'demmi verify'")
        manifest_path = inside(self.root, MANIFEST)
        self.manifest = read_manifest(manifest_path)
        if file_sha256(manifest_path) != self.record.manifest.sha256:
            raise DatasetError(f"{manifest_path}: does not match the sha256 recorded in the card "
                               "(edited or corrupted); run 'demmi verify'")
        known = {s.file for s in self.record.shards}
        unknown = sorted(set(self.manifest["shard"]) - known)
        if unknown:
            raise DatasetError(f"{manifest_path}: rows point to shard(s) not listed in the card: "
                               + ", ".join(unknown[:5]))
        self.content_hash = card_content_hash(self.manifest, self.card)
        recorded = self.card.get("content_hash")
        if recorded is not None and recorded != self.content_hash:
            raise DatasetError(f"{self.root / CARD}: content_hash {recorded} does not match the manifest's content "
                               f"hash {self.content_hash} (edited card or manifest); run 'demmi verify'")
        self._row_of = {sid: i for i, sid in enumerate(self.manifest["sample_id"])}
        self._store: ArrayStore = open_array_store(self.root, self.card, max_open_shards=self.max_open_shards,
                                                   max_open_arrays=self.max_open_arrays, cache_bytes=cache_bytes)
        self._index: dict[str, SampleRef] | None = None  # built on the first read (not pickled)
        self._fresh: VirtualArrayStore | None = None  # fresh draws of a materialized dataset (read_fresh)

    # ---- selection ------------------------------------------------------------------------------------
    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted(self.manifest["split"].unique()))

    @property
    def settings(self) -> tuple[str, ...]:
        """Settings present, in recipe order."""
        present = set(self.manifest["setting"])
        return tuple(s for s in self.record.settings if s in present)

    def __len__(self) -> int:
        return len(self.manifest)

    def samples(self, split: str | None = None, settings: str | Iterable[str] | None = None) -> pd.DataFrame:
        """Rows of ``split`` (``train``/``test``, None = all) and ``settings`` (names or one name, None = all),
        in manifest order, with a fresh RangeIndex. Unknown names raise :class:`DatasetError` listing the
        available ones."""
        frame = self.manifest
        mask = np.ones(len(frame), dtype=bool)
        if split is not None:
            if split not in self.splits:
                raise DatasetError(f"{self.root}: no split {split!r}{did_you_mean(split, self.splits)} "
                                   f"(available: {', '.join(self.splits)})")
            mask &= (frame["split"] == split).to_numpy()
        if settings is not None:
            names = [settings] if isinstance(settings, str) else list(settings)
            wanted = [_canonical_setting(s) for s in names]
            missing = [n for n, w in zip(names, wanted) if w not in self.settings]
            if missing:
                missing = [m + did_you_mean(m, self.settings) for m in missing]
                raise DatasetError(f"{self.root}: setting(s) {', '.join(missing)} not in this dataset "
                                   f"(available: {', '.join(self.settings)})")
            mask &= frame["setting"].isin(wanted).to_numpy()
        return frame[mask].reset_index(drop=True)

    def row(self, sample_id: str) -> pd.Series:
        """The manifest row of a sample; :class:`DatasetError` for an unknown id."""
        try:
            return self.manifest.iloc[self._row_of[sample_id]]
        except KeyError:
            raise DatasetError(f"{self.root}: no sample {sample_id!r} in this dataset") from None

    # ---- pixels -----------------------------------------------------------------------------------------
    # The HDF5 handles live in the array store (:mod:`.arrays`); these views keep the reader's cache state
    # inspectable as before (``_files``, ``_arrays``: the open shard files and array handles of this process).
    @property
    def _hdf5(self) -> HDF5ArrayStore:
        store = self._store
        return store.clean if isinstance(store, VirtualArrayStore) else store  # type: ignore[return-value]

    @property
    def _files(self) -> OrderedDict[str, h5py.File]:
        return self._hdf5._files

    @property
    def _arrays(self) -> OrderedDict[tuple[str, str], h5py.Dataset]:
        return self._hdf5._arrays

    @property
    def _pid(self) -> int:
        return self._hdf5._pid

    @_pid.setter
    def _pid(self, value: int) -> None:
        self._hdf5._pid = value

    @property
    def array_store(self) -> ArrayStore:
        """The :class:`~demmi_rf.store.arrays.ArrayStore` every array is read through (the card's format)."""
        return self._store

    @property
    def array_format(self) -> str:
        """The card's array format: ``"hdf5"`` (materialized) or ``"virtual"`` (synthesised on read)."""
        return self._store.format

    def _locate(self, sample_id: str) -> SampleRef:
        """Where a sample's arrays are, from a dict built once (a pandas row per read is slow)."""
        if self._index is None:
            self._index = refs_from_manifest(self.manifest)
        try:
            return self._index[sample_id]
        except KeyError:
            raise DatasetError(f"{self.root}: no sample {sample_id!r} in this dataset") from None

    def read(self, sample_id: str, arrays: Iterable[str] = ARRAYS,
             window: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
        """uint8 arrays of a sample: ``vis`` (HxWx3 RGB or HxW gray), ``ir`` (HxW), ``vis_clean``,
        ``ir_clean``. ``vis`` of a setting that leaves VIS unchanged is the clean VIS (same for IR).
        ``window=(y0, x0, h, w)`` reads only that region (in a materialized dataset only the chunks it touches
        are decoded; in a virtual one the whole image is synthesised once and cached)."""
        ref = self._locate(sample_id)
        names = self._names(arrays)
        if window is not None:
            window = _check_window(window, ref.height, ref.width, sample_id)
        return self._store.read_many(ref, names, window)

    def read_fresh(self, sample_id: str, dataset_seed: int, epoch: int, arrays: Iterable[str] = ARRAYS,
                   window: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
        """Like :meth:`read`, but the degraded arrays are a *fresh draw*: new parameters and noise from the
        stream of :func:`demmi_rf.rng.resample_parts` (``dataset_seed``, ``epoch``) instead of the stored
        benchmark's, synthesised by :func:`demmi_rf.degrade` from the stored clean arrays (any array format).
        Not checked against the manifest (it differs from it by design). Used by training with
        ``DeMMIDataset(..., resample="epoch")``."""
        from ..rng import resample_parts  # noqa: PLC0415

        ref = self._locate(sample_id)
        names = self._names(arrays)
        if window is not None:
            window = _check_window(window, ref.height, ref.width, sample_id)
        extra = resample_parts(dataset_seed, epoch)
        fresh = self._fresh_store().synthesise(ref, stream_extra=extra) if any(map(ref.degraded, names)) else {}
        out = {}
        for name in names:
            if ref.degraded(name):
                image = fresh[name]
                out[name] = image if window is None else \
                    np.ascontiguousarray(image[window[0]: window[0] + window[2], window[1]: window[1] + window[3]])
            else:
                out[name] = self._store.read(ref, name, window)
        return out

    def _fresh_store(self) -> VirtualArrayStore:
        """A synthesising store sharing this reader's HDF5 handles (no cache: every fresh draw is new)."""
        if isinstance(self._store, VirtualArrayStore):
            return self._store
        if self._fresh is None:
            fresh = VirtualArrayStore(self.root, self.card, cache_bytes=0)
            fresh.clean = self._store  # type: ignore[assignment]
            self._fresh = fresh
        return self._fresh

    def prepare_workers(self, sample_ids: Iterable[str], fresh: bool = False) -> int:
        """Prepare this reader, in the process that will fork DataLoader workers and before it does, for reading
        ``sample_ids``: the sample index is built here (not again in every worker); for a virtual dataset the
        degraded images of those samples get slots in shared memory that the forked workers share
        (:meth:`~demmi_rf.store.arrays.VirtualArrayStore.share`: each image synthesised once between them) and
        every synthesis's imports and tables are built here; with ``fresh`` (fresh draws, never cached) only the
        latter. Returns the number of samples given a shared slot. Called by ``DeMMIDataset``; readers that are
        pickled to their workers (``spawn``) keep a cache per process instead."""
        refs = [self._locate(sid) for sid in dict.fromkeys(sample_ids)]
        if fresh:
            self._fresh_store().warm_up(sorted({r.setting for r in refs if r.changes_vis or r.changes_ir}))
            return 0
        return self._store.share(refs) if isinstance(self._store, VirtualArrayStore) else 0

    @staticmethod
    def _names(arrays: Iterable[str]) -> list[str]:
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        bad = [a for a in names if a not in _ARRAY_NAMES]
        if bad:
            raise ValueError(f"unknown array name(s) {bad}; choose from {', '.join(_ARRAY_NAMES)}")
        return names

    # ---- life cycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HDF5 handles this process opened (and drop a virtual store's cache)."""
        self._store.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # the array store drops its handles and cache when pickled
        state["_index"] = None
        state["_fresh"] = None
        return state

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, samples={len(self)}, splits={self.splits})"


def _check_window(window: tuple[int, int, int, int], height: int, width: int,
                  sample_id: str) -> tuple[int, int, int, int]:
    try:
        y0, x0, h, w = (int(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (y0, x0, h, w), got {window!r}") from None
    if y0 < 0 or x0 < 0 or h < 1 or w < 1 or y0 + h > height or x0 + w > width:
        raise ValueError(f"window {window!r} outside sample {sample_id} of size {height}x{width} (HxW)")
    return y0, x0, h, w


def open_dataset(root: str | Path, max_open_shards: int = 64, max_open_arrays: int = 128,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> Dataset:
    """Open a built dataset; :class:`DatasetError` naming what is missing or invalid. Shards are opened on
    first read (a missing, truncated or corrupted shard then raises :class:`ShardError` naming the file); at
    most ``max_open_shards`` files and ``max_open_arrays`` array handles (0: none kept) stay open per
    process. A virtual dataset (card ``storage.array_format = "virtual"``) keeps at most ``cache_bytes`` of
    synthesised images per process (:class:`~demmi_rf.store.arrays.VirtualArrayStore`)."""
    return Dataset(root, max_open_shards=max_open_shards, max_open_arrays=max_open_arrays, cache_bytes=cache_bytes)


__all__ = ["Dataset", "ShardError", "open_dataset"]
