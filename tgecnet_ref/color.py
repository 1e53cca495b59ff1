"""Colour handling for fusion on the luminance: BT.601 YCbCr, and recolouring with the *degraded* input's chroma.

The model fuses the VIS luminance Y with IR. To give a colour result, the fused Y is combined with the chroma
(Cb, Cr) of the degraded VIS input that the method receives at test time, low-pass filtered with a Gaussian of
``sigma`` pixels to suppress the chroma part of sensor noise. The public TG-ECNet code instead takes Cb/Cr from
the *clean* VIS ground truth, which a method cannot have at test time (and which leaks the reference into
colour metrics); we never read the clean image here.
"""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 full range (JPEG/JFIF), values on the 0-255 scale
_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])
_YCBCR_TO_RGB = np.array([[1.0, 0.0, 1.402],
                          [1.0, -0.344136, -0.714136],
                          [1.0, 1.772, 0.0]])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``H x W x 3`` RGB (0-255) -> float64 YCbCr: ``Y = .299R + .587G + .114B``, ``Cb, Cr`` offset by 128."""
    out = np.asarray(rgb, dtype=np.float64) @ _RGB_TO_YCBCR.T
    out[..., 1:] += 128.0
    return out


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (float64, not clipped)."""
    x = np.asarray(ycc, dtype=np.float64).copy()
    x[..., 1:] -= 128.0
    return x @ _YCBCR_TO_RGB.T


def smooth(channel: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of a 2-D float array (OpenCV, kernel size ``2*ceil(3 sigma)+1``, reflect-101 border);
    ``sigma <= 0`` returns the input."""
    if sigma <= 0:
        return channel
    import cv2

    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(np.asarray(channel, dtype=np.float64), (k, k), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def recolour(fused_y: np.ndarray, degraded_vis_rgb: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """uint8 RGB from a fused luminance (0-255, ``H x W``) and the smoothed chroma of the degraded VIS input."""
    ycc = rgb_to_ycbcr(degraded_vis_rgb)
    ycc[..., 0] = fused_y
    ycc[..., 1] = smooth(ycc[..., 1], sigma)
    ycc[..., 2] = smooth(ycc[..., 2], sigma)
    return np.clip(np.rint(ycbcr_to_rgb(ycc)), 0, 255).astype(np.uint8)
