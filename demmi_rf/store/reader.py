"""Reading a built dataset: :func:`open_dataset` -> :class:`Dataset`.

HDF5 files are opened lazily, per process: the object stores the root path and opens ``h5py.File`` handles
on first use in the current process id, so it pickles (handles are dropped) and works in DataLoader worker
processes, forked or spawned. After a fork, handles inherited from the parent are abandoned, never used.

Open ``h5py.Dataset`` handles are cached too (bounded LRU keyed by ``(shard, array path)``): re-opening an array
costs a nested-group traversal per call, and keeping the handle keeps HDF5's per-dataset chunk cache, so the
clean arrays a pair shares across its settings are not decompressed again for every setting. A file closed by
the shard LRU drops its array handles first, so no handle of a closed file is ever used.

Every shard is opened through :func:`demmi_rf.store.safe.open_shard` (the store's one gate: a path inside the
dataset folder, no links, no external or virtual storage, no unknown filters) and every array handle is checked
against the manifest (uint8, the recorded height, width and channels) before it is read or cached.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..errors import DatasetError, ShardError, did_you_mean
from ..settings import parse_setting
from .card import Card, card_hash, load_card, recipe_hash_problem
from .checksums import file_sha256
from .identity import card_content_hash
from .layout import ARRAYS, CARD, MANIFEST
from .manifest import read_manifest
from .safe import array_shape, check_array, inside, open_shard

_ARRAY_COLUMNS = {"vis": "vis_path", "ir": "ir_path", "vis_clean": "vis_clean_path", "ir_clean": "ir_clean_path"}
_ARRAY_NAMES = tuple(_ARRAY_COLUMNS)
_Located = tuple[str, int, int, int, dict[str, str]]  # shard, height, width, vis channels, {array: path}


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

    def __init__(self, root: str | Path, max_open_shards: int = 64, max_open_arrays: int = 128):
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
        self._files: OrderedDict[str, h5py.File] = OrderedDict()
        self._arrays: OrderedDict[tuple[str, str], h5py.Dataset] = OrderedDict()
        self._index: dict[str, _Located] | None = None  # built on the first read (not pickled)
        self._pid = os.getpid()

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
    def _check_pid(self) -> None:
        """Forked: never touch the parent's HDF5 handles (files or arrays); this process opens its own."""
        if os.getpid() != self._pid:
            self._arrays = OrderedDict()
            self._files = OrderedDict()
            self._pid = os.getpid()

    def _shard(self, rel: str) -> h5py.File:
        """The open handle of a shard in this process (least recently used handles beyond
        ``max_open_shards`` are closed, so a dataset of thousands of shards never exhausts file handles)."""
        self._check_pid()
        h5 = self._files.get(rel)
        if h5 is None:
            h5 = open_shard(rel, root=self.root)
            self._files[rel] = h5
            while len(self._files) > self.max_open_shards:
                old_rel, old = self._files.popitem(last=False)
                self._drop_arrays(old_rel)  # before closing: no handle of a closed file stays cached
                _close_quietly(old)
        else:
            self._files.move_to_end(rel)
        return h5

    def _drop_arrays(self, rel: str) -> None:
        for key in [k for k in self._arrays if k[0] == rel]:
            del self._arrays[key]

    def _array(self, rel: str, path: str, sample_id: str, shape: tuple[int, ...]) -> h5py.Dataset:
        """The open ``h5py.Dataset`` at ``path`` in shard ``rel`` (LRU of ``max_open_arrays`` handles);
        :class:`ShardError` naming the shard, sample and array when it is absent, unreadable, not uint8 or not
        of the manifest's ``shape``."""
        key = (rel, path)
        dset = self._arrays.get(key)
        if dset is not None:
            if dset.id.valid:  # its file is open: evicting or closing a file drops its handles first
                if dset.shape != shape:  # two manifest rows give one array two sizes
                    check_array(dset, _where(rel, sample_id, path), shape)
                self._arrays.move_to_end(key)
                self._files.move_to_end(rel)
                return dset
            del self._arrays[key]  # pragma: no cover - defensive: the file was closed behind our back
        h5 = self._shard(rel)
        try:
            dset = h5[path]
        except KeyError as exc:
            raise ShardError(f"{_where(rel, sample_id, path)}: not found in the shard") from exc
        except Exception as exc:  # noqa: BLE001 - h5py raises many types on corrupted metadata
            raise ShardError(f"{_where(rel, sample_id, path)}: unreadable: {exc}") from exc
        if not isinstance(dset, h5py.Dataset):
            raise ShardError(f"{_where(rel, sample_id, path)}: a group, not an array")
        check_array(dset, _where(rel, sample_id, path), shape)
        if self.max_open_arrays:
            self._arrays[key] = dset
            while len(self._arrays) > self.max_open_arrays:
                self._arrays.popitem(last=False)
        return dset

    def _locate(self, sample_id: str) -> _Located:
        """Shard, size and array paths of a sample, from a dict built once (a pandas row per read is slow)."""
        if self._index is None:
            m = self.manifest
            paths = zip(*(m[_ARRAY_COLUMNS[a]].tolist() for a in _ARRAY_NAMES))
            self._index = {
                sid: (shard, int(h), int(w), int(c), dict(zip(_ARRAY_NAMES, p)))
                for sid, shard, h, w, c, p in zip(m["sample_id"].tolist(), m["shard"].tolist(),
                                                  m["height"].tolist(), m["width"].tolist(),
                                                  m["vis_channels"].tolist(), paths)
            }
        try:
            return self._index[sample_id]
        except KeyError:
            raise DatasetError(f"{self.root}: no sample {sample_id!r} in this dataset") from None

    def read(self, sample_id: str, arrays: Iterable[str] = ARRAYS,
             window: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
        """uint8 arrays of a sample: ``vis`` (HxWx3 RGB or HxW gray), ``ir`` (HxW), ``vis_clean``,
        ``ir_clean``. ``vis`` of a setting that leaves VIS unchanged is the clean VIS (same for IR).
        ``window=(y0, x0, h, w)`` reads only that region (only the chunks it touches are decoded)."""
        rel, height, width, channels, paths = self._locate(sample_id)
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        bad = [a for a in names if a not in _ARRAY_COLUMNS]
        if bad:
            raise ValueError(f"unknown array name(s) {bad}; choose from {', '.join(_ARRAY_COLUMNS)}")
        if window is not None:
            window = _check_window(window, height, width, sample_id)
        self._check_pid()
        out = {}
        for a in names:
            path = paths[a]
            dset = self._array(rel, path, sample_id, array_shape(height, width, channels, a))
            try:
                if window is None:
                    out[a] = np.asarray(dset[()])
                else:
                    y0, x0, h, w = window
                    out[a] = np.asarray(dset[y0 : y0 + h, x0 : x0 + w])
            except Exception as exc:  # noqa: BLE001 - h5py raises many types on damaged chunks
                self._arrays.pop((rel, path), None)
                raise ShardError(f"{_where(rel, sample_id, path)}: data does not decode (corrupted?): {exc}") from exc
        return out

    # ---- life cycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HDF5 handles this process opened."""
        self._arrays = OrderedDict()  # dropped before their files close
        if os.getpid() == self._pid:
            for h5 in self._files.values():
                _close_quietly(h5)
        self._files = OrderedDict()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        state["_arrays"] = OrderedDict()
        state["_index"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, samples={len(self)}, splits={self.splits})"


def _where(rel: str, sample_id: str, path: str) -> str:
    """Where a read failed, worded as :func:`~demmi_rf.store.shard.read_array` words it."""
    return f"shard {rel}, sample {sample_id}, array {path}"


def _close_quietly(h5: h5py.File) -> None:
    try:
        h5.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken handle must not raise
        pass


def _check_window(window: tuple[int, int, int, int], height: int, width: int,
                  sample_id: str) -> tuple[int, int, int, int]:
    try:
        y0, x0, h, w = (int(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (y0, x0, h, w), got {window!r}") from None
    if y0 < 0 or x0 < 0 or h < 1 or w < 1 or y0 + h > height or x0 + w > width:
        raise ValueError(f"window {window!r} outside sample {sample_id} of size {height}x{width} (HxW)")
    return y0, x0, h, w


def open_dataset(root: str | Path, max_open_shards: int = 64, max_open_arrays: int = 128) -> Dataset:
    """Open a built dataset; :class:`DatasetError` naming what is missing or invalid. Shards are opened on
    first read (a missing, truncated or corrupted shard then raises :class:`ShardError` naming the file); at
    most ``max_open_shards`` files and ``max_open_arrays`` array handles (0: none kept) stay open per
    process."""
    return Dataset(root, max_open_shards=max_open_shards, max_open_arrays=max_open_arrays)


__all__ = ["Dataset", "ShardError", "open_dataset"]
