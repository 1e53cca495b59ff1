"""Build throughput and size: ``demmi build`` (HDF5 shards) vs a PNG-folder baseline, and 1 -> 2 workers.

The baseline writes the same dataset the way the fusion repositories lay it out (TG-ECNet's public code,
``shared/docs/tgecnet-public-code.md``): for every sample (pair x setting) of the recipe, the degraded image and
its ground truths as PNG files written with ``cv2.imwrite`` defaults, in one process::

    <png>/degrad/<setting>/<Source>/<stem>.png      the degraded VIS (IR for a setting that changes IR only)
    <png>/degrad/<setting>/<Source>/<stem>_ir.png   the degraded IR of a setting that changes both
    <png>/visible/<setting>/<Source>/<stem>.png     clean VIS (ground truth, per setting as in that layout)
    <png>/infrared/<setting>/<Source>/<stem>.png    clean IR

It reads pairs with the same reader and calls the same ``degrade()`` with the same recipe, so the pixels are
identical (checked on a sample of files). OpenCV keeps its default threading in the baseline, as those
repositories do.

Measured in one run (wall clock, each variant ``--repeats`` times, best kept, into fresh folders):
ours with 1 worker, ours with 2 workers (``--executor local``), the PNG baseline. Printed: build time ratio
(baseline / ours), bytes-on-disk ratio (ours / baseline; apparent file sizes, and allocated blocks), and the
1 -> 2 worker speedup. Targets (issue 4): ratio >= 2, bytes ratio <= 1, speedup >= 1.7 on 2 cores.

    python benchmarks/bench_build.py                          # ../shared/data/realpairs, recipe demmi-rf-v1
    python benchmarks/bench_build.py --repeats 3
    python benchmarks/bench_build.py --storage-sweep          # the compression / chunk table of the docs
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from demmi_rf import degrade
from demmi_rf.builder import build_dataset, resolve_recipe
from demmi_rf.samples import sample_root
from demmi_rf.settings import parse_setting
from demmi_rf.sources import discover, read_pair
from demmi_rf.store import open_dataset, read_manifest

REPO = Path(__file__).resolve().parents[1]
REALPAIRS = REPO.parent / "shared" / "data" / "realpairs"


def tree_bytes(root: Path) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes, number of files) under ``root``."""
    size = blocks = files = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            size += st.st_size
            blocks += st.st_blocks * 512
            files += 1
    return size, blocks, files


def _bgr(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else a


def _imwrite(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), _bgr(a)):
        raise OSError(f"{path}: cv2.imwrite failed")


def png_baseline(source: Path, recipe, out: Path) -> int:
    """Write the PNG-folder baseline; returns the number of samples."""
    settings = [parse_setting(s) for s in recipe.settings]
    n = 0
    for record in discover(source, check="none").pairs:
        pair = read_pair(record)
        src = record.source.upper() if record.source in ("msrs", "tno") else record.source.capitalize()
        for s in settings:
            d = degrade(pair.vis, pair.ir, s.name, recipe.seed, pair_id=record.pair_id, ranges=recipe.degradations)
            rel = Path(s.name) / src / f"{record.stem}.png"
            if s.changes_vis:
                _imwrite(out / "degrad" / rel, d.vis)
                if s.changes_ir:
                    _imwrite(out / "degrad" / rel.with_name(f"{record.stem}_ir.png"), d.ir)
            elif s.changes_ir:
                _imwrite(out / "degrad" / rel, d.ir)
            _imwrite(out / "visible" / rel, pair.vis)
            _imwrite(out / "infrared" / rel, pair.ir)
            n += 1
    return n


def check_same_pixels(ours: Path, png: Path, every: int = 17) -> int:
    """Compare every ``every``-th degraded sample of the baseline with ours; returns the number compared."""
    checked = 0
    with open_dataset(ours) as ds:
        rows = ds.manifest[ds.manifest["changes_vis"] | ds.manifest["changes_ir"]]
        for row in rows.iloc[::every].itertuples(index=False):
            src = row.source.upper() if row.source in ("msrs", "tno") else row.source.capitalize()
            path = png / "degrad" / row.setting / src / f"{row.stem}.png"
            which = "vis" if row.changes_vis else "ir"
            a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB) if a.ndim == 3 else a
            if not np.array_equal(a, ds.read(row.sample_id, arrays=(which,))[which]):
                raise AssertionError(f"baseline and dataset differ for {row.sample_id} ({path})")
            checked += 1
    return checked


def timed(variants: dict, repeats: int, scratch: Path) -> dict:
    """Best wall time of each ``fn(out_dir)`` over ``repeats`` rounds, the variants interleaved within a round
    (so that a burst of load from other processes hits all of them alike), each run into a fresh folder.
    Returns ``{label: (best seconds, last result, last output folder)}``."""
    best = {label: (float("inf"), None, scratch / label) for label in variants}
    for k in range(repeats):
        for label, fn in variants.items():
            out = scratch / label
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            result = fn(out)
            elapsed = time.perf_counter() - start
            best[label] = (min(best[label][0], elapsed), result, out)
            print(f"  round {k + 1}: {label:10s} {elapsed:7.2f} s   (load average {os.getloadavg()[0]:.2f})",
                  flush=True)
    return best


