"""The pixels of a baseline JPEG round trip (4:2:0, islow DCT, fancy upsampling) in numpy, step by step.

The statement of what ``demmi_rf/_jpegfast.c`` computes and what libjpeg-turbo's lossy stages compute with their
defaults (ITU-T T.81 with the IJG library's integer choices); ``tests/test_jpeg_kernel.py`` checks that it gives
OpenCV's bytes. Every array is int64, so no step overflows.

Encoder: RGB -> YCbCr (JFIF, 16-bit fixed point: jccolor), luma padded by edge replication to whole 8x8 blocks,
chroma from the full-resolution planes padded to an even row count and a multiple of 16 columns, downsampled by
2x2 sums with the bias 1, 2, 1, 2, ... (jcsample h2v2) and padded to whole blocks by repeating its last row; each
block level-shifted by -128, transformed by the islow forward DCT (jfdctint: CONST_BITS 13, PASS1_BITS 2; output 8
times the orthonormal DCT) and divided by 8q with rounding half away from zero (q: the IJG table scaled to the
quality). Decoder: the quantised coefficients times q, the islow inverse DCT (jidctint) with libjpeg's range-limit
table, h2v2 "fancy" upsampling (jdsample: 3/4 near + 1/4 far sample in each direction, biases 8 and 7, edges
replicated), YCbCr -> RGB (jdcolor, 16-bit fixed point, clamped to [0, 255]).
"""

from __future__ import annotations

import numpy as np

