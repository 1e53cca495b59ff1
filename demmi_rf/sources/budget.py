"""Memory a build will need, estimated before it starts, and a clear refusal when it cannot fit.

A build worker holds one pair at a time: the decoded pair, the float work buffers of the degradations and the
outputs of every setting of the pair until they are written. Its peak is modelled as

    per_worker = largest_pixels * (BASE_BYTES_PER_PIXEL + BYTES_PER_PIXEL_PER_SETTING * n_settings)
    total      = per_worker * workers

with ``largest_pixels`` the height x width of the largest pair (read from the image headers, nothing decoded)
and the two constants measured: the peak RSS of a one-pair build over the interpreter's baseline, for square
random pairs of 512 and 1536 px (the slope between the two sizes, so fixed costs cancel), was 38 to 39 bytes per
pixel with one or two settings and 80 bytes per pixel with the 16 settings of ``demmi-rf-v1`` (2 shared cores,
Linux, CPython 3.11, numpy 2.4, OpenCV 5.0). The constants round these up: 40 + 4 per setting (104 bytes per pixel
for v1). A pool worker also costs its interpreter and libraries (about 200 MB), added per worker as
``WORKER_OVERHEAD_BYTES``.

The build is refused when ``total`` exceeds the memory available (``MemAvailable`` of ``/proc/meminfo``, or less
under a cgroup limit): the message gives the numbers and the worker count that would fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import DemmiError, MemoryBudgetError
from .images import DEFAULT_MAX_PIXELS, image_size
from .records import PairRecord

#: measured peak bytes per pixel of the largest pair, independent of the settings (module docstring)
BASE_BYTES_PER_PIXEL = 40
#: measured peak bytes per pixel of the largest pair, per setting built (module docstring)
BYTES_PER_PIXEL_PER_SETTING = 4
#: a pool worker's interpreter, numpy, OpenCV and h5py
WORKER_OVERHEAD_BYTES = 200 * 2**20


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimated peak memory of a build (module docstring) and the memory available (None: unknown)."""

    largest_pixels: int
    n_settings: int
    workers: int
    bytes_per_pixel: int
    per_worker: int
    total: int
    available: int | None

    @property
    def fits(self) -> bool:
        """True when the estimate fits in the memory available (or that is unknown)."""
        return self.available is None or self.total <= self.available

    @property
    def workers_that_fit(self) -> int:
        """How many workers the available memory holds (``workers`` when unknown); 0 when not even one."""
        if self.available is None:
            return self.workers
        return int(self.available // self.per_worker) if self.per_worker else self.workers


def estimate_build_memory(largest_pixels: int, n_settings: int, workers: int, available: int | None = None,
                          base: int = BASE_BYTES_PER_PIXEL, per_setting: int = BYTES_PER_PIXEL_PER_SETTING,
                          overhead: int = WORKER_OVERHEAD_BYTES) -> MemoryEstimate:
    """Peak memory of a build: ``per_worker = largest_pixels * (base + per_setting * n_settings) + overhead``,
    ``total = per_worker * workers`` (module docstring). Pure: ``available`` is passed in."""
    for name, v in (("largest_pixels", largest_pixels), ("n_settings", n_settings), ("workers", workers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    bpp = base + per_setting * n_settings
    per_worker = largest_pixels * bpp + overhead
    return MemoryEstimate(largest_pixels, n_settings, workers, bpp, per_worker, per_worker * workers, available)


def available_memory() -> int | None:
    """Bytes of memory this process can still use: ``MemAvailable`` (Linux), lowered to the room left under a
    cgroup v2 limit; None where neither is known."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def largest_pair_pixels(records: Iterable[PairRecord], max_pixels: int = DEFAULT_MAX_PIXELS,
                        threads: int = 4) -> int:
    """The largest height x width among the pairs' VIS image headers (nothing decoded; about 0.2 ms a header).

    Only pairs whose two sides have equal sizes are degraded, so one side gives the size of every pair that costs
    memory; an oversized IR of a pair is refused from its header, a mismatched one after decoding that image
    alone. Files that cannot be read, and images above ``max_pixels`` (refused by the readers anyway), do not
    count: the build reports them."""
    paths = [r.vis_path for r in records]

    def pixels(path: Path) -> int:
        try:
            w, h = image_size(path, max_pixels)
        except (DemmiError, OSError):
            return 0
        return w * h if w * h <= max_pixels else 0

    if not paths:
        return 0
    largest = 0
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(paths)))) as pool:
        # in batches: Executor.map submits every task at once, a Future (about 1.9 KB) per pair held to the end
        for start in range(0, len(paths), _HEADER_BATCH):
            largest = max(largest, *pool.map(pixels, paths[start:start + _HEADER_BATCH]))
    return largest


#: image headers read per batch by :func:`largest_pair_pixels` (bounds the pending futures)
_HEADER_BATCH = 1024


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check_build_memory(records: Sequence[PairRecord], n_settings: int, workers: int,
                       max_pixels: int = DEFAULT_MAX_PIXELS, available: int | None = None) -> MemoryEstimate:
    """Estimate a build's peak memory from the pairs' headers (:func:`estimate_build_memory`) and raise
    :class:`~demmi_rf.errors.MemoryBudgetError` with the numbers when it exceeds ``available`` (default:
    :func:`available_memory`)."""
    largest = largest_pair_pixels(records, max_pixels)
    est = estimate_build_memory(largest, n_settings, workers, available if available is not None
                                else available_memory())
    if not est.fits:
        fit = est.workers_that_fit
        hint = (f"use --workers {fit}" if fit >= 1 else
                "even one worker does not fit: free memory, or build fewer settings (--degradations)")
        raise MemoryBudgetError(
            f"the build would need about {_gb(est.total)} of memory but {_gb(est.available or 0)} is available: "
            f"{workers} worker(s) x ({largest} pixels in the largest pair x {est.bytes_per_pixel} bytes per pixel "
            f"for {n_settings} setting(s) + {_gb(WORKER_OVERHEAD_BYTES)} per worker) = {_gb(est.total)}; {hint} "
            "(the estimate is explained in docs/sources.md)")
    return est


__all__ = [
    "BASE_BYTES_PER_PIXEL", "BYTES_PER_PIXEL_PER_SETTING", "WORKER_OVERHEAD_BYTES", "MemoryEstimate",
    "available_memory", "check_build_memory", "estimate_build_memory", "largest_pair_pixels",
]