def main_build(args) -> None:
    source = args.source
    recipe = resolve_recipe(args.recipe)
    scratch = Path(tempfile.mkdtemp(prefix="bench_build_", dir=args.scratch))
    pairs = len(discover(source, check="none").pairs)
    print(f"source {source}: {pairs} pairs x {len(recipe.settings)} settings = {pairs * len(recipe.settings)} "
          f"samples; recipe {recipe.name} ({recipe.hash[:12]}); {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        runs = timed({
            "png": lambda o: png_baseline(source, recipe, o),
            "ours-1w": lambda o: build_dataset(o, [source], recipe=recipe, workers=1),
            f"ours-{args.workers}w": lambda o: build_dataset(o, [source], recipe=recipe, workers=args.workers),
        }, args.repeats, scratch)
        (t_png, n_png, png_dir), (t1, r1, out1), (t2, _, out2) = runs.values()
        m1, m2 = read_manifest(out1 / "manifest.csv"), read_manifest(out2 / "manifest.csv")
        cols = ["sample_id", "sha256_vis", "sha256_ir", "sha256_vis_clean", "sha256_ir_clean"]
        assert m1[cols].equals(m2[cols]), "1-worker and multi-worker builds differ"
        compared = check_same_pixels(out1, png_dir)
        b_ours, blk_ours, f_ours = tree_bytes(out1)
        b_png, blk_png, f_png = tree_bytes(png_dir)
        print()
        print(f"samples: ours {r1.card['counts']['samples']}, baseline {n_png}; identical pixels on "
              f"{compared} compared samples; 1w and {args.workers}w builds have equal array sha256")
        print(f"{'':28s} {'seconds':>9s} {'MiB':>9s} {'MiB alloc':>10s} {'files':>7s}")
        print(f"{'PNG baseline (1 process)':28s} {t_png:9.2f} {b_png / 2**20:9.1f} {blk_png / 2**20:10.1f} {f_png:7d}")
        print(f"{'demmi build, 1 worker':28s} {t1:9.2f} {b_ours / 2**20:9.1f} {blk_ours / 2**20:10.1f} {f_ours:7d}")
        print(f"{f'demmi build, {args.workers} workers':28s} {t2:9.2f}")
        ratio2, ratio1, speed = t_png / t2, t_png / t1, t1 / t2
        bytes_ratio, alloc_ratio = b_ours / b_png, blk_ours / blk_png
        print()
        print(f"build time ratio (baseline / ours, {args.workers} workers): {ratio2:5.2f}x  (target >= 2: "
              f"{'met' if ratio2 >= 2 else 'NOT met'})")
        print(f"build time ratio (baseline / ours, 1 worker):   {ratio1:5.2f}x")
        print(f"bytes on disk ratio (ours / baseline):         {bytes_ratio:5.3f}   (allocated blocks "
              f"{alloc_ratio:.3f}; target <= 1: {'met' if bytes_ratio <= 1 else 'NOT met'})")
        print(f"speedup 1 -> {args.workers} workers:                     {speed:5.2f}x  (target >= 1.7: "
              f"{'met' if speed >= 1.7 else 'NOT met'})")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes on the machine skew timings)")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"outputs kept in {scratch}")


# ---- storage sweep ------------------------------------------------------------------------------------
def sweep_arrays(source: Path, recipe, n_pairs: int) -> list[np.ndarray]:
    """Clean arrays and every changed array of ``n_pairs`` pairs spread over the sources."""
    pairs = discover(source).pairs
    by_source: dict[str, list] = {}
    for p in pairs:
        by_source.setdefault(p.source, []).append(p)
    pick = []
    while len(pick) < n_pairs and any(by_source.values()):
        for plist in by_source.values():
            if plist and len(pick) < n_pairs:
                pick.append(plist.pop(0))
    arrays = []
    for p in pick:
        lp = read_pair(p)
        arrays += [lp.vis, lp.ir]
        for name in recipe.settings:
            s = parse_setting(name)
            d = degrade(lp.vis, lp.ir, name, recipe.seed, pair_id=p.pair_id, ranges=recipe.degradations)
            arrays += ([d.vis] if s.changes_vis else []) + ([d.ir] if s.changes_ir else [])
    return arrays


