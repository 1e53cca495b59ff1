"""TG-ECNet model: Restormer layers, prompts, per-pixel mixture of experts, the two-stage network."""

from .tgecnet import (
    FuseOutput,
    FusionHead,
    RestorationNet,
    RestoreOutput,
    TGECNet,
    check_size,
    count_parameters,
    parameter_summary,
)

__all__ = [
    "FuseOutput",
    "FusionHead",
    "RestorationNet",
    "RestoreOutput",
    "TGECNet",
    "check_size",
    "count_parameters",
    "parameter_summary",
]
