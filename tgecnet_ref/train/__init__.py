"""Two-stage trainer of the reference TG-ECNet (``demmi train``): loop, checkpoints, schedule, logs, DDP."""

from .checkpoint import CheckpointError, export_safetensors, load_checkpoint, save_checkpoint
from .loop import TrainOptions, TrainResult, build_model, describe, resolve_config, train
from .schedule import lr_factor, make_scheduler, make_step_scheduler

__all__ = [
    "CheckpointError", "TrainOptions", "TrainResult", "build_model", "describe", "export_safetensors",
    "load_checkpoint", "lr_factor", "make_scheduler", "make_step_scheduler", "resolve_config", "save_checkpoint",
    "train",
]
