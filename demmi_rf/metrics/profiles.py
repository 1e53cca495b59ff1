"""Metric profiles: which metrics, under which public reference's conventions, a score is computed with.

A :class:`Profile` lists :class:`MetricSpec` entries (result key, the function and convention it calls, whether
higher is better, the smallest image it accepts, and what a NaN means) plus the quirks of its reference that
it reproduces on purpose. Profiles:

- ``tang`` (default): Linfeng-Tang/Evaluation-for-Image-Fusion @ 0e87153 (MATLAB), the suite most IR/VIS
  fusion papers report.
- ``vifb``: xingchenzhang/VIFB @ 22b2ea9 (MATLAB) on gray inputs.
- ``vifb_rgb``: the same code as VIFB runs it on RGB fused/VIS images (per-channel means).
- ``cddfuse``: Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f ``utils/Evaluator.py`` (Python, scikit-image 0.19).
- ``paper``: the five metrics of the TG-ECNet paper's tables with tang's conventions, its PSNR on the paper's
  scale (``PSNR_paper``).
- ``std``: textbook definitions (PSNR with a 255 peak, Wang SSIM and MS-SSIM with L = 255, source averages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import unknown_name
from . import edges as _qa
from . import fidelity as _vif
from . import gradient as _gr
from . import information as _en
from . import statistics as _st
from . import structural as _ss

Compute = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
SizeCheck = Callable[[int, int], "str | None"]


def _min_size(min_h: int, min_w: int, what: str) -> SizeCheck:
    def check(h: int, w: int) -> str | None:
        if h < min_h or w < min_w:
            return f"image too small for {what}: needs at least {min_h}x{min_w} pixels, got {h}x{w}"
        return None

    return check


def _any_size(h: int, w: int) -> str | None:
    return None


def _vif_size(h: int, w: int) -> str | None:
    if _vif.vif_min_size_ok(h, w):
        return None
    return f"image too small for VIF: its 4 'valid' scales need about 41x41 pixels, got {h}x{w}"


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a profile.

    ``compute(fused, ir, vis)`` takes 2-D uint8 gray arrays of one shape (single-image metrics ignore the
    sources). ``rgb_compute``, when set, replaces the per-channel mean of profiles that evaluate RGB natively.
    ``size_check(h, w)`` returns why the image is too small (the metric is then NaN), or None.
    ``nan_reason`` is recorded when the value comes out NaN for another cause.
    """

    key: str
    compute: Compute
    higher_is_better: bool
    summary: str
    size_check: SizeCheck = _any_size
    nan_reason: str = "undefined for these inputs"
    rgb_compute: Callable[[np.ndarray, np.ndarray, np.ndarray], float] | None = None


@dataclass(frozen=True)
class Profile:
    """A named set of metrics with the conventions of one public reference."""

    name: str
    reference: str
    summary: str
    metrics: tuple[MetricSpec, ...]
    quirks: tuple[str, ...] = ()
    rgb_per_channel: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """Result keys, in the order :func:`demmi_rf.metrics.evaluate` returns them."""
        return tuple(m.key for m in self.metrics)

    def metric(self, key: str) -> MetricSpec:
        """The spec of one result key (ValueError naming the profile's keys when unknown)."""
        for m in self.metrics:
            if m.key == key:
                return m
        raise ValueError(f"profile {self.name!r} has no metric {key!r}; its metrics are {', '.join(self.keys)}")


# --- spec builders ------------------------------------------------------------------------------------------
_CONSTANT = "a source or the fused image is constant, so a correlation is 0/0"


def _en_spec() -> MetricSpec:
    return MetricSpec("EN", lambda f, a, b: _en.entropy(f), True, "entropy of F's 256-bin histogram (bits)")


def _mi_spec(conv: str) -> MetricSpec:
    unit = "bits" if conv == "tang" else "nats"
    return MetricSpec("MI", lambda f, a, b: _en.mutual_information(f, a, b, conv), True,
                      f"MI(IR,F) + MI(VIS,F) in {unit} ({conv})")


