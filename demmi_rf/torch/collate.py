"""Batching whole images of different sizes (test time).

Two ways, both keeping full resolution:

* :class:`SizeBucketBatchSampler` groups item indices by image size, so that every batch holds images of one
  size and PyTorch's default collate works unchanged (no padding, no wasted compute);
* :func:`pad_collate` pads every image tensor of a batch (bottom and right, with zeros or by reflection) to the
  largest height and width in the batch, optionally rounded up to a multiple (a U-net such as TG-ECNet needs
  multiples of 8), and adds ``size``: the original ``(height, width)`` of each item; :func:`unpad` cuts
  outputs back.

Batch size 1 with the default collate is always correct too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler
from torch.utils.data._utils.collate import default_collate

from ..rng import generator


def pad_collate(
    batch: Sequence[dict[str, Any]], multiple: int = 1, mode: str = "constant"
) -> dict[str, Any]:
    """Collate dict items whose 3-D (C, H, W) tensors differ in size.

    Every 3-D tensor is padded at the bottom and right to ``(Hmax', Wmax')`` = the batch maxima rounded up to
    ``multiple``; ``mode`` is ``"constant"`` (zeros) or ``"reflect"``/``"replicate"`` (``torch.nn.functional.pad``).
    Other tensors are stacked, other values (strings) collected in lists (``default_collate``). The result has
    ``size``: a ``(B, 2)`` int64 tensor of the original ``(H, W)`` of each item (taken from the first 3-D tensor).
    """
    if not batch:
        raise ValueError("pad_collate: empty batch")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    image_keys = [k for k, v in batch[0].items() if isinstance(v, torch.Tensor) and v.dim() == 3]
    if not image_keys:
        raise ValueError("pad_collate: items hold no (C, H, W) tensor")
    sizes = [tuple(item[image_keys[0]].shape[-2:]) for item in batch]
    for item in batch:
        for key in image_keys:
            if tuple(item[key].shape[-2:]) != tuple(item[image_keys[0]].shape[-2:]):
                raise ValueError(f"pad_collate: {key!r} and {image_keys[0]!r} of one item differ in size")
    h = math.ceil(max(s[0] for s in sizes) / multiple) * multiple
    w = math.ceil(max(s[1] for s in sizes) / multiple) * multiple
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if key in image_keys:
            out[key] = torch.stack([_pad(v, h, w, mode) for v in values])
        else:
            out[key] = default_collate(values)
    out["size"] = torch.tensor(sizes, dtype=torch.int64)
    return out


def _pad(t: torch.Tensor, h: int, w: int, mode: str) -> torch.Tensor:
    ph, pw = h - t.shape[-2], w - t.shape[-1]
    if ph == 0 and pw == 0:
        return t
    if mode == "constant":
        return F.pad(t, (0, pw, 0, ph))
    return F.pad(t.unsqueeze(0), (0, pw, 0, ph), mode=mode).squeeze(0)


def unpad(batch_tensor: torch.Tensor, sizes: torch.Tensor) -> list[torch.Tensor]:
    """Cut a padded ``(B, C, H', W')`` output back to each item's ``size`` (list of ``(C, H, W)``)."""
    return [batch_tensor[i, :, : int(s[0]), : int(s[1])] for i, s in enumerate(sizes)]


class SizeBucketBatchSampler(Sampler[list[int]]):
    """Batches of item indices that share one image size.

    ``sizes[i]`` is the ``(H, W)`` of item ``i`` (``DeMMIDataset.sizes``). Without ``shuffle``, buckets come in
    order of first appearance and indices in dataset order; with it, indices within buckets and the order of
    batches are permuted by a generator from ``(seed, epoch)`` through :func:`demmi_rf.rng.generator`
    (call :meth:`set_epoch`).
    """

    def __init__(
        self,
        sizes: Sequence[tuple[int, int]],
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.epoch = 0
        buckets: dict[tuple[int, int], list[int]] = {}
        for i, size in enumerate(sizes):
            buckets.setdefault((int(size[0]), int(size[1])), []).append(i)
        self.buckets = buckets

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        rng = generator(self.seed, "size-buckets", f"epoch{self.epoch}", "torch-sampler") if self.shuffle else None
        batches: list[list[int]] = []
        for indices in self.buckets.values():
            idx = list(indices) if rng is None else [indices[j] for j in rng.permutation(len(indices))]
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                if len(chunk) < self.batch_size and self.drop_last:
                    continue
                batches.append(chunk)
        if rng is not None:
            order = rng.permutation(len(batches))
            batches = [batches[j] for j in np.asarray(order)]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        if self.drop_last:
            return sum(len(v) // self.batch_size for v in self.buckets.values())
        return sum(math.ceil(len(v) / self.batch_size) for v in self.buckets.values())
