"""Timings of the degradation atoms against the closest public implementations, run in the same process.

    python benchmarks/bench_degradations.py [--repeat 21] [--all-cores] [--kernel-only]

On one 640x480 pair (MSRS ``00004N``: RGB VIS, 1-channel IR), pinned to one core (``cv2.setNumThreads(1)``
and CPU affinity where the OS allows it) unless ``--all-cores``:

1. each atom through ``demmi_rf.degrade`` (uint8 in, uint8 out: conversion, draws, model, clip + round)
   against albumentations ``GaussNoise`` / ``Defocus`` (same σ / radius distribution, called as a user does,
   ``transform(image=vis)``) and imagecorruptions ``gaussian_noise`` / ``defocus_blur`` when that package
   imports; haze and stripe have no public counterpart, so they are held against the fastest public
   transform measured. Ratios are ours / theirs (below 1 = faster).
2. defocus per radius (3..6) against albumentations ``Defocus`` with the same fixed radius.
3. the floor: sixteen ``standard_normal(VIS shape, dtype=float32)`` draws (numpy's sampler; the toolkit's own,
   ``demmi_rf.ziggurat.normal``, is timed beside it), and a full pass of the 16 v1 settings over the pair;
   targets: full pass <= 2 x floor, and < 0.5 s on one core.
4. the sampler's optional compiled kernel against its numpy path, in the same rounds: sixteen
   ``ziggurat.normal(VIS shape)``, ``noise50`` through ``degrade`` and the full pass, each with the kernel
   and with the numpy common case (what a machine without a C compiler runs; same bits). This decides whether
   the kernel earns its place (docs/degradations.md section 5). ``--kernel-only`` runs this section alone.

All functions of a section are timed in interleaved rounds (one call of each per round, in a shuffled
order) so that they see the same machine load, on process CPU time (the cost on one core, insensitive to
waiting for a shared CPU): the minimum over rounds (``timeit``'s convention: the least disturbed run) and,
in brackets, the median.
Ratios use the minima. Only ratios measured in the same run are meaningful.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from importlib import util as importlib_util
from pathlib import Path

from _common import pin_one_core

Timings = dict[str, tuple[float, float]]  # label -> (min CPU seconds, median CPU seconds)


WALL: dict[str, float] = {}  # label -> median wall seconds of the last interleaved() call
MEAN: dict[str, float] = {}  # label -> mean CPU seconds of the last interleaved() call (the expected cost per call)


def interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> Timings:
    """(min, median) process CPU seconds of each function, each called once per round in a shuffled order
    (after one warm-up); the median wall-clock seconds go to ``WALL``, the mean CPU seconds to ``MEAN``."""
    for fn in fns.values():
        fn()
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    shuffler = random.Random(0)
    for _ in range(rounds):
        shuffler.shuffle(order)  # no function always follows the same one (cache, freed memory)
        for k in order:
            fn = fns[k]
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    WALL.clear()
    WALL.update({k: statistics.median(v) for k, v in wall.items()})
    MEAN.clear()
    MEAN.update({k: statistics.fmean(v) for k, v in cpu.items()})
    return {k: (min(cpu[k]), statistics.median(cpu[k])) for k in fns}


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


def _ms(t: tuple[float, float]) -> str:
    return f"{t[0] * 1e3:6.1f} ({t[1] * 1e3:6.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="interleaved rounds per section (median)")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    parser.add_argument("--kernel-only", action="store_true", help="only section 4 (kernel vs numpy path)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # albumentations' version check and deprecation chatter

    import albumentations as A
    import cv2
    import numpy as np

    import demmi_rf
    from demmi_rf import degrade, ziggurat
    from demmi_rf.recipe import load_recipe
    from demmi_rf.samples import sample_root
    from demmi_rf.sources import discover, read_pair

    cores = "all cores" if args.all_cores else pin_one_core()
    recipe = load_recipe("demmi-rf-v1")
    record = [r for r in discover(sample_root(), check="none").pairs if r.pair_id == "msrs/00004N"][0]
    pair = read_pair(record)
    vis, ir, seed, pid = pair.vis, pair.ir, recipe.seed, record.pair_id
    n = args.repeat
    print(f"demmi-rf {demmi_rf.__version__}, numpy {np.__version__}, opencv {cv2.__version__}, "
          f"albumentations {A.__version__}; {cores}; normal sampler: {ziggurat.backend()} common case "
          "(DEMMI_RF_NUMPY_ZIGGURAT=1 forces the numpy one)")
    print(f"pair {pid}: VIS {vis.shape} {vis.dtype}, IR {ir.shape} {ir.dtype}; medians of {n} interleaved "
          f"rounds, CPU ms min (median); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")

    if args.kernel_only:
        return _kernel_section(vis, ir, seed, pid, recipe, n)

    # ---- section 1: atoms vs public implementations ------------------------------------------------------
    counter = iter(range(10**9))

    def ours(setting: str) -> Callable[[], object]:
        # a new pair id per call: every call draws fresh parameters (e.g. a new defocus radius)
        return lambda: degrade(vis, ir, setting, seed, pair_id=f"bench/{next(counter)}")

    gauss = A.GaussNoise(std_range=(25 / 255, 25 / 255), mean_range=(0, 0), p=1.0)
    albu_defocus = A.Defocus(radius=(3, 6), alias_blur=(0.5, 0.5), p=1.0)
    gauss.set_random_seed(0)
    albu_defocus.set_random_seed(0)
    public: dict[str, Callable[[], object]] = {
        "albumentations GaussNoise": lambda: gauss(image=vis),
        "albumentations Defocus r~U{3..6}": lambda: albu_defocus(image=vis),
    }
    ic, ic_error = _load_imagecorruptions()
    if ic is not None:
        public["imagecorruptions gaussian_noise"] = lambda: ic.gaussian_noise(vis, severity=2)
        # severities 2 and 3 are radius 4 and 6 with alias 0.5; alternate them to cover r in 3..6
        sev = iter(range(10**9))
        public["imagecorruptions defocus_blur r=4|6"] = lambda: ic.defocus_blur(vis, severity=2 + next(sev) % 2)
    atoms = ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")
    times = interleaved({**{a: ours(a) for a in atoms}, **public}, n)
    if ic is None:
        print(f"imagecorruptions not usable here ({ic_error}); comparing with albumentations only\n")
    fastest = min(public, key=lambda k: times[k][0])
    competitors = {
        **{a: [k for k in public if "noise" in k.lower()] for a in ("noise15", "noise25", "noise50")},
        "defocus": [k for k in public if "defocus" in k.lower()],
        "haze": [fastest],
        "stripe": [fastest],
    }
    print("1. atoms: CPU ms min (median); ratio = ours / theirs on the minima (medians), < 1 is faster")
    worst = 0.0
    for atom in atoms:
        mine = times[atom]
        cells = []
        for k in competitors[atom]:
            theirs = times[k]
            cells.append(f"{k} {_ms(theirs)} -> {mine[0] / theirs[0]:.2f} ({mine[1] / theirs[1]:.2f})")
        worst = max(worst, mine[0] / min(times[k][0] for k in competitors[atom]))
        note = "  [no public counterpart: the fastest public transform]" if atom in ("haze", "stripe") else ""
        print(f"   {atom:<8}{_ms(mine)}  vs  " + "; ".join(cells) + note)
    print(f"   worst ratio against the fastest comparable public implementation: {worst:.2f} "
          f"({'OK' if worst <= 1 else 'SLOWER'})\n")

    # ---- section 2: defocus per radius --------------------------------------------------------------------
    print("2. defocus per radius vs albumentations Defocus with the same fixed radius (CPU ms min (median))")
    for r in (3, 4, 5, 6):
        ranges = {**recipe.degradations, "defocus": {"radius": [r], "alias_sigma": 0.5}}
        fixed = A.Defocus(radius=(r, r), alias_blur=(0.5, 0.5), p=1.0)
        t = interleaved({
            "ours": lambda ranges=ranges: degrade(vis, ir, "defocus", seed, pair_id=pid, ranges=ranges),
            "albu": lambda fixed=fixed: fixed(image=vis),
        }, n)
        print(f"   r={r}: ours {_ms(t['ours'])}, albumentations {_ms(t['albu'])} -> "
              f"{t['ours'][0] / t['albu'][0]:.2f} ({t['ours'][1] / t['albu'][1]:.2f})")
    print()

    # ---- section 3: the floor and a full pass ------------------------------------------------------------
    rng = np.random.default_rng(0)
    t = interleaved({
        "floor": lambda: [rng.standard_normal(vis.shape, dtype=np.float32) for _ in range(16)],
        "sampler": lambda: [ziggurat.normal(rng, vis.shape) for _ in range(16)],
        "full": lambda: [degrade(vis, ir, s, seed, pair_id=pid) for s in recipe.settings],
    }, n)
    (fc, fm), (pc, pm) = t["floor"], t["full"]
    fw, pw = WALL["floor"], WALL["full"]
    print("3. full pass of the 16 v1 settings over one 640x480 pair (CPU ms min (median); wall median)")
    print(f"   floor, 16 float32 standard-normal draws of {vis.shape}: {_ms(t['floor'])}; wall {fw * 1e3:.1f}")
    print(f"   the toolkit's sampler, 16 x ziggurat.normal(same shape): {_ms(t['sampler'])} -> "
          f"{t['sampler'][0] / fc:.2f} x floor ({t['sampler'][1] / fm:.2f} on medians)")
    print(f"   full pass (16 x degrade):                            {_ms(t['full'])}; wall {pw * 1e3:.1f}")
    print(f"   full pass / floor: {pc / fc:.2f} on minima, {pm / fm:.2f} on medians, {pw / fw:.2f} on wall; "
          f"target <= 2: {'OK' if max(pc / fc, pm / fm, pw / fw) <= 2 else 'MISSED'}")
    print(f"   one core: {pc * 1e3:.0f} ms CPU min, {pm * 1e3:.0f} ms CPU median, {pw * 1e3:.0f} ms wall median; "
          f"target < 500 ms: {'OK' if pm < 0.5 else 'MISSED'} (CPU median), {'OK' if pw < 0.5 else 'MISSED'} "
          f"(wall; load average now {os.getloadavg()[0]:.1f})\n")
    return _kernel_section(vis, ir, seed, pid, recipe, n)


def _kernel_section(vis, ir, seed: int, pid: str, recipe, n: int) -> int:
    """Section 4: the same calls with the compiled common case and with the numpy one, interleaved."""
    import numpy as np

    from demmi_rf import degrade, ziggurat

    print("4. the sampler's compiled kernel vs its numpy path (CPU ms min (median); ratio = numpy / compiled)")
    if ziggurat.backend() != "compiled":
        print("   the compiled kernel is not in use here (not built, or DEMMI_RF_NUMPY_ZIGGURAT=1): nothing to compare")
        return 0
    kernel = ziggurat._kernel

    def numpy_path(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            ziggurat._kernel = lambda: None  # what a machine without a C compiler runs (same bits)
            try:
                return fn()
            finally:
                ziggurat._kernel = kernel
        return run

    import albumentations as A

    rng = np.random.default_rng(0)
    work = {
        "sampler": lambda: [ziggurat.normal(rng, vis.shape) for _ in range(16)],
        "noise50": lambda: degrade(vis, ir, "noise50", seed, pair_id=pid),
        "full": lambda: [degrade(vis, ir, s, seed, pair_id=pid) for s in recipe.settings],
    }
    gauss = A.GaussNoise(std_range=(50 / 255, 50 / 255), mean_range=(0, 0), p=1.0)
    gauss.set_random_seed(0)
    fns = {f"{k} compiled": fn for k, fn in work.items()}
    fns.update({f"{k} numpy": numpy_path(fn) for k, fn in work.items()})
    fns["albumentations GaussNoise"] = lambda: gauss(image=vis)
    t = interleaved(fns, n)
    labels = {"sampler": "16 x ziggurat.normal(VIS shape)", "noise50": "noise50 through degrade()",
              "full": "full pass (16 x degrade)"}
    for k, label in labels.items():
        c, p = t[f"{k} compiled"], t[f"{k} numpy"]
        print(f"   {label:<32} compiled {_ms(c)}, numpy {_ms(p)} -> {p[0] / c[0]:.2f} ({p[1] / c[1]:.2f}); "
              f"the kernel saves {(p[0] - c[0]) * 1e3:.1f} ms ({(p[1] - c[1]) * 1e3:.1f} on medians)")
    g = t["albumentations GaussNoise"]
    print(f"   noise50 / albumentations GaussNoise {_ms(g)} (the speed target: <= 1): compiled "
          f"{t['noise50 compiled'][0] / g[0]:.2f} ({t['noise50 compiled'][1] / g[1]:.2f}), numpy "
          f"{t['noise50 numpy'][0] / g[0]:.2f} ({t['noise50 numpy'][1] / g[1]:.2f})")
    normals = 16 * int(np.prod(vis.shape))
    c, p = t["sampler compiled"][0], t["sampler numpy"][0]
    share = (t["full numpy"][0] - t["full compiled"][0]) / t["full numpy"][0]
    print(f"   per normal: compiled {c / normals * 1e9:.2f} ns, numpy {p / normals * 1e9:.2f} ns; the kernel saves "
          f"{share:.0%} of the full pass's numpy-path time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
