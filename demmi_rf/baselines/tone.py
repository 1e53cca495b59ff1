"""Point-wise inverses of the tone atoms: the Retinex tone curve (``lowlight``, ``overexposure``) and the IR
linear contrast (``lowcontrast``).

Both atoms are global, monotone maps of the grey level whose *form* is public (the atom's spec) and whose
parameters are drawn per sample from ranges that are public in the dataset card. The cascade inverts the map at
the **mean of each range** (never the drawn values), as a 256-entry look-up table on the uint8 image:

* tone curve (:mod:`demmi_rf.degradations.exposure`, ``y = 255·k·(x/255)^γ``; the Retinex illumination
  rescaling of Lv et al., IJCV 2021, and of Wei et al., BMVC 2018) is inverted by

      x̂ = 255 · (y / (255·k̄))^(1/γ̄)

  the classical gamma / illumination correction of low-light enhancement (e.g. the ``L^γ`` adjustment of
  Guo, Li & Ling, *LIME: Low-light image enhancement via illumination map estimation*, IEEE TIP 2017, here with
  the illumination map being the image itself, as in the synthesis). For over-exposure, grey levels burnt out
  to 255 come back as ``255·k̄^(−1/γ̄)`` (everything above that level was lost by the sensor's clip);
* linear contrast (:mod:`demmi_rf.degradations.ir_contrast`, ``y = α·x + β``) is inverted by the contrast
  stretch ``x̂ = (y − β̄) / ᾱ``.

Each table entry is computed in float64 and rounded half away from zero after clipping to [0, 255]; the image is
mapped through it with ``cv2.LUT`` (a pure gather: the same bytes wherever the table is the same; the table
uses libm's ``pow``, whose last-ulp differences between CPUs can only move an entry that lies within 1e-13 of a
rounding tie).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _check_image(img: np.ndarray, what: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or not (
            img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"{what} expects a uint8 HxW or HxWx3 image, got "
                         f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")


def _table(values: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(values, 0.0, 255.0) + 0.5).astype(np.uint8)


def inverse_tone_table(gain: float, gamma: float) -> np.ndarray:
    """T[v] = round(clip(255·(v / (255·gain))^(1/gamma))), v = 0..255 (uint8): the inverse of the tone curve
    ``255·gain·(x/255)^gamma``. ``ValueError`` unless gain > 0 and gamma > 0 are finite."""
    if not (math.isfinite(gain) and math.isfinite(gamma) and gain > 0 and gamma > 0):
        raise ValueError(f"the inverse tone curve needs finite gain > 0 and gamma > 0, got gain={gain!r}, "
                         f"gamma={gamma!r}")
    v = np.arange(256, dtype=np.float64) / (255.0 * gain)
    return _table(255.0 * np.power(v, 1.0 / gamma))


def invert_tone(img: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    """Undo ``y = 255·gain·(x/255)^gamma`` on a uint8 gray or RGB image (every channel; uint8 out)."""
    _check_image(img, "invert_tone")
    return cv2.LUT(np.ascontiguousarray(img), inverse_tone_table(gain, gamma))


def inverse_linear_table(alpha: float, beta: float) -> np.ndarray:
    """T[v] = round(clip((v − beta) / alpha)), v = 0..255 (uint8): the inverse of ``y = alpha·x + beta``.
    ``ValueError`` unless alpha > 0 and beta are finite."""
    if not (math.isfinite(alpha) and math.isfinite(beta) and alpha > 0):
        raise ValueError(f"the contrast stretch needs a finite alpha > 0 and a finite beta, got alpha={alpha!r}, "
                         f"beta={beta!r}")
    return _table((np.arange(256, dtype=np.float64) - beta) / alpha)


def invert_linear(img: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Undo ``y = alpha·x + beta`` on a uint8 gray or RGB image (the contrast stretch; uint8 out)."""
    _check_image(img, "invert_linear")
    return cv2.LUT(np.ascontiguousarray(img), inverse_linear_table(alpha, beta))