def _sf_spec(conv: str) -> MetricSpec:
    rgb = None
    if conv == "vifb":
        # metricsSpatial_frequency.m indexes an m x n x 3 image as m x 3n: the channels side by side.
        def rgb(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
            return _gr.spatial_frequency(np.ascontiguousarray(np.hstack([f[..., k] for k in range(3)])), "vifb")
    return MetricSpec("SF", lambda f, a, b: _gr.spatial_frequency(f, conv), True, f"spatial frequency ({conv})",
                      _min_size(2, 2, "SF"), rgb_compute=rgb)


def _sd_spec() -> MetricSpec:
    return MetricSpec("SD", lambda f, a, b: _st.standard_deviation(f), True, "standard deviation of F")


def _ag_spec(conv: str) -> MetricSpec:
    return MetricSpec("AG", lambda f, a, b: _gr.average_gradient(f, conv), True, f"average gradient ({conv})",
                      _min_size(2, 2, "AG"))


def _mse_spec(conv: str) -> MetricSpec:
    scale = {"tang": "[0,1] scale", "cddfuse": "0-255 scale", "vifb": "VIFB 'RMSE', size-dependent"}[conv]
    return MetricSpec("MSE", lambda f, a, b: _st.mean_squared_error(f, a, b, conv), False,
                      f"mean squared error to the sources ({scale})")


def _psnr_spec(conv: str) -> MetricSpec:
    nan = "F is all zero and equals both sources (0/0)" if conv == "cddfuse" else "undefined for these inputs"
    return MetricSpec("PSNR", lambda f, a, b: _st.psnr(f, a, b, conv), True, f"PSNR in dB ({conv})",
                      nan_reason=nan)


def _cc_spec() -> MetricSpec:
    return MetricSpec("CC", lambda f, a, b: _st.correlation_coefficient(f, a, b), True,
                      "mean Pearson correlation of F with the sources", nan_reason=_CONSTANT)


def _scd_spec() -> MetricSpec:
    return MetricSpec("SCD", lambda f, a, b: _st.scd(f, a, b), True, "sum of the correlations of differences",
                      nan_reason="a source or a difference image F - source is constant, so a correlation is 0/0")


def _vif_spec(conv: str) -> MetricSpec:
    return MetricSpec("VIF", lambda f, a, b: _vif.vif(f, a, b, conv), True, "VIF-P summed over the sources",
                      _vif_size, nan_reason="a source has no local variance at any scale (VIF is 0/0)")


def _qabf_spec(conv: str) -> MetricSpec:
    return MetricSpec("Qabf", lambda f, a, b: _qa.qabf(f, a, b, conv), True,
                      f"Xydeas-Petrovic edge preservation ({conv})",
                      nan_reason="neither source has any edge (sum of edge strengths is 0)")


def _nabf_spec() -> MetricSpec:
    return MetricSpec("Nabf", lambda f, a, b: _qa.nabf(f, a, b), False, "Kumar's modified fusion artifacts",
                      _min_size(2, 2, "Nabf"))


def _ssim_spec(conv: str) -> MetricSpec:
    size = {"tang": _any_size, "vifb": _min_size(11, 11, "SSIM (11x11 'valid' window)"),
            "std": _min_size(11, 11, "SSIM (11x11 'valid' window)"),
            "cddfuse": _min_size(7, 7, "SSIM (7x7 window)")}[conv]
    how = {"tang": "mean", "vifb": "sum", "cddfuse": "sum", "std": "mean"}[conv]
    return MetricSpec("SSIM", lambda f, a, b: _ss.ssim(f, a, b, conv), True,
                      f"SSIM of F with the sources, {how} over the two ({conv})", size)


def _ms_ssim_tang_spec() -> MetricSpec:
    side = _ss.mef_min_side()
    return MetricSpec("MS_SSIM", lambda f, a, b: _ss.mef_ms_ssim(f, a, b), True,
                      "MEF-MS-SSIM with {IR, VIS} as the source stack",
                      _min_size(side, side, "MS_SSIM (MEF, 3 scales)"),
                      nan_reason="a scale's mean MEF-SSIM is negative (MATLAB would return a complex number)")


def _ms_ssim_std_spec() -> MetricSpec:
    side = _ss.ms_ssim_std_min_side()
    return MetricSpec("MS_SSIM", lambda f, a, b: _ss.ms_ssim_std(f, a, b), True,
                      "Wang 5-scale MS-SSIM (L = 255), mean over the sources",
                      _min_size(side, side, "MS_SSIM (5 scales)"))


def _ce_spec() -> MetricSpec:
    return MetricSpec("CE", lambda f, a, b: _en.cross_entropy(f, a, b), False,
                      "histogram cross entropy of the sources to F (bits), mean over the two")


def _ei_spec() -> MetricSpec:
    return MetricSpec("EI", lambda f, a, b: _gr.edge_intensity(f), True, "mean Sobel gradient magnitude of F")


def _psnr_paper_spec() -> MetricSpec:
    return MetricSpec("PSNR_paper", lambda f, a, b: _st.psnr_paper(f, a, b), True,
                      "10 log10(255 / sqrt(MSE01)): the TG-ECNet paper's PSNR scale, not a textbook PSNR")


_TANG_QUIRKS = (
    "MI: bits; the joint histogram indexes with saturating uint8 + 1, so levels 254 and 255 share a joint bin "
    "(Hab.m) while the marginal entropies keep them apart.",
    "MSE on the [0, 1] scale; PSNR = 20 log10(255 / sqrt(MSE01)) mixes a 255 peak with that MSE "
    "(PSNR + 10 log10(MSE01) = 48.13 dB).",
    "SSIM: MATLAB ssim defaults on 0-255 doubles, so L = 1 (C1 = 1e-4, C2 = 9e-4); replicate padding; "
    "the mean of ssim(F, IR) and ssim(F, VIS).",
    "Q_abf: G = g_F where g_S == g_F (instead of 1), as in every public copy.",
    "VIF is the sum (not the mean) of VIFP(IR, F) and VIFP(VIS, F); SCD is a sum of two correlations.",
    "AG divides by (H-1)(W-1) although MATLAB gradient yields H x W values.",
    "MS_SSIM is MEF-MS-SSIM (a multi-exposure-fusion metric: structure only, 3 scales), not Wang's MS-SSIM.",
)


def _build() -> dict[str, Profile]:
    tang_ref = "Linfeng-Tang/Evaluation-for-Image-Fusion@0e87153 Evaluation/*.m (MATLAB)"
    vifb_ref = "xingchenzhang/VIFB@22b2ea9 metrics/metrics*.m (MATLAB), called metricsX(VI, IR, F)"
    vifb_metrics = (
        _en_spec(), _mi_spec("vifb"), _sf_spec("vifb"), _sd_spec(), _ag_spec("vifb"), _mse_spec("vifb"),
        _psnr_spec("vifb"), _qabf_spec("vifb"), _ssim_spec("vifb"), _ce_spec(), _ei_spec(),
    )
    vifb_quirks = (
        "MI: nats, after min-max stretching each image to 0-255 (int16 rounding).",
        "SF divides both squared-difference sums by H W.",
        "MSE ('RMSE') = (sqrt(SSE(F,VIS)) + sqrt(SSE(F,IR))) / (2 H W): not an RMSE, shrinks with image size; "
        "PSNR = 20 log10(255 / sqrt(that)).",
        "Q_abf runs on 255 x the 0-255 image (255*im2double of a double), which only matters where g_S == g_F.",
        "SSIM is the sum (not the mean) of two textbook SSIMs ('valid' region, L = 255).",
        "CE skips histogram levels empty in either image, so it can be negative.",
    )
    profiles = [
        Profile(
            "tang", tang_ref,
            "Default. The MATLAB suite most IR/VIS fusion papers report (EN ... MS_SSIM).",
            (_en_spec(), _mi_spec("tang"), _sf_spec("tang"), _sd_spec(), _ag_spec("tang"), _mse_spec("tang"),
             _psnr_spec("tang"), _cc_spec(), _scd_spec(), _vif_spec("tang"), _qabf_spec("tang"), _nabf_spec(),
             _ssim_spec("tang"), _ms_ssim_tang_spec()),
            _TANG_QUIRKS,
        ),
        Profile("vifb", vifb_ref, "VIFB's metrics on gray images (RGB converted with rgb2gray first).",
                vifb_metrics, vifb_quirks),
        Profile(
            "vifb_rgb", vifb_ref,
            "VIFB's metrics as its code runs them on an RGB fused image: each metric is the mean over the "
            "channels of metric(F_k, IR, VIS_k) (VIS_k = VIS when VIS is gray). A gray fused image is "
            "evaluated as in 'vifb'.",
            vifb_metrics,
            vifb_quirks + (
                "SF on RGB: the m x n x 3 image is read as m x 3n (channels side by side, including the two "
                "jumps between channels) and divided by 3 m n.",
            ),
            rgb_per_channel=True,
        ),
        Profile(
            "cddfuse", "Zhaozixiang1228/MMIF-CDDFuse@fd8da1f utils/Evaluator.py (scikit-image 0.19, float32)",
            "CDDFuse's Evaluator (Python).",
            (_en_spec(), _mi_spec("cddfuse"), _sf_spec("cddfuse"), _sd_spec(), _ag_spec("cddfuse"),
             _mse_spec("cddfuse"), _psnr_spec("cddfuse"), _cc_spec(), _scd_spec(), _vif_spec("cddfuse"),
             _qabf_spec("cddfuse"), _ssim_spec("cddfuse")),
            (
                "MI in nats (sklearn mutual_info_score).",
                "AG divides by H W.",
                "MSE on the 0-255 scale; PSNR = 10 log10(max(F)^2 / MSE).",
                "VIF: a source term that is 0/0 (no variance) counts as 1.0.",
                "SSIM: the sum of two scikit-image SSIMs on float32 images with defaults: 7x7 uniform window, "
                "sample covariance, data_range silently 2 (the float range -1..1). Reproduced in float32 with "
                "scipy's uniform_filter, exactly as scikit-image computes it.",
                "The reference computes in float32; other metrics are computed here in float64, within ~1e-7 "
                "relative of its float32 values.",
            ),
        ),
        Profile(
            "paper", tang_ref + " + the TG-ECNet paper's PSNR scale",
            "The five metrics of the TG-ECNet paper's tables (CC, MSE, PSNR, N_abf, MS-SSIM) with tang's "
            "conventions; its PSNR is reported as PSNR_paper = 10 log10(255 / sqrt(MSE01)).",
            (_cc_spec(), _mse_spec("tang"), _psnr_paper_spec(), _nabf_spec(), _ms_ssim_tang_spec()),
            ("PSNR_paper = 10 log10(255 / sqrt(MSE01)) is half of tang's PSNR; no public code computes it, but it "
             "is the one formula that reproduces the paper's MSE/PSNR pairs.",),
        ),
        Profile(
            "std", "textbook definitions (Wang et al. 2004/2003; PSNR with a 255 peak)",
            "Textbook metrics on the 0-255 scale, averaged over the two sources.",
            (MetricSpec("PSNR", lambda f, a, b: _st.psnr(f, a, b, "std"), True,
                        "10 log10(255^2 / MSE255), MSE255 averaged over the sources"),
             _ssim_spec("std"), _ms_ssim_std_spec()),
            ("MS_SSIM is computed in float64; pytorch_msssim (float32) differs by ~2e-6 relative.",),
        ),
    ]
    return {p.name: p for p in profiles}


PROFILES: dict[str, Profile] = _build()
DEFAULT_PROFILE = "tang"


def profiles() -> tuple[str, ...]:
    """Names of the available profiles (``tang`` first: the default)."""
    return tuple(PROFILES)


def get_profile(name: str) -> Profile:
    """The :class:`Profile` called ``name`` (ValueError listing the available names when unknown)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(unknown_name("metric profile", name, PROFILES)) from None
