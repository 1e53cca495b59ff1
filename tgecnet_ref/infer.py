"""Inference with a trained TG-ECNet (``demmi fuse``): padding or tiling, luminance fusion, recolouring.

An image pair of any size is padded at the bottom and right (reflection) to multiples of 8 (at least 16) and
the output cropped back; or, with ``tile > 0``, processed in overlapping ``tile x tile`` windows averaged in the
overlaps (for memory; the model's prompts and channel attention see a whole window, so tiled and whole-image
results differ slightly). The VIS input is reduced to its luminance (MATLAB ``rgb2gray`` / BT.601, as the
training data), fused with IR, and recoloured with the degraded input's smoothed chroma (:mod:`.color`).
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .color import recolour
from .config import TGConfig
from .model import TGECNet
from .model.layers import fast_inference, to_channels_last
from .model.tgecnet import MIN_SIZE, MULTIPLE
from .train.checkpoint import CheckpointError
from .weights import load_weights


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE, min_size: int = MIN_SIZE) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right to ``H', W'``: multiples of ``multiple``, at least
    ``min_size``; reflection where the image is large enough, else edge replication."""
    h, w = x.shape[-2:]
    th = max(min_size, -(-h // multiple) * multiple)
    tw = max(min_size, -(-w // multiple) * multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc <malloc.h>
_REUSE_SET = False


def reuse_freed_memory() -> bool:
    """Make this process's C allocator keep freed memory for reuse (glibc only; returns whether it applied).

    PyTorch allocates CPU tensors with ``malloc``; glibc serves blocks above 32 MiB (every full-resolution
    activation of a 640x480 pair) with a fresh ``mmap`` and returns them to the kernel on ``free``, so each new
    activation is page-faulted and zeroed by the kernel again, 4 KiB at a time: half of the CPU time of the
    ``tiny`` configuration (docs/tgecnet.md, "CPU inference"). ``mallopt(M_MMAP_MAX, 0)`` serves large blocks
    from the heap and ``mallopt(M_TRIM_THRESHOLD, INT_MAX)`` keeps freed heap memory mapped, so a forward pass
    reuses the previous one's pages. Process-wide and not undone: the resident size stays at its peak."""
    global _REUSE_SET
    if _REUSE_SET:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False
    _REUSE_SET = ok
    return ok


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``tile`` covering ``[0, size)`` with at least ``overlap`` shared pixels."""
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


class Fuser:
    """A stage-2 TG-ECNet checkpoint ready to fuse image pairs.

    ``checkpoint``: a ``.pt`` written by ``demmi train --stage 2``, its ``model.safetensors``, or the authors'
    public ``stage2_pretrained.ckpt`` (then ``config`` names the configuration of its widths, ``paper`` by
    default, and ``compat`` defaults to ``"public"``; see :mod:`tgecnet_ref.public`). The file is checked
    against the model (configuration bounds, every tensor's name and shape) before the model is built.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "auto",
        amp: bool | None = None,
        tile: int = 0,
        overlap: int = 32,
        chroma_sigma: float = 2.0,
        config: str | Path | TGConfig | None = None,
        compat: str | None = None,
        tf32: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        fast: bool = True,
    ) -> None:
        """``amp``: bfloat16 autocast (``None``: on for CUDA, off for CPU); ``tf32``: TF32 for fp32 matmuls and
        convolutions on CUDA; ``channels_last``: channels-last weights and activations (faster depthwise
        convolutions; values differ from NCHW by float rounding); ``compile``: ``torch.compile`` the model
        (one compilation per input size; best with the dense MoE dispatch). On CUDA ``cudnn.benchmark`` is on.
        ``fast``: the inference fast path (:func:`tgecnet_ref.model.layers.fast_inference`, CPU float32 NCHW:
        equal to the reference path up to float rounding) under ``torch.inference_mode``, and on a CPU
        :func:`reuse_freed_memory` (process-wide); ``False`` runs the reference path as before."""
        if tile and (tile % MULTIPLE or tile < MIN_SIZE):
            raise ValueError(f"--tile must be a multiple of {MULTIPLE} and at least {MIN_SIZE}, got {tile}")
        if tile and not 0 <= overlap < tile:
            raise ValueError(f"--overlap must be in [0, tile), got {overlap}")
        weights = load_weights(checkpoint, config=config, compat=compat)
        if weights.stage != 2:
            raise CheckpointError(f"{checkpoint}: a stage-1 checkpoint has no trained fusion head; train stage 2 "
                                  "with 'demmi train --stage 2 --init <stage-1 checkpoint>' and fuse with that")
        self.config = weights.config
        self.note = weights.note
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = TGECNet(self.config.model)
        self.model.load_state_dict(weights.state, strict=True)
        self.model.eval().to(self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        if amp is None:
            amp = self.device.type == "cuda"
        self.channels_last, self.fast = channels_last, fast
        if fast and self.device.type == "cpu":
            reuse_freed_memory()
        if channels_last:
            to_channels_last(self.model)
        self._forward = torch.compile(self.model) if compile else self.model
        self.amp, self.tile, self.overlap, self.chroma_sigma = amp, tile, overlap, chroma_sigma

    @torch.no_grad()
    def _run(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        h, w = vis_y.shape[-2:]
        vp, ip = pad_to_multiple(vis_y), pad_to_multiple(ir)
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)
        with ctx, torch.inference_mode(self.fast), fast_inference(self.fast):
            out = self._forward(vp, ip).fused
        return out.float()[..., :h, :w]

    @torch.no_grad()
    def fuse_luminance(self, vis_y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """Fused luminance (float32 ``H x W`` in [0, 1]) from uint8 ``H x W`` VIS luminance and IR."""
        if vis_y.shape != ir.shape or vis_y.ndim != 2:
            raise ValueError(f"VIS luminance and IR must be equal-size 2-D arrays, got {vis_y.shape} and {ir.shape}")
        v = torch.from_numpy(np.asarray(vis_y, np.float32) / 255.0)[None, None].to(self.device)
        i = torch.from_numpy(np.asarray(ir, np.float32) / 255.0)[None, None].to(self.device)
        if not self.tile or (v.shape[-2] <= self.tile and v.shape[-1] <= self.tile):
            out = self._run(v, i)
        else:
            out = torch.zeros_like(v)
            weight = torch.zeros_like(v)
            h, w = v.shape[-2:]
            for y0 in tile_starts(h, self.tile, self.overlap):
                for x0 in tile_starts(w, self.tile, self.overlap):
                    win = (..., slice(y0, y0 + self.tile), slice(x0, x0 + self.tile))
                    out[win] += self._run(v[win], i[win])
                    weight[win] += 1.0
            out = out / weight
        return out.clamp(0, 1)[0, 0].cpu().numpy()

    def fuse(self, vis: np.ndarray, ir: np.ndarray, color: str = "auto") -> np.ndarray:
        """Fuse a degraded pair: ``vis`` uint8 ``H x W x 3`` (RGB) or ``H x W``, ``ir`` uint8 ``H x W``.

        Returns uint8 ``H x W x 3`` (RGB input and ``color="auto"``) or ``H x W`` (gray input or
        ``color="gray"``).
        """
        from demmi_rf.torch.augment import rgb_to_gray_bt601

        if color not in ("auto", "gray"):
            raise ValueError(f"color must be 'auto' or 'gray', got {color!r}")
        if vis.shape[:2] != ir.shape[:2]:
            raise ValueError(f"VIS {vis.shape[:2]} and IR {ir.shape[:2]} differ in size")
        y = self.fuse_luminance(rgb_to_gray_bt601(vis), ir) * 255.0
        if vis.ndim == 3 and color == "auto":
            return recolour(y, vis, self.chroma_sigma)
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 gray or RGB array as PNG (atomically: temporary name, then rename)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(image).save(tmp)
    tmp.replace(path)


def fuse_dataset(
    fuser: Fuser,
    root: str | Path,
    out_dir: str | Path,
    split: str | None = "test",
    settings: Iterable[str] | None = None,
    limit: int | None = None,
    color: str = "auto",
    overwrite: bool = True,
    on_item: Callable[[str], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> list[Path]:
    """Fuse every sample of ``split`` of a built dataset into ``out_dir/<safe sample id>.png`` (the layout
    ``demmi eval`` reads); ``split=None``: every split. Returns the written paths in manifest order.
    ``on_total(n)`` is called once with the number of samples to fuse, ``on_item(sample_id)`` after each."""
    from demmi_rf.ids import safe_name
    from demmi_rf.store import open_dataset

    store = open_dataset(root)
    frame = store.samples(split=split, settings=None if settings is None else list(settings))
    ids = frame["sample_id"].tolist()[: limit if limit else None]
    if not ids:
        raise ValueError(f"{root}: no samples in split {split!r}" + (f" for settings {list(settings)}" if settings
                                                                        else ""))
    if on_total is not None:
        on_total(len(ids))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for sid in ids:
        path = out / f"{safe_name(sid)}.png"
        if overwrite or not path.exists():
            arrays = store.read(sid, arrays=("vis", "ir"))
            write_png(path, fuser.fuse(arrays["vis"], arrays["ir"], color=color))
        written.append(path)
        if on_item is not None:
            on_item(sid)
    return written


def fuse_files(fuser: Fuser, ir_path: str | Path, vis_path: str | Path, out: str | Path, color: str = "auto") -> Path:
    """Fuse one pair of image files; ``out`` is a ``.png`` path or a folder (then ``<vis stem>.png``)."""
    from demmi_rf.sources import read_ir, read_vis

    ir, vis = read_ir(ir_path), read_vis(vis_path)
    if ir.shape[:2] != vis.shape[:2]:
        raise ValueError(f"{ir_path} ({ir.shape[1]}x{ir.shape[0]}) and {vis_path} ({vis.shape[1]}x{vis.shape[0]}) "
                         "differ in size; the pair must be registered")
    out = Path(out)
    path = out if out.suffix.lower() == ".png" else out / f"{Path(vis_path).stem}.png"
    write_png(path, fuser.fuse(vis, ir, color=color))
    return path
