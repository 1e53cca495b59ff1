"""Virtual datasets (issue 16, section 1): bytes on disk and training throughput against the PNG-folder loader.

1. Bytes: the same recipe (default: the full v1 recipe) over the same sources (default: the embedded samples) built
   materialized and ``--virtual``; shards + manifest as the card counts them (``card["bytes"]``). Goal: virtual
   <= 1/8 of materialized. Both builds are checked to have the same content hash.
2. Throughput: 128x128 crops with flips/rotations, batch 8, 2 DataLoader workers (persistent), ``--epochs`` epochs,
   shuffled, over the train split; samples/s = items / wall time from the loader's *construction* (the
   ``DeMMIDataset``, which for a virtual dataset prepares the shared slots and warms the synthesis in the parent)
   through DataLoader creation (worker start-up) to the end of the last epoch; every round builds every loader
   anew, so no round starts from another's caches. Median of ``--rounds`` alternated rounds, and CPU ms per item
   (main process + workers, construction included). Loaders: the PNG folder (``cv2.imread`` of four whole PNGs,
   then crop: how fusion repositories load), the virtual dataset with its caches (default bound: shared slots
   between the forked workers, per-process LRU) and without them (``cache_bytes=0``: every item synthesised), and
   the materialized dataset for reference. All serve the same items with the same random choices; the script
   checks that they return identical tensors first. The load average is printed with every run (the machine may
   be shared). Goal: virtual >= 2x the PNG folder.

    python benchmarks/bench_virtual.py                    # embedded samples, v1 recipe
    python benchmarks/bench_virtual.py --source DIR --epochs 3 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import cpu_seconds, loader_throughput

from demmi_rf.builder import build_dataset
from demmi_rf.store import open_dataset
from demmi_rf.torch import DeMMIDataset, PNGFolderDataset, export_png_folder

run = loader_throughput  # (samples/s, items, wall s, CPU ms per item); see benchmarks/_common.py


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=None, help="IR/VIS source folder (default: embedded samples)")
    p.add_argument("--recipe", default="demmi-rf-v1")
    p.add_argument("--build-workers", type=int, default=2)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    sources = [args.source] if args.source else []

    with tempfile.TemporaryDirectory(prefix="demmi-bench-virtual-") as tmp:
        mat_root, vir_root = Path(tmp) / "materialized", Path(tmp) / "virtual"
        times = {}
        for root, virtual in ((mat_root, False), (vir_root, True)):
            t0 = time.perf_counter()
            build_dataset(root, sources, recipe=args.recipe, workers=args.build_workers, virtual=virtual)
            times[virtual] = time.perf_counter() - t0
        mat, vir = open_dataset(mat_root), open_dataset(vir_root)
        if mat.content_hash != vir.content_hash:
            sys.exit("content hashes differ between the materialized and the virtual build")
        mb, vb = mat.card["bytes"], vir.card["bytes"]
        print(f"1. bytes ({args.recipe}, {len(mat.settings)} settings, {mat.manifest['pair_id'].nunique()} pairs, "
              f"{len(mat)} samples; same content hash {mat.content_hash[:16]}...)")
        print(f"   materialized {mb / 2**20:8.2f} MiB (build {times[False]:.1f} s)")
        print(f"   virtual      {vb / 2**20:8.2f} MiB (build {times[True]:.1f} s) = 1/{mb / vb:.1f} of materialized "
              f"(goal <= 1/8: {'met' if vb * 8 <= mb else 'NOT met'})")

        kw = dict(split="train", crop=args.crop, augment=True, seed=args.seed)
        ref = DeMMIDataset(open_dataset(vir_root), **kw)
        ids = [ref.info(i).sample_id for i in range(len(ref))]
        png_dir = export_png_folder(mat, Path(tmp) / "png", ids)
        factories = {  # every round builds its loaders anew: no round inherits another's caches
            "png": lambda: PNGFolderDataset(png_dir, **{k: v for k, v in kw.items() if k != "split"}),
            "virtual": lambda: DeMMIDataset(open_dataset(vir_root), **kw),
            "virtual-nocache": lambda: DeMMIDataset(open_dataset(vir_root, cache_bytes=0), **kw),
            "materialized": lambda: DeMMIDataset(open_dataset(mat_root), **kw),
        }
        checked = {name: make() for name, make in factories.items()}
        for i in range(min(8, len(ref))):
            items = {name: ds[i] for name, ds in checked.items()}
            for key in ("vis", "ir", "vis_clean", "ir_clean"):
                if not all(torch.equal(items["png"][key], it[key]) for it in items.values()):
                    sys.exit(f"loaders disagree on item {i} {key}")
        del checked, items
        print(f"2. throughput: train split, {len(ref)} items, crop {args.crop}, augment, batch {args.batch}, "
              f"{args.workers} workers (persistent), {args.epochs} epochs, shuffled, loader construction included; "
              f"torch {torch.__version__}, {os.cpu_count()} CPUs")
        rates: dict[str, list[float]] = {k: [] for k in factories}
        cpu: dict[str, list[float]] = {k: [] for k in factories}
        for _ in range(args.rounds):
            for name, make in factories.items():
                c0, t0 = cpu_seconds(), time.perf_counter()
                ds = make()
                built, built_cpu = time.perf_counter() - t0, cpu_seconds() - c0
                _, n, dt, ms = run(ds, args.epochs, args.batch, args.workers, args.seed)
                del ds
                rate, ms = n / (built + dt), ms + built_cpu / n * 1e3
                rates[name].append(rate)
                cpu[name].append(ms)
                print(f"   {name:16s} {n} items in {built + dt:6.2f} s (construction {built * 1e3:4.0f} ms) = "
                      f"{rate:7.1f} samples/s, {ms:6.2f} CPU ms/item, load average {os.getloadavg()[0]:.1f}",
                      flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        ms = {k: statistics.median(v) for k, v in cpu.items()}
        print(f"   medians of {args.rounds} alternated rounds:")
        for name in factories:
            print(f"   {name:16s} {med[name]:7.1f} samples/s ({med[name] / med['png']:.2f}x PNG), "
                  f"{ms[name]:6.2f} CPU ms/item ({ms['png'] / ms[name]:.2f}x less than PNG)")
        ratio = med["virtual"] / med["png"]
        print(f"   virtual / PNG = {ratio:.2f}x (goal >= 2x: {'met' if ratio >= 2 else 'NOT met'})")
        # the cache: syntheses per item read, in one process over the epochs (crop windows of cached images)
        for cache in (0, None):
            store = open_dataset(vir_root) if cache is None else open_dataset(vir_root, cache_bytes=cache)
            ds = DeMMIDataset(store, **kw)
            t0, n = time.perf_counter(), 0
            for epoch in range(args.epochs):
                ds.set_epoch(epoch)
                for i in range(len(ds)):
                    ds[i]
                    n += 1
            dt = time.perf_counter() - t0
            label = "no cache" if cache == 0 else f"cache {store.array_store.cache_bytes >> 20} MiB"
            print(f"3. one process, {label:14s}: {store.array_store.syntheses} syntheses for {n} items "
                  f"({store.array_store.syntheses / n:.2f} per item), {n / dt:6.1f} items/s")
            store.close()


if __name__ == "__main__":
    main()
