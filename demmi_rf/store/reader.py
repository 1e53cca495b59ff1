"""Reading a built dataset: :func:`open_dataset` -> :class:`Dataset`.

HDF5 files are opened lazily, per process: the object stores the root path and opens ``h5py.File`` handles
on first use in the current process id, so it pickles (handles are dropped) and works in DataLoader worker
processes, forked or spawned. After a fork, handles inherited from the parent are abandoned, never used.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..errors import DatasetError, ShardError
from .card import card_hash, read_card
from .checksums import file_sha256
from .identity import card_content_hash
from .layout import ARRAYS, CARD, MANIFEST
from .manifest import read_manifest
from .shard import open_shard, read_array

_ARRAY_COLUMNS = {"vis": "vis_path", "ir": "ir_path", "vis_clean": "vis_clean_path", "ir_clean": "ir_clean_path"}


def _canonical_setting(name: str) -> str:
    try:
        from ..settings import parse_setting  # noqa: PLC0415 - optional until the settings module lands
    except ImportError:  # pragma: no cover
        return name
    try:
        return parse_setting(name).name
    except ValueError:
        return name


class Dataset:
    """A built DeMMI-RF dataset (see ``docs/dataset-layout.md``).

    Attributes: ``root`` (Path), ``card`` (dict), ``card_hash`` (sha256 of ``dataset.json``'s bytes),
    ``content_hash`` (:mod:`.identity`: recipe + samples + array sha256s, independent of the HDF5 bytes),
    ``manifest`` (DataFrame, one row per sample, default RangeIndex).
    """

    def __init__(self, root: str | Path, max_open_shards: int = 64):
        self.root = Path(root).absolute()
        self.max_open_shards = max(1, int(max_open_shards))
        self.card, raw = read_card(self.root)
        self.card_hash = card_hash(raw)
        manifest_path = self.root / MANIFEST
        self.manifest = read_manifest(manifest_path)
        expected = (self.card.get("manifest") or {}).get("sha256")
        if expected and file_sha256(manifest_path) != expected:
            raise DatasetError(f"{manifest_path}: does not match the sha256 recorded in the card "
                               "(edited or corrupted); run 'demmi verify'")
        known = {s["file"] for s in self.card.get("shards", [])}
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
        self._pid = os.getpid()

    # ---- selection ------------------------------------------------------------------------------------
    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted(self.manifest["split"].unique()))

    @property
    def settings(self) -> tuple[str, ...]:
        """Settings present, in recipe order."""
        present = set(self.manifest["setting"])
        return tuple(s for s in self.card["recipe"]["settings"] if s in present)

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
                raise DatasetError(f"{self.root}: no split {split!r} (available: {', '.join(self.splits)})")
            mask &= (frame["split"] == split).to_numpy()
        if settings is not None:
            names = [settings] if isinstance(settings, str) else list(settings)
            wanted = [_canonical_setting(s) for s in names]
            missing = [n for n, w in zip(names, wanted) if w not in self.settings]
            if missing:
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
    def _shard(self, rel: str) -> h5py.File:
        """The open handle of a shard in this process (least recently used handles beyond
        ``max_open_shards`` are closed, so a dataset of thousands of shards never exhausts file handles)."""
        if os.getpid() != self._pid:  # forked: never touch the parent's HDF5 handles
            self._files = OrderedDict()
            self._pid = os.getpid()
        h5 = self._files.get(rel)
        if h5 is None:
            h5 = open_shard(self.root / rel, label=rel)
            self._files[rel] = h5
            while len(self._files) > self.max_open_shards:
                _, old = self._files.popitem(last=False)
                _close_quietly(old)
        else:
            self._files.move_to_end(rel)
        return h5

    def read(self, sample_id: str, arrays: Iterable[str] = ARRAYS,
             window: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
        """uint8 arrays of a sample: ``vis`` (HxWx3 RGB or HxW gray), ``ir`` (HxW), ``vis_clean``,
        ``ir_clean``. ``vis`` of a setting that leaves VIS unchanged is the clean VIS (same for IR).
        ``window=(y0, x0, h, w)`` reads only that region (only the chunks it touches are decoded)."""
        row = self.row(sample_id)
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        bad = [a for a in names if a not in _ARRAY_COLUMNS]
        if bad:
            raise ValueError(f"unknown array name(s) {bad}; choose from {', '.join(_ARRAY_COLUMNS)}")
        if window is not None:
            window = _check_window(window, int(row["height"]), int(row["width"]), sample_id)
        h5 = self._shard(row["shard"])
        return {a: read_array(h5, row[_ARRAY_COLUMNS[a]], row["shard"], window, sample=sample_id)
                for a in names}

    # ---- life cycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HDF5 handles this process opened."""
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
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, samples={len(self)}, splits={self.splits})"


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


def open_dataset(root: str | Path, max_open_shards: int = 64) -> Dataset:
    """Open a built dataset; :class:`DatasetError` naming what is missing or invalid. Shards are opened on
    first read (a missing, truncated or corrupted shard then raises :class:`ShardError` naming the file); at
    most ``max_open_shards`` stay open per process."""
    return Dataset(root, max_open_shards=max_open_shards)


__all__ = ["Dataset", "ShardError", "open_dataset"]
