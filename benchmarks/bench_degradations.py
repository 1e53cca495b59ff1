"""Timings of the degradation atoms against the closest public implementations, run in the same process.

    python benchmarks/bench_degradations.py [--repeat 15] [--all-cores]

On one 640x480 pair (MSRS ``00004N``: RGB VIS, 1-channel IR), pinned to one core (``cv2.setNumThreads(1)``
and CPU affinity where the OS allows it) unless ``--all-cores``:

1. each atom through ``demmi_rf.degrade`` (uint8 in, uint8 out: conversion, draws, model, clip + round)
   against albumentations ``GaussNoise`` / ``Defocus`` (same σ / radius distribution, called as a user does,
   ``transform(image=vis)``) and imagecorruptions ``gaussian_noise`` / ``defocus_blur`` when that package
   imports; haze and stripe have no public counterpart, so they are held against the fastest public
   transform measured. Ratios are ours / theirs (below 1 = faster).
2. defocus per radius (3..6) against albumentations ``Defocus`` with the same fixed radius.
3. the floor: sixteen ``standard_normal(VIS shape, dtype=float32)`` draws, and a full pass of the 16 v1
   settings over the pair; target: full pass <= 2 x floor and < 0.5 s.

Only ratios measured in the same run are meaningful; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from importlib import util as importlib_util
from pathlib import Path


def _pin_one_core() -> str:
    import cv2

    cv2.setNumThreads(1)
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"one core (cv2.setNumThreads(1), affinity cpu {cpu})"
    except (AttributeError, OSError):
        return "one OpenCV thread (cv2.setNumThreads(1); CPU affinity not available)"


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn()`` in seconds (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _load_imagecorruptions():
    """imagecorruptions 1.1.2 imports ``pkg_resources`` (gone from setuptools >= 81) only to locate its frost
    images; a stand-in with ``resource_filename`` lets the noise and blur functions import unchanged."""
    if "pkg_resources" not in sys.modules and importlib_util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, name: str) -> str:
            return str(Path(importlib_util.find_spec(package).origin).parent / name)

        shim.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from imagecorruptions import corruptions
    except Exception as exc:  # noqa: BLE001 - any import failure just drops the comparison
        return None, f"{type(exc).__name__}: {exc}"
    return corruptions, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per measurement (median)")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np

    import demmi_rf
    from demmi_rf import degrade
    from demmi_rf.recipe import load_recipe
    from demmi_rf.samples import sample_root
    from demmi_rf.sources import discover, read_pair

    cores = "all cores" if args.all_cores else _pin_one_core()
    recipe = load_recipe("demmi-rf-v1")
    record = [r for r in discover(sample_root(), check="none").pairs if r.pair_id == "msrs/00004N"][0]
    pair = read_pair(record)
    vis, ir, seed, pid = pair.vis, pair.ir, recipe.seed, record.pair_id
    n = args.repeat
    print(f"demmi-rf {demmi_rf.__version__}, numpy {np.__version__}, opencv {cv2.__version__}, {cores}")
    print(f"pair {pid}: VIS {vis.shape} {vis.dtype}, IR {ir.shape} {ir.dtype}; median of {n} calls\n")

    # ---- public implementations ------------------------------------------------------------------------
    theirs: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import albumentations as A

        gauss = {s: A.GaussNoise(std_range=(s / 255, s / 255), mean_range=(0, 0), p=1.0) for s in (15, 25, 50)}
        albu_defocus = A.Defocus(radius=(3, 6), alias_blur=(0.5, 0.5), p=1.0)
        for t in (*gauss.values(), albu_defocus):
            t.set_random_seed(0)
        theirs["albumentations GaussNoise"] = timed(lambda: gauss[25](image=vis), n)
        theirs["albumentations Defocus r~U{3..6}"] = timed(lambda: albu_defocus(image=vis), n)
    ic, ic_error = _load_imagecorruptions()
    if ic is not None:
        theirs["imagecorruptions gaussian_noise"] = timed(lambda: ic.gaussian_noise(vis, severity=2), n)
        # severities 2 and 3 are radius 4 and 6 with alias 0.5: the mean of the two covers r in 3..6
        theirs["imagecorruptions defocus_blur (r=4, r=6)"] = (
            timed(lambda: ic.defocus_blur(vis, severity=2), n) + timed(lambda: ic.defocus_blur(vis, severity=3), n)
        ) / 2
    else:
        print(f"imagecorruptions not usable here ({ic_error}); comparing with albumentations only\n")
    fastest_name = min(theirs, key=theirs.get)

    # ---- ours: each atom through degrade() (uint8 in, uint8 out) ----------------------------------------
    counter = iter(range(10**9))

    def ours(setting: str) -> Callable[[], object]:
        # a new pair id per call: every call draws fresh parameters (e.g. a new defocus radius)
        return lambda: degrade(vis, ir, setting, seed, pair_id=f"bench/{next(counter)}")

    mine = {a: timed(ours(a), n) for a in ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")}
    competitors = {
        "noise15": [k for k in theirs if "noise" in k.lower()],
        "noise25": [k for k in theirs if "noise" in k.lower()],
        "noise50": [k for k in theirs if "noise" in k.lower()],
        "defocus": [k for k in theirs if "defocus" in k.lower()],
        "haze": [fastest_name],
        "stripe": [fastest_name],
    }
    print("1. atoms (ms; ratio = ours / theirs, < 1 is faster)")
    print(f"   {'atom':<9}{'ours':>8}   vs")
    worst = 0.0
    for atom, t in mine.items():
        cells = []
        for k in competitors[atom]:
            ratio = t / theirs[k]
            worst = max(worst, t / min(theirs[c] for c in competitors[atom]))
            cells.append(f"{k} {theirs[k] * 1e3:.1f} ms -> {ratio:.2f}")
        note = "  (no public counterpart: fastest public transform)" if atom in ("haze", "stripe") else ""
        print(f"   {atom:<9}{t * 1e3:8.1f}   " + "; ".join(cells) + note)
    print(f"   worst ratio against the fastest comparable public implementation: {worst:.2f} "
          f"({'OK' if worst <= 1 else 'SLOWER'})\n")

    print("2. defocus per radius vs albumentations Defocus with the same fixed radius")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in (3, 4, 5, 6):
            ranges = {**recipe.degradations, "defocus": {"radius": [r], "alias_sigma": 0.5}}
            t_ours = timed(lambda ranges=ranges: degrade(vis, ir, "defocus", seed, pair_id=pid, ranges=ranges), n)
            fixed = A.Defocus(radius=(r, r), alias_blur=(0.5, 0.5), p=1.0)
            t_albu = timed(lambda fixed=fixed: fixed(image=vis), n)
            print(f"   r={r}: ours {t_ours * 1e3:6.1f} ms, albumentations {t_albu * 1e3:6.1f} ms "
                  f"-> {t_ours / t_albu:.2f}")
    print()

    rng = np.random.default_rng(0)
    floor_s: list[float] = []
    full_s: list[float] = []
    for _ in range(n):  # interleaved, so that both see the same machine load
        floor_s.append(timed(lambda: [rng.standard_normal(vis.shape, dtype=np.float32) for _ in range(16)], 1))
        full_s.append(timed(lambda: [degrade(vis, ir, s, seed, pair_id=pid) for s in recipe.settings], 1))
    floor, full = statistics.median(floor_s), statistics.median(full_s)
    print("3. full pass of the 16 v1 settings over one 640x480 pair (median; min in brackets)")
    print(f"   floor: 16 float32 standard-normal draws of {vis.shape}: {floor * 1e3:.1f} ms ({min(floor_s) * 1e3:.1f})")
    print(f"   full pass: {full * 1e3:.1f} ms ({min(full_s) * 1e3:.1f}) = {full / floor:.2f} x floor "
          f"({min(full_s) / min(floor_s):.2f} on minima); target <= 2: {'OK' if full <= 2 * floor else 'MISSED'}; "
          f"target < 0.5 s: {'OK' if full < 0.5 else 'MISSED'} (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
