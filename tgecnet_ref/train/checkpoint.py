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

from demmi_rf.errors import DemmiError

from ..config import MAX_PARAMETERS, ModelConfig, TGConfig, config_from_dict

FORMAT = "tgecnet_ref/1"


class CheckpointError(DemmiError, ValueError):
    """A checkpoint file that cannot be used for what was asked (names the file and the problem)."""


# -- what a configuration's model looks like, without allocating it ----------------------------------------------
_SHAPES_CACHE: dict[ModelConfig, dict[str, tuple[int, ...]]] = {}


def expected_shapes(model_cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``TGECNet(model_cfg).state_dict()``, from a model built on the ``meta`` device
    (no memory is allocated for weights). ``model_cfg`` must be validated first (bounds), and the model may
    have at most ``MAX_PARAMETERS`` parameters (``ValueError`` otherwise)."""
    if model_cfg not in _SHAPES_CACHE:
        from ..model import TGECNet

        model_cfg.validate()
        with torch.device("meta"):
            model = TGECNet(model_cfg)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        n = sum(int(np.prod(s)) for s in shapes.values())
        if n > MAX_PARAMETERS:
            raise ValueError(f"the configured model has {n:,} parameters, more than the {MAX_PARAMETERS:,} allowed")
        _SHAPES_CACHE[model_cfg] = shapes
    return _SHAPES_CACHE[model_cfg]


def check_state_shapes(model_cfg: ModelConfig, shapes: dict[str, tuple[int, ...]], path: str | Path,
                       subset: str = "") -> None:
    """Raise :class:`CheckpointError` unless the weights ``shapes`` (name -> shape) are exactly those of the
    model ``model_cfg`` describes (restricted to names starting with ``subset``), naming the differences.

    Called before the model is built, so that a file whose configuration and tensors disagree (or whose
    configuration asks for an absurd model) is refused without allocating anything."""
    try:
        expected = expected_shapes(model_cfg)
    except ValueError as exc:
        raise CheckpointError(f"{path}: stored configuration refused: {exc}") from exc
    expected = {k: v for k, v in expected.items() if k.startswith(subset)}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [f"{k} {tuple(shapes[k])} (configuration says {expected[k]})" for k in expected
             if k in shapes and tuple(shapes[k]) != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                parts.append(f"{len(items)} {label}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}")
        raise CheckpointError(f"{path}: the weights do not match the stored model configuration ({'; '.join(parts)})")


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
        raise CheckpointError(f"{path}: not a loadable weights-only torch checkpoint ({exc}); the authors' "
                              "public .ckpt/.pth files are read by tgecnet_ref.weights.load_weights") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path}: not a tgecnet_ref checkpoint (expected format {FORMAT!r})")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> TGConfig:
    """The :class:`TGConfig` stored in a loaded checkpoint."""
    try:
        return config_from_dict(ckpt["config"], where=f"{path} (stored config)")
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: stored configuration is missing or invalid ({exc})") from exc


def checked_config(ckpt: dict[str, Any], path: str | Path) -> TGConfig:
    """:func:`checkpoint_config`, then :func:`check_state_shapes` of the checkpoint's ``model`` weights."""
    cfg = checkpoint_config(ckpt, path)
    model = ckpt["model"]
    bad = [k for k, v in model.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: model entries that are not tensors: {bad[:6]}")
    check_state_shapes(cfg.model, {k: tuple(v.shape) for k, v in model.items()}, path)
    return cfg


def export_safetensors(path: str | Path, state_dict: dict[str, torch.Tensor], config: TGConfig, stage: int) -> Path:
    """Write model weights to ``.safetensors`` with ``{"config": json, "stage": str}`` metadata."""
    from demmi_rf.optional import require

    save_file = require("safetensors.torch", feature="exporting model.safetensors").save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "config": json.dumps(config.to_dict()),
                                           "stage": str(stage)})
    os.replace(tmp, path)
    return path


def _load_safetensors(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """Read the metadata first, validate the configuration (bounds) and compare every tensor's shape with the
    model it describes (from the file header, before any tensor is read), then load the tensors."""
    from demmi_rf.optional import require

    safetensors = require("safetensors", feature=f"reading {path.name}")
    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != FORMAT or "config" not in meta:
                raise CheckpointError(f"{path}: safetensors file lacks tgecnet_ref metadata (config, stage)")
            try:
                config = json.loads(meta["config"])
                stage = int(meta.get("stage", 2))
            except (ValueError, RecursionError) as exc:
                raise CheckpointError(f"{path}: unreadable configuration in the metadata ({exc})") from exc
            if stage not in (1, 2):
                raise CheckpointError(f"{path}: stage must be 1 or 2, the metadata says {stage}")
            cfg = checkpoint_config({"config": config}, path)
            check_state_shapes(cfg.model, {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}, path)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed file: name it and say why
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    dev = torch.device(map_location)
    return {"model": {k: v.to(dev) for k, v in tensors.items()}, "config": config, "stage": stage}


def restorer_state(ckpt: dict[str, Any], path: str | Path) -> dict[str, torch.Tensor]:
    """The ``restorer.*`` weights of a loaded checkpoint (prefix removed)."""
    prefix = "restorer."
    state = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: holds no restorer (stage-1) weights")
    return state