def main_sweep(args) -> None:
    import h5py

    from demmi_rf.store.shard import deflate_estimate

    recipe = resolve_recipe(args.recipe)
    arrays = sweep_arrays(args.source, recipe, args.sweep_pairs)
    raw = sum(a.nbytes for a in arrays)
    print(f"{len(arrays)} arrays ({args.sweep_pairs} pairs x clean + every changed modality), {raw / 2**20:.1f} MiB "
          f"raw; best of {args.repeats} (process CPU time, one core)")
    configs = [
        ("none (contiguous)", None, None, None, None),
        ("none, 128 tiles", None, None, 128, None),
        ("gzip 1, 128 tiles", "gzip", 1, 128, None),
        ("gzip 4, 128 tiles", "gzip", 4, 128, None),
        ("gzip 6, 128 tiles", "gzip", 6, 128, None),
        ("gzip 1, 64 tiles", "gzip", 1, 64, None),
        ("gzip 1, 256 tiles", "gzip", 1, 256, None),
        ("gzip 1, 16-row strips", "gzip", 1, "rows", None),
        ("lzf, 128 tiles", "lzf", None, 128, None),
        ("gzip 1, 128 tiles; raw if estimate > 0.75", "gzip", 1, 128, 0.75),
        ("gzip 1, 64 tiles; raw if estimate > 0.75", "gzip", 1, 64, 0.75),
    ]
    scratch = Path(tempfile.mkdtemp(prefix="bench_sweep_", dir=args.scratch))
    rng = np.random.default_rng(0)
    windows = []
    for _ in range(300):
        i = int(rng.integers(len(arrays)))
        h, w = arrays[i].shape[:2]
        windows.append((i, int(rng.integers(0, h - 127)), int(rng.integers(0, w - 127))))

    def chunks(a, tile):
        if tile is None:
            return None
        if tile == "rows":
            return (min(16, a.shape[0]), a.shape[1], *a.shape[2:])
        return (min(tile, a.shape[0]), min(tile, a.shape[1]), *a.shape[2:])

    print("| storage | MiB | ratio to raw | write s | read all s | 128x128 window ms |")
    print("|---|---|---|---|---|---|")
    try:
        for name, comp, opts, tile, raw_above in configs:
            path = scratch / "sweep.h5"
            tw = tr = twin = float("inf")
            for _ in range(args.repeats):
                start = time.process_time()
                with h5py.File(path, "w") as h5:
                    for i, a in enumerate(arrays):
                        c = comp if raw_above is None or deflate_estimate(a) <= raw_above else None
                        kw = {"chunks": chunks(a, tile)} if tile and (c or raw_above is None) else {}
                        if c:
                            kw.update(compression=c, compression_opts=opts)
                        h5.create_dataset(str(i), data=a, track_times=False, **kw)
                tw = min(tw, time.process_time() - start)
                start = time.process_time()
                with h5py.File(path, "r") as h5:
                    for i in range(len(arrays)):
                        h5[str(i)][()]
                tr = min(tr, time.process_time() - start)
                start = time.process_time()
                with h5py.File(path, "r") as h5:
                    for i, y, x in windows:
                        h5[str(i)][y : y + 128, x : x + 128]
                twin = min(twin, (time.process_time() - start) / len(windows) * 1000)
            size = path.stat().st_size
            print(f"| {name} | {size / 2**20:.1f} | {size / raw:.3f} | {tw:.2f} | {tr:.2f} | {twin:.2f} |", flush=True)
        tw = tr = float("inf")
        for _ in range(args.repeats):
            total, start = 0, time.process_time()
            for i, a in enumerate(arrays):
                p = scratch / f"{i}.png"
                cv2.imwrite(str(p), _bgr(a))
                total += p.stat().st_size
            tw = min(tw, time.process_time() - start)
            start = time.process_time()
            for i in range(len(arrays)):
                cv2.imread(str(scratch / f"{i}.png"), cv2.IMREAD_UNCHANGED)
            tr = min(tr, time.process_time() - start)
        print(f"| PNG files (cv2 defaults), for reference | {total / 2**20:.1f} | {total / raw:.3f} | {tw:.2f} | "
              f"{tr:.2f} | (whole file) |")
        zs = [len(zlib.compress(a.tobytes(), 1)) / a.nbytes for a in arrays]
        est = [deflate_estimate(a) for a in arrays]
        print(f"deflate estimate vs true zlib-1 ratio: mean abs error {np.mean(np.abs(np.subtract(zs, est))):.3f}; "
              f"{sum(e > 0.75 for e in est)} of {len(arrays)} arrays stored raw at raw_above=0.75")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=REALPAIRS if REALPAIRS.is_dir() else sample_root())
    ap.add_argument("--recipe", default="demmi-rf-v1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--scratch", type=Path, default=None, help="folder for the temporary outputs")
    ap.add_argument("--keep", action="store_true", help="keep the outputs")
    ap.add_argument("--storage-sweep", action="store_true", help="measure compression / chunk choices instead")
    ap.add_argument("--sweep-pairs", type=int, default=8)
    args = ap.parse_args()
    if args.storage_sweep:
        main_sweep(args)
    else:
        main_build(args)


if __name__ == "__main__":
    main()
