"""The PNG-folder baseline: how fusion repositories load data (whole PNGs with ``cv2.imread``, then crop).

Used by ``benchmarks/bench_dataset.py`` to measure :class:`~demmi_rf.torch.DeMMIDataset` against the usual
practice over the same samples. Items are identical to ``DeMMIDataset`` items (same keys, same random choices
from the same seed, epoch and item key), so the benchmark also checks that both give the same tensors.

Folder layout written by :func:`export_png_folder`::

    <folder>/index.txt                      one sample id per line (the item order)
    <folder>/{vis,ir,vis_clean,ir_clean}/<safe sample id>.png
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..ids import safe_name, split_sample_id
from .atoms import atoms_vector
from .augment import crop_array, crop_size, draw_choices
from .dataset import FUSION_ARRAYS, array_to_tensor
from .seeding import SharedEpoch, item_generator

INDEX_FILE = "index.txt"


def export_png_folder(store: Any, out: str | Path, sample_ids: Iterable[str]) -> Path:
    """Write whole degraded and clean arrays of ``sample_ids`` from a store as PNGs (OpenCV defaults)."""
    out = Path(out)
    for name in FUSION_ARRAYS:
        (out / name).mkdir(parents=True, exist_ok=True)
    ids = list(sample_ids)
    for sid in ids:
        arrays = store.read(sid, arrays=FUSION_ARRAYS)
        for name in FUSION_ARRAYS:
            a = arrays[name]
            if a.ndim == 3:
                a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
            path = out / name / f"{safe_name(sid)}.png"
            if not cv2.imwrite(str(path), a):
                raise OSError(f"{path}: could not write PNG")
    (out / INDEX_FILE).write_text("".join(f"{sid}\n" for sid in ids), encoding="utf-8")
    return out


class PNGFolderDataset(Dataset):
    """Fusion items from a PNG folder: each array read whole with ``cv2.imread``, then cropped in memory."""

    def __init__(
        self,
        folder: str | Path,
        crop: int | Sequence[int] | None = None,
        augment: bool = False,
        seed: int = 0,
        to_gray_vis: bool = False,
    ):
        self.folder = Path(folder)
        index = self.folder / INDEX_FILE
        if not index.is_file():
            raise FileNotFoundError(f"{index}: missing (not a folder written by export_png_folder)")
        self.sample_ids = [line for line in index.read_text(encoding="utf-8").splitlines() if line]
        self.crop = crop_size(crop)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.to_gray_vis = bool(to_gray_vis)
        self._epoch = SharedEpoch(0)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = int(epoch)

    def _imread(self, name: str, sid: str) -> np.ndarray:
        path = self.folder / name / f"{safe_name(sid)}.png"
        a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if a is None:
            raise FileNotFoundError(f"{path}: missing or unreadable PNG")
        return cv2.cvtColor(a, cv2.COLOR_BGR2RGB) if a.ndim == 3 else a

    def __getitem__(self, index: int) -> dict[str, Any]:
        sid = self.sample_ids[index]
        pair, setting = split_sample_id(sid)
        whole = {name: self._imread(name, sid) for name in FUSION_ARRAYS}
        h, w = whole["ir"].shape[:2]
        rng = item_generator(self.seed, self._epoch.value, sid)
        window, k = draw_choices(rng, h, w, self.crop, self.augment)
        item: dict[str, Any] = {}
        for name, a in whole.items():
            if window is not None:
                a = crop_array(a, window)
            item[name] = array_to_tensor(a, k, vis=name.startswith("vis"), to_gray_vis=self.to_gray_vis)
        item["setting"] = setting
        item["atoms"] = torch.from_numpy(atoms_vector(setting))
        item["sample_id"] = sid
        item["pair_id"] = pair
        return item
