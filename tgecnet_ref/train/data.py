"""Training data: the DeMMI-RF torch dataset per stage, its sampler and loader, and batch unpacking.

Stage 1 reads ``DeMMIDataset(task="restoration")`` items (``input``: one degraded modality, ``target``: its
clean version); stage 2 reads ``task="fusion"`` items (``vis``, ``ir`` degraded, ``vis_clean``, ``ir_clean``).
VIS is read as one channel, ``round(0.2989 R + 0.5870 G + 0.1140 B)`` (BT.601 luminance, ``to_gray_vis``):
the model works on the luminance Y, as the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ..config import StageConfig
from .distributed import DistEnv


def make_dataset(root: str | Path, stage: int, cfg: StageConfig, split: str = "train") -> Dataset:
    """The crop-augmented training dataset of ``stage`` from a ``demmi build`` directory."""
    from demmi_rf.torch import DeMMIDataset

    return DeMMIDataset(
        root,
        split=split,
        settings=list(cfg.settings) or None,
        task="restoration" if stage == 1 else "fusion",
        crop=cfg.patch_size,
        augment=cfg.augment,
        seed=cfg.seed,
        to_gray_vis=True,
        resample=getattr(cfg, "resample", "") or None,
    )


def make_loader(
    dataset: Dataset, cfg: StageConfig, env: DistEnv, pin_memory: bool = False
) -> tuple[DataLoader, DistributedSampler]:
    """A shuffling loader with a ``DistributedSampler`` (also for one process: one code path, seeded order).

    ``drop_last=True`` (as the public code): every batch has ``batch_size`` items per process.
    """
    sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        pin_memory=pin_memory,
        persistent_workers=cfg.num_workers > 0,
    )
    return loader, sampler


def _one_channel(t: torch.Tensor, key: str) -> torch.Tensor:
    if t.dim() != 4 or t.shape[1] != 1:
        raise ValueError(f"batch[{key!r}] must be (B, 1, H, W) (VIS read as luminance), got {tuple(t.shape)}")
    return t


def stage1_batch(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(degraded, clean)`` of a restoration batch, on ``device``."""
    x = _one_channel(batch["input"], "input").to(device, non_blocking=True)
    y = _one_channel(batch["target"], "target").to(device, non_blocking=True)
    return x, y


def stage2_batch(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(vis, ir, vis_clean, ir_clean)`` of a fusion batch, on ``device``."""
    return tuple(_one_channel(batch[k], k).to(device, non_blocking=True)
                 for k in ("vis", "ir", "vis_clean", "ir_clean"))
