"""Checkpoints: save atomically, load safely (``torch.load(weights_only=True)`` or safetensors).

A training checkpoint (``.pt``) is a dict of plain data and tensors only::

    {"format": "tgecnet_ref/1", "stage": 1|2, "epoch": completed epochs, "step": optimizer steps,
     "config": TGConfig.to_dict(), "model": TGECNet state dict, "optimizer": ..., "scheduler": ...,
     "rng": [per-rank RNG states], "init": stage-1 checkpoint path or None}

so that ``weights_only=True`` loads it without executing pickled code. ``export_safetensors`` writes the model
weights alone with the configuration and stage in the file's metadata (for sharing and for ``demmi fuse``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TGConfig, config_from_dict

FORMAT = "tgecnet_ref/1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used for what was asked (names the file and the problem)."""


# -- RNG state ---------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python RNG states as tensors and plain data (``weights_only``-safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": _py_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(_py_state_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _py_state_to_plain(s: tuple) -> list:
    return [s[0], list(s[1]), s[2]]


def _py_state_from_plain(s: list) -> tuple:
    return (s[0], tuple(s[1]), s[2])


# -- files -------------------------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with ``format`` added) to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a ``.pt`` training checkpoint or a ``.safetensors`` export as a dict with at least
    ``model`` (state dict), ``config`` (plain dict) and ``stage``. Uses ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling problem with the file name
        raise CheckpointError(f"{path}: not a loadable weights-only torch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a tgecnet_ref checkpoint (expected format {FORMAT!r})")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> TGConfig:
    """The :class:`TGConfig` stored in a loaded checkpoint."""
    try:
        return config_from_dict(ckpt["config"], where=f"{path} (stored config)")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: stored configuration is missing or invalid ({exc})") from exc


def export_safetensors(path: str | Path, state_dict: dict[str, torch.Tensor], config: TGConfig, stage: int) -> Path:
    """Write model weights to ``.safetensors`` with ``{"config": json, "stage": str}`` metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "config": json.dumps(config.to_dict()),
                                           "stage": str(stage)})
    os.replace(tmp, path)
    return path


def _load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: safetensors file lacks tgecnet_ref metadata (config, stage)")
    dev = torch.device(map_location)
    return {"model": {k: v.to(dev) for k, v in tensors.items()}, "config": json.loads(meta["config"]),
            "stage": int(meta.get("stage", 2))}


def restorer_state(ckpt: dict[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """The ``restorer.*`` weights of a loaded checkpoint (prefix removed)."""
    prefix = "restorer."
    state = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: holds no restorer (stage-1) weights")
    return state
