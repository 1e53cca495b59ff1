"""Histogram information metrics: EN (entropy), MI (mutual information) and VIFB's CE (cross entropy)."""

from __future__ import annotations

import numpy as np

from ._common import entropy_of_counts, gray_u8, hist256, joint_hist256, triple
from ._elementary import log, log2


def entropy(fused: np.ndarray) -> float:
    """EN: Shannon entropy of the 256-bin gray histogram, in bits.

    ``EN = -sum_l p_l log2 p_l`` over the occupied levels, ``p_l = h_l / (H W)``. Input: uint8 gray (0-255).
    No border handling (a global histogram). Reference: MATLAB ``entropy`` (used by tang); identical in
    VIFB (``metricsEntropy``) and CDDFuse (``Evaluator.EN``). Roberts et al., J. Appl. Remote Sens. 2008.
    """
    return entropy_of_counts(hist256(gray_u8(fused, "fused")))


def _kl_bits(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    p = p_counts / p_counts.sum()
    q = q_counts / q_counts.sum()
    m = (p > 0) & (q > 0)
    return float(np.sum(p[m] * log2(p[m] / q[m])))


def cross_entropy(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """CE (VIFB): mean over the two sources of the histogram cross entropy to the fused image, in bits.

    ``CE = (D(h_VIS || h_F) + D(h_IR || h_F)) / 2`` with ``D(p||q) = sum_l p_l log2(p_l / q_l)`` summed only over
    levels where both ``p_l`` and ``q_l`` are non-zero (VIFB skips the others, so D can be negative).
    Input: uint8 gray; global histograms, no border handling. Lower is better. Reference: VIFB
    ``metricsCross_entropy.m`` (Bulanon et al., Biosystems Engineering 2009). Not part of tang or cddfuse.
    """
    f, a, b = triple(fused, ir, vis)
    hf = hist256(f)
    return (_kl_bits(hist256(b), hf) + _kl_bits(hist256(a), hf)) / 2.0

CONVENTIONS = ("tang", "vifb", "cddfuse")


def _mi_tang(f: np.ndarray, s: np.ndarray) -> float:
    # Quirk (tang, Hab.m): the joint histogram indexes with `uint8 + 1`, which saturates at 255, so levels 254
    # and 255 share one joint bin while the marginal entropies (MATLAB `entropy`) keep them apart.
    h_joint = entropy_of_counts(joint_hist256(np.minimum(f, 254), np.minimum(s, 254)))
    return entropy_of_counts(hist256(s)) + entropy_of_counts(hist256(f)) - h_joint


def _minmax_levels(x: np.ndarray) -> np.ndarray:
    # VIFB mutinf: (x - min) / (max - min), then int16(. * 255) (round half away from zero); a constant image
    # becomes all zeros.
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.floor((x.astype(np.float64) - lo) / (hi - lo) * 255.0 + 0.5).astype(np.uint8)


def _mi_nats(f: np.ndarray, s: np.ndarray) -> float:
    joint = joint_hist256(s, f)
    h_s = entropy_of_counts(joint.reshape(256, 256).sum(axis=1), log)
    h_f = entropy_of_counts(joint.reshape(256, 256).sum(axis=0), log)
    return h_s + h_f - entropy_of_counts(joint, log)


def mutual_information(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray, convention: str = "tang") -> float:
    """MI = MI(IR, F) + MI(VIS, F) with ``MI(X, F) = H(X) + H(F) - H(X, F)`` from 256-level histograms.

    Input: uint8 gray (0-255); no border handling (global histograms). Reference: Qu, Zhang, Yan, Electronics
    Letters 2002. Conventions:

    - ``tang`` (Evaluation-for-Image-Fusion ``MI_evaluation.m`` + ``Hab.m``): entropies in **bits**; quirk: the
      joint histogram merges levels 254 and 255 (saturating ``uint8 + 1`` index), the marginals do not.
    - ``vifb`` (``metricsMutinf.m``): **nats**; each image first min-max stretched to 0-255 and rounded
      (``int16(255 (x - min) / (max - min))``; a constant image maps to 0).
    - ``cddfuse`` (``Evaluator.MI`` = ``sklearn.metrics.mutual_info_score``): **nats** on the raw levels.
    """
    f, a, b = triple(fused, ir, vis)
    if convention == "tang":
        return _mi_tang(f, a) + _mi_tang(f, b)
    if convention == "vifb":
        fl = _minmax_levels(f)
        return _mi_nats(fl, _minmax_levels(b)) + _mi_nats(fl, _minmax_levels(a))
    if convention == "cddfuse":
        return _mi_nats(f, a) + _mi_nats(f, b)
    raise ValueError(f"unknown MI convention {convention!r}; expected one of {CONVENTIONS}")
