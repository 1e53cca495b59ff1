"""Strip-wise evaluation of per-pixel metric maps.

The heavier metrics (MS_SSIM, VIF, SSIM, Q_abf, N_abf) build many full-size float64 temporaries. Computing them
over horizontal strips of a few dozen rows keeps every temporary small (cache-resident, reused by the allocator
instead of freshly page-faulted), which roughly halves their run time. Each strip is a view of the input rows it
needs, including the ``halo`` rows its 'valid' filters consume, so results equal the whole-image computation up
to the order of the final summation.

Memory: glibc's ``malloc`` serves blocks above a *dynamic* threshold (initially 128 kB) with fresh ``mmap``s and
trims the heap as soon as a little memory is free at its top, so a loop that allocates and frees a few MB of
temporaries per strip page-faults all of them in again on every strip (51k faults and about as much kernel as
user time per ``evaluate`` on a VM). :func:`warm_allocator` frees one 16 MB block once: by glibc's own rule this
raises the mmap threshold to 16 MB and the trim threshold to 32 MB, after which the temporaries are reused from
the heap. The process may then keep up to 32 MB of freed memory; elsewhere than glibc the call is a no-op in
effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Target number of pixels in one strip (about 320 kB per float64 temporary).
_STRIP_PIXELS = 40_000
_WARM = False


def warm_allocator() -> None:
    """Once per process, allocate and free a 16 MB block (raises glibc's dynamic malloc thresholds; see above)."""
    global _WARM
    if not _WARM:
        _WARM = True
        np.empty(16 << 20, dtype=np.uint8)  # never touched: one mmap and one munmap


def strip_sums(
    fn: Callable[..., Sequence[float]], arrays: Sequence[np.ndarray], halo: int
) -> np.ndarray:
    """Sum ``fn(*strips)`` over horizontal strips of ``arrays`` (equal-shape 2-D arrays).

    ``fn`` receives, for output rows ``r0..r1-1`` of a 'valid' map that is ``halo`` rows shorter than the inputs,
    the input rows ``r0 .. r1 + halo - 1`` of every array, and returns a tuple of partial sums over those output
    rows. The element-wise sum of the tuples is returned.
    """
    warm_allocator()
    h, w = arrays[0].shape
    out_h = h - halo
    rows = max(16, 2 * halo, _STRIP_PIXELS // max(w, 1))
    total: np.ndarray | None = None
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        part = np.asarray(fn(*(x[r0 : r1 + halo] for x in arrays)), dtype=np.float64)
        total = part if total is None else total + part
    if total is None:
        raise ValueError(f"strip_sums: no output rows (input height {h}, halo {halo})")
    return total
