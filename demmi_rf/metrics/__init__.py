"""Pinned image-fusion metrics (numpy/scipy/OpenCV only, no torch).

``evaluate(fused, ir, vis, profile="tang", *, metrics=None, reasons=None) -> dict[str, float]`` scores one fused
image; :func:`profiles` lists the profile names and :func:`get_profile` returns one :class:`Profile` (its metric
keys, their direction and the reference quirks it reproduces). Each metric is also a plain function taking 2-D
uint8 gray arrays ``(fused, ir, vis)`` and, where the public codes disagree, a ``convention``. Formulas and the
differences between profiles: ``docs/metrics.md``.
"""

from __future__ import annotations

from .color import rgb2gray
from .edges import nabf, qabf
from .evaluate import check_inputs, evaluate
from .fidelity import vif
from .gradient import average_gradient, edge_intensity, spatial_frequency
from .information import cross_entropy, entropy, mutual_information
from .profiles import DEFAULT_PROFILE, MetricSpec, Profile, get_profile, profiles
from .statistics import correlation_coefficient, mean_squared_error, psnr, psnr_paper, scd, standard_deviation
from .structural import mef_ms_ssim, ms_ssim_std, ssim

__all__ = [
    "DEFAULT_PROFILE",
    "MetricSpec",
    "Profile",
    "average_gradient",
    "check_inputs",
    "correlation_coefficient",
    "cross_entropy",
    "edge_intensity",
    "entropy",
    "evaluate",
    "get_profile",
    "mean_squared_error",
    "mef_ms_ssim",
    "ms_ssim_std",
    "mutual_information",
    "nabf",
    "profiles",
    "psnr",
    "psnr_paper",
    "qabf",
    "rgb2gray",
    "scd",
    "spatial_frequency",
    "ssim",
    "standard_deviation",
    "vif",
]