#: the IJG (ITU-T T.81 Annex K) luminance and chrominance quantisation tables, row-major
LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]).reshape(8, 8)
CHROMA = np.array([17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                   24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32).reshape(8, 8)

#: FIX(c) = round(c * 2^13) of the islow constants
C0298, C0390, C0541, C0765, C0899, C1175 = 2446, 3196, 4433, 6270, 7373, 9633
C1501, C1847, C1961, C2053, C2562, C3072 = 12299, 15137, 16069, 16819, 20995, 25172


def fix16(x: float) -> int:
    """A colour-conversion constant in 16-bit fixed point, as libjpeg's FIX(x)."""
    return int(x * 65536 + 0.5)


def quality_table(basic: np.ndarray, q: int) -> np.ndarray:
    """jpeg_set_quality with force_baseline: ``basic`` scaled by 5000/q (q < 50) or 200 - 2q percent, in [1, 255]."""
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((basic * scale + 50) // 100, 1, 255)


def descale(x: np.ndarray, n: int) -> np.ndarray:
    """(x + 2^(n-1)) >> n: libjpeg's DESCALE, a right shift rounding half up."""
    return (x + (1 << (n - 1))) >> n


def rgb_to_ycc(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y = (0.299 R + 0.587 G + 0.114 B), Cb, Cr (+128) in 16-bit fixed point; Y rounds half up, chroma with
    ONE_HALF - 1."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    half, off = 1 << 15, 128 << 16
    y = (fix16(0.299) * r + fix16(0.587) * g + fix16(0.114) * b + half) >> 16
    cb = (-fix16(0.16874) * r - fix16(0.33126) * g + fix16(0.5) * b + off + half - 1) >> 16
    cr = (fix16(0.5) * r - fix16(0.41869) * g - fix16(0.08131) * b + off + half - 1) >> 16
    return y, cb, cr


def fdct_1d(d: list[np.ndarray], first_pass: bool) -> list[np.ndarray]:
    """One 8-point islow forward DCT on ``d[0..7]`` (Loeffler-Ligtenberg-Moschytz). The first pass scales the even
    outputs 0 and 4 by 4 and descales the others by 2^11; the second descales them by 4 and 2^15."""
    t0, t7 = d[0] + d[7], d[0] - d[7]
    t1, t6 = d[1] + d[6], d[1] - d[6]
    t2, t5 = d[2] + d[5], d[2] - d[5]
    t3, t4 = d[3] + d[4], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    n = 11 if first_pass else 15
    out: list[np.ndarray] = [np.empty(0)] * 8
    out[0] = (t10 + t11) << 2 if first_pass else descale(t10 + t11, 2)
    out[4] = (t10 - t11) << 2 if first_pass else descale(t10 - t11, 2)
    z1 = (t12 + t13) * C0541
    out[2] = descale(z1 + t13 * C0765, n)
    out[6] = descale(z1 - t12 * C1847, n)
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * C1175
    t4, t5, t6, t7 = t4 * C0298, t5 * C2053, t6 * C3072, t7 * C1501
    z1, z2 = z1 * -C0899, z2 * -C2562
    z3, z4 = z3 * -C1961 + z5, z4 * -C0390 + z5
    out[7] = descale(t4 + z1 + z3, n)
    out[5] = descale(t5 + z2 + z4, n)
    out[3] = descale(t6 + z2 + z3, n)
    out[1] = descale(t7 + z1 + z4, n)
    return out


def idct_1d(d: list[np.ndarray], first_pass: bool) -> list[np.ndarray]:
    """One 8-point islow inverse DCT on ``d[0..7]``: descaled by 2^11 in the first pass, by 2^18 in the second."""
    z1 = (d[2] + d[6]) * C0541
    e2, e3 = z1 - d[6] * C1847, z1 + d[2] * C0765
    e0, e1 = (d[0] + d[4]) << 13, (d[0] - d[4]) << 13
    t10, t13, t11, t12 = e0 + e3, e0 - e3, e1 + e2, e1 - e2
    o0, o1, o2, o3 = d[7], d[5], d[3], d[1]
    z1, z2, z3, z4 = o0 + o3, o1 + o2, o0 + o2, o1 + o3
    z5 = (z3 + z4) * C1175
    o0, o1, o2, o3 = o0 * C0298, o1 * C2053, o2 * C3072, o3 * C1501
    z1, z2 = z1 * -C0899, z2 * -C2562
    z3, z4 = z3 * -C1961 + z5, z4 * -C0390 + z5
    o0, o1, o2, o3 = o0 + z1 + z3, o1 + z2 + z4, o2 + z2 + z3, o3 + z1 + z4
    n = 11 if first_pass else 18
    return [descale(x, n) for x in (t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3)]


def range_limit(v: np.ndarray) -> np.ndarray:
    """libjpeg's post-IDCT table: clamp(v + 128, 0, 255) for v in [-512, 511], periodic with period 1024."""
    i = v & 1023
    return np.where(i < 128, i + 128, np.where(i < 512, 255, np.where(i < 896, 0, i - 896)))


def code_plane(plane: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Encode and decode every 8x8 block of ``plane`` (rows and columns multiples of 8) with the table ``q``."""
    h, w = plane.shape
    blocks = (plane.astype(np.int64) - 128).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    rows = np.stack(fdct_1d([blocks[:, :, k] for k in range(8)], True), axis=2)
    coef = np.stack(fdct_1d([rows[:, k, :] for k in range(8)], False), axis=1)
    div = 8 * q[None]
    mag = (np.abs(coef) + div // 2) // div
    coef = np.where(coef < 0, -mag, mag) * q[None]
    cols = np.stack(idct_1d([coef[:, k, :] for k in range(8)], True), axis=1)
    out = range_limit(np.stack(idct_1d([cols[:, :, k] for k in range(8)], False), axis=2))
    return out.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def pad_to(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """``a`` grown to h x w by repeating its last row and column."""
    return np.pad(a, ((0, h - a.shape[0]), (0, w - a.shape[1])), mode="edge")


def downsample(c: np.ndarray, h: int, w: int) -> np.ndarray:
    """A chroma plane of an h x w image, 2x2-summed with the bias 1, 2, 1, 2, ... and padded to whole blocks."""
    full = pad_to(c, h + (h & 1), -(-w // 16) * 16)
    wc = full.shape[1] // 2
    bias = np.tile([1, 2], wc)[:wc][None]
    down = (full[0::2, 0::2] + full[0::2, 1::2] + full[1::2, 0::2] + full[1::2, 1::2] + bias) >> 2
    return pad_to(down, -(-down.shape[0] // 8) * 8, wc)


def fancy_upsample(c: np.ndarray) -> np.ndarray:
    """h2v2 fancy upsampling: s = 3 near + far row (the row above for an even output row, below for an odd one),
    then (3 s + left + 8) >> 4 and (3 s + right + 7) >> 4 per column, the edges repeated (4 s at the ends)."""
    up, down = np.vstack([c[:1], c[:-1]]), np.vstack([c[1:], c[-1:]])
    out = np.empty((2 * c.shape[0], 2 * c.shape[1]), np.int64)
    for v, far in ((0, up), (1, down)):
        s = 3 * c + far
        left, right = np.hstack([s[:, :1], s[:, :-1]]), np.hstack([s[:, 1:], s[:, -1:]])
        even, odd = (3 * s + left + 8) >> 4, (3 * s + right + 7) >> 4
        even[:, 0] = (4 * s[:, 0] + 8) >> 4
        odd[:, -1] = (4 * s[:, -1] + 7) >> 4
        out[v::2, 0::2], out[v::2, 1::2] = even, odd
    return out


def ycc_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """R = Y + 1.402 Cr', G = Y - 0.34414 Cb' - 0.71414 Cr', B = Y + 1.772 Cb' (Cb' = Cb - 128, ...), 16-bit fixed
    point, clamped to [0, 255]."""
    half = 1 << 15
    b, r = cb - 128, cr - 128
    red = y + ((fix16(1.402) * r + half) >> 16)
    green = y + ((-fix16(0.34414) * b + half - fix16(0.71414) * r) >> 16)
    blue = y + ((fix16(1.772) * b + half) >> 16)
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def roundtrip(rgb: np.ndarray, q: int) -> np.ndarray:
    """The decoded pixels of the baseline JPEG of the uint8 RGB image ``rgb`` at quality ``q``."""
    h, w = rgb.shape[:2]
    y, cb, cr = rgb_to_ycc(rgb)
    luma = code_plane(pad_to(y, -(-h // 8) * 8, -(-w // 8) * 8), quality_table(LUMA, q))[:h, :w]
    qc = quality_table(CHROMA, q)
    chroma = [fancy_upsample(code_plane(downsample(c, h, w), qc)[:(h + 1) // 2, :(w + 1) // 2])[:h, :w]
              for c in (cb, cr)]
    return ycc_to_rgb(luma, *chroma)
