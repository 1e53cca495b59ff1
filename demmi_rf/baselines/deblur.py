"""Non-blind deconvolution of the ``defocus`` atom: the disk PSF of the benchmark spec, Wiener and
Richardson-Lucy.

PSF (benchmark spec section 2): a disk of radius ``r`` (``x² + y² ≤ r²``, normalised to sum 1) convolved with a
3x3 Gaussian of σ = 0.5 (also normalised), i.e. a ``(2r+3) x (2r+3)`` kernel. The synthesis draws ``r`` per
sample; the ``cascade`` baseline knows only *that* the sample is defocused, so it deconvolves with the PSF of the
mean radius of the recipe's range (4.5 pixels for v1's {3, 4, 5, 6}), never with the drawn radius.

* Wiener filter (N. Wiener 1949; e.g. Gonzalez & Woods, *Digital Image Processing*, section 5.8):
  ``X̂ = conj(H)·Y / (|H|² + K)`` in the 2-D DFT domain with a constant noise-to-signal ratio ``K``. The image is
  padded by reflection (by 3x the kernel size) before the DFT so that the periodic boundary does not ring,
  and cropped back.
* Richardson-Lucy (W. H. Richardson, JOSA 1972; L. B. Lucy, AJ 1974), the maximum-likelihood deconvolution under
  Poisson noise: ``x_{k+1} = x_k · (K̃ ∗ (y / (K ∗ x_k)))`` with ``K̃`` the flipped kernel, started from
  ``x_0 = y``, with reflect-101 borders (the synthesis's border mode) and a small floor on the denominator.

Motion blur (the ``motion`` atom, :mod:`demmi_rf.degradations.motion`): the PSF is the atom's own line kernel
``K_{L,θ}`` (L cells of a digital line, 1/L each; :func:`motion_psf`). The cascade knows the recipe's range of
lengths, not the drawn one, so it takes ``L̄`` = the range's mean rounded to an integer; the angle is drawn over
a half turn, so it is **estimated from the image** (:func:`blur_direction`): a blur along the unit direction
``u`` averages the image along ``u`` and so removes most of its derivative energy along ``u`` (Yitzhaky &
Kopeika, *Identification of blur parameters from motion blurred images*, Graphical Models and Image Processing
59(5), 1997: the blur direction is the one of least directional-derivative energy). With the Sobel gradients
``g_x, g_y`` of the luminance and ``u = (cos θ, −sin θ)`` (rows point down),

    E(θ) = Σ_p (u · g(p))² = uᵀ S u,    S = Σ_p g(p) g(p)ᵀ (the structure tensor of the whole image)

is smallest for ``u`` the eigenvector of the smaller eigenvalue of ``S``: θ̂ = atan2(−u_y, u_x) mod 180,
rounded to an integer degree (closed form; no search). Natural images have anisotropic gradients of their own,
so the estimate is rough for short blurs (on the embedded build it is within about 10° for L ≥ 9). Then
Richardson-Lucy with ``K_{L̄,θ̂}`` (correlation, the synthesis's own convention).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

ALIAS_SIGMA = 0.5
WIENER_K = 0.01
RL_ITERATIONS = 10
_EPS = 1e-6


def defocus_psf(radius: float, alias_sigma: float = ALIAS_SIGMA) -> np.ndarray:
    """The spec's defocus kernel: a normalised disk ``x² + y² ≤ r²`` convolved with a normalised 3x3 Gaussian
    of ``alias_sigma`` (float64, odd size ``2·ceil(r) + 3``, sums to 1)."""
    if radius <= 0:
        raise ValueError(f"defocus radius must be positive, got {radius}")
    half = int(np.ceil(radius))
    y, x = np.mgrid[-half: half + 1, -half: half + 1]
    disk = (x * x + y * y <= radius * radius).astype(np.float64)
    disk /= disk.sum()
    g1 = np.exp(-(np.arange(-1, 2) ** 2) / (2.0 * alias_sigma ** 2))
    g = np.outer(g1, g1)
    g /= g.sum()
    psf = np.zeros((2 * half + 3, 2 * half + 3))
    for dy in range(3):
        for dx in range(3):
            psf[dy: dy + 2 * half + 1, dx: dx + 2 * half + 1] += g[dy, dx] * disk
    return psf / psf.sum()


def _channels(img: np.ndarray):
    f = np.asarray(img, dtype=np.float64)
    return [f] if f.ndim == 2 else [f[..., c] for c in range(f.shape[2])]


def _stack(chans: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    out = chans[0] if like.ndim == 2 else np.stack(chans, axis=-1)
    return np.floor(np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)


def wiener_deconvolve(img: np.ndarray, psf: np.ndarray, k: float = WIENER_K) -> np.ndarray:
    """Wiener deconvolution of a uint8 gray or RGB image (per channel) with ``psf`` and noise-to-signal ``k``;
    returns uint8 of the same shape."""
    pad = 3 * max(psf.shape)
    out = []
    for ch in _channels(img):
        h, w = ch.shape
        p = min(pad, h - 1, w - 1)
        big = cv2.copyMakeBorder(ch, p, p, p, p, cv2.BORDER_REFLECT_101)
        otf = np.zeros(big.shape)
        kh, kw = psf.shape
        otf[:kh, :kw] = psf
        otf = np.roll(otf, (-(kh // 2), -(kw // 2)), axis=(0, 1))
        H = np.fft.rfft2(otf)
        Y = np.fft.rfft2(big)
        X = np.conj(H) * Y / (np.abs(H) ** 2 + k)
        out.append(np.fft.irfft2(X, s=big.shape)[p: p + h, p: p + w])
    return _stack(out, np.asarray(img))


def richardson_lucy(img: np.ndarray, psf: np.ndarray, iterations: int = RL_ITERATIONS) -> np.ndarray:
    """Richardson-Lucy deconvolution of a uint8 gray or RGB image (per channel); returns uint8 of its shape."""
    flipped = psf[::-1, ::-1].copy()
    out = []
    for ch in _channels(img):
        y = ch + 1.0  # strictly positive data (RL is multiplicative); the offset is removed at the end
        x = y.copy()
        for _ in range(int(iterations)):
            blurred = cv2.filter2D(x, -1, psf, borderType=cv2.BORDER_REFLECT_101)
            ratio = y / np.maximum(blurred, _EPS)
            x = x * cv2.filter2D(ratio, -1, flipped, borderType=cv2.BORDER_REFLECT_101)
        out.append(x - 1.0)
    return _stack(out, np.asarray(img))


def motion_psf(length: int, angle: int) -> np.ndarray:
    """The ``motion`` atom's line kernel ``K_{L,θ}`` (float64, sums to 1; :func:`demmi_rf.degradations.motion.kernel`)
    as a correlation kernel for :func:`richardson_lucy` / :func:`wiener_deconvolve`. Imports the atom's module,
    which registers the ``motion`` atom (the cascade calls this only for samples that have it)."""
    from ..degradations.motion import kernel  # noqa: PLC0415 - the atom's kernel, read-only

    if isinstance(length, bool) or int(length) != length or length < 1:
        raise ValueError(f"motion PSF length must be a positive integer, got {length!r}")
    return kernel(int(length), int(angle)).astype(np.float64)


def blur_direction(img: np.ndarray) -> int:
    """The motion-blur direction θ̂ in integer degrees [0, 180) of a uint8 gray or RGB image: the direction of
    least Sobel-derivative energy of its luminance (the smaller eigenvector of the structure tensor; module
    docstring). A flat image (no gradient) gives 0."""
    from ._color import luminance  # noqa: PLC0415

    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"blur_direction expects a uint8 HxW or HxWx3 image, got {img.dtype} {img.shape}")
    f = luminance(img)
    gx = cv2.Sobel(f, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(f, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    sxx, syy, sxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    if sxx + syy == 0.0:
        return 0
    _, vectors = np.linalg.eigh(np.array([[sxx, sxy], [sxy, syy]]))
    ux, uy = vectors[:, 0]  # eigh sorts the eigenvalues ascending
    return int(math.floor(math.degrees(math.atan2(-uy, ux)) % 180.0 + 0.5)) % 180
