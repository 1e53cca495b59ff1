"""Per-metric timings of ``demmi_rf.metrics`` on one 640x480 triple, against floors measured in the same run.

    python benchmarks/bench_metrics.py [--repeat 15] [--profile tang] [--all-cores]

The triple is the embedded MSRS pair ``00004N`` (RGB VIS, 1-channel IR) with the max-fusion of the two as the
fused image. Pinned to one core (``cv2.setNumThreads(1)`` and CPU affinity where the OS allows it) unless
``--all-cores``. Printed:

1. each metric of the profile (median of ``--repeat`` calls on gray inputs), and its ratio to a floor measured in
   the same rounds (floor, metrics and ``evaluate`` are timed back to back in every round; the ratio is the
   median of the per-round ratios): one float64 11x11 Gaussian filter (``cv2.GaussianBlur``) of the image;
2. ``evaluate(fused, ir, vis, profile)`` end to end (RGB -> gray included) against the 0.5 s budget of issue 6
   (the ``tang`` suite on one core);
3. when scikit-image is importable, our textbook SSIM (``std`` convention: 2 sources) against two calls of
   ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
   data_range=255)``, which compute the same value (ratio ours / theirs: below 1 = faster).

Times are medians of the process's CPU time (``--wall`` for wall-clock time): on a shared machine the CPU time
still measures the work, where wall time also counts other processes. Only ratios measured in the same run are
meaningful; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from _common import pin_one_core

BUDGET_S = 0.5


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU time of ``fn()`` in seconds (after one warm-up call).

    CPU time of this process (``time.process_time``), so that other processes sharing the core do not count;
    single-threaded, it equals the wall time on an idle core. ``--wall`` switches to wall-clock time.
    """
    fn()
    samples = []
    for _ in range(repeat):
        t0 = _CLOCK()
        fn()
        samples.append(_CLOCK() - t0)
    return statistics.median(samples)


_CLOCK = time.process_time


def _triple() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from PIL import Image

    from demmi_rf.metrics import rgb2gray
    from demmi_rf.samples import sample_root

    d = sample_root() / "MSRS" / "test"
    with Image.open(d / "vi" / "00004N.png") as im:
        vis = np.asarray(im.convert("RGB"))
    with Image.open(d / "ir" / "00004N.png") as im:
        ir = np.asarray(im.convert("L"))
    fused = np.maximum(rgb2gray(vis), ir)
    return fused, ir, vis


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--profile", default="tang")
    ap.add_argument("--all-cores", action="store_true")
    ap.add_argument("--wall", action="store_true", help="time with the wall clock instead of CPU time")
    args = ap.parse_args(argv)
    global _CLOCK
    if args.wall:
        _CLOCK = time.perf_counter
    cores = "all cores" if args.all_cores else pin_one_core()

    import cv2

    from demmi_rf.metrics import evaluate, get_profile, rgb2gray

    fused, ir, vis = _triple()
    vis_gray = rgb2gray(vis)
    prof = get_profile(args.profile)
    h, w = ir.shape
    print(f"demmi_rf.metrics, profile {prof.name!r}, {w}x{h} triple (MSRS 00004N, max fusion), {cores}, "
          f"median {'wall' if args.wall else 'CPU'} time of {args.repeat} calls")

    # Interleaved rounds: every round times the floor, each metric and evaluate() back to back, so that the
    # ratios compare timings taken under the same machine load.
    jobs: dict[str, Callable[[], object]] = {"floor": lambda: cv2.GaussianBlur(fused.astype(np.float64), (11, 11), 1.5)}
    for spec in prof.metrics:
        jobs[spec.key] = lambda spec=spec: spec.compute(fused, ir, vis_gray)
    jobs["evaluate"] = lambda: evaluate(fused, ir, vis, prof.name)
    samples: dict[str, list[float]] = {k: [] for k in jobs}
    for job in jobs.values():
        job()  # warm-up
    for _ in range(args.repeat):
        for key, job in jobs.items():
            t0 = _CLOCK()
            job()
            samples[key].append(_CLOCK() - t0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = {k: statistics.median(t / f for t, f in zip(v, samples["floor"])) for k, v in samples.items()}

    print(f"\nfloor: one float64 11x11 Gaussian filter = {med['floor'] * 1e3:.2f} ms\n")
    print(f"{'metric':<12}{'ms':>9}{'x floor':>10}   value")
    for spec in prof.metrics:
        value = spec.compute(fused, ir, vis_gray)
        print(f"{spec.key:<12}{med[spec.key] * 1e3:9.2f}{ratio[spec.key]:10.1f}   {value:.6g}")
    total = sum(med[s.key] for s in prof.metrics)
    print(f"{'sum':<12}{total * 1e3:9.2f}{sum(ratio[s.key] for s in prof.metrics):10.1f}")

    end_to_end = med["evaluate"]
    print(f"\nevaluate(fused, ir, vis RGB, {prof.name!r}) end to end: {end_to_end * 1e3:.1f} ms = "
          f"{ratio['evaluate']:.1f} x floor = {end_to_end / BUDGET_S:.2f} x the {BUDGET_S} s budget "
          f"({'within' if end_to_end < BUDGET_S else 'OVER'} budget)")

    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        print("\nscikit-image not importable: SSIM comparison skipped")
        return
    from demmi_rf.metrics import ssim

    def theirs() -> float:
        kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
        f = fused.astype(np.float64)
        return (structural_similarity(f, ir.astype(np.float64), **kw)
                + structural_similarity(f, vis_gray.astype(np.float64), **kw)) / 2

    ours_t = timed(lambda: ssim(fused, ir, vis_gray, "std"), args.repeat)
    theirs_t = timed(theirs, args.repeat)
    print(f"\ntextbook SSIM, 2 sources: ours {ours_t * 1e3:.1f} ms vs scikit-image {theirs_t * 1e3:.1f} ms: "
          f"ratio {ours_t / theirs_t:.2f} (values {ssim(fused, ir, vis_gray, 'std'):.12f} vs {theirs():.12f})")


if __name__ == "__main__":
    main()
