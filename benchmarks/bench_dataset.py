"""Training-loader throughput: DeMMIDataset (HDF5 shards, window reads) vs a PNG-folder Dataset.

The PNG baseline loads data the way the fusion repositories do: every array of a sample (degraded VIS and IR,
clean VIS and IR) is a PNG file read whole with ``cv2.imread`` and then cropped in memory. Both datasets serve
the *same* samples with the *same* random choices (seed, epoch, item), so the script also checks that they
return identical tensors before timing them.

Protocol (issue 5): 128x128 crops with flips/rotations, batch 8, 2 DataLoader workers (persistent), 3 epochs,
shuffled; samples/s = items delivered / wall time from DataLoader creation to the end of the last epoch
(worker start-up included for both), median of 3 alternated rounds; also the CPU time per sample (main process
+ workers), which does not depend on what else the machine runs. Target: DeMMIDataset >= 3x the PNG baseline.

    python benchmarks/bench_dataset.py                       # builds from shared/data/realpairs (or samples)
    python benchmarks/bench_dataset.py --dataset DIR         # an existing built dataset
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _common import loader_throughput

from demmi_rf.store import open_dataset
from demmi_rf.torch import DeMMIDataset, PNGFolderDataset, export_png_folder

REPO = Path(__file__).resolve().parents[1]
REALPAIRS = REPO.parent / "shared" / "data" / "realpairs"


def build(out: Path, source: Path | None) -> None:
    cmd = [sys.executable, "-m", "demmi_cli.main", "build", "--out", str(out)]
    if source is not None:
        cmd += ["--source", str(source)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


run = loader_throughput  # (samples/s, items, wall s, CPU ms per item); see benchmarks/_common.py


def check_same(shards: DeMMIDataset, pngs: PNGFolderDataset, count: int = 8) -> None:
    for i in range(min(count, len(shards))):
        a, b = shards[i], pngs[i]
        assert a["sample_id"] == b["sample_id"]
        for key in ("vis", "ir", "vis_clean", "ir_clean"):
            if not torch.equal(a[key], b[key]):
                raise SystemExit(f"mismatch between loaders for {a['sample_id']} {key}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, help="an existing built dataset (default: build one)")
    p.add_argument("--source", type=Path, default=REALPAIRS if REALPAIRS.is_dir() else None)
    p.add_argument("--split", default="train")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3, help="alternated timing rounds per loader (median reported)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="demmi-bench-") as tmp:
        root = args.dataset
        if root is None:
            root = Path(tmp) / "dataset"
            build(root, args.source)
        store = open_dataset(root)
        shards = DeMMIDataset(root, split=args.split, crop=args.crop, augment=True, seed=args.seed)
        ids = [shards.info(i).sample_id for i in range(len(shards))]
        png_dir = export_png_folder(store, Path(tmp) / "png", ids)
        pngs = PNGFolderDataset(png_dir, crop=args.crop, augment=True, seed=args.seed)
        check_same(shards, pngs)
        mb = lambda files: sum(f.stat().st_size for f in files) / 2**20  # noqa: E731
        print(f"dataset {root}: split {args.split!r}, {len(shards)} samples "
              f"(shards {mb((Path(root) / 'shards').glob('*.h5')):.1f} MiB for all splits, "
              f"PNG folder {mb(png_dir.rglob('*.png')):.1f} MiB for this split)")
        print(f"protocol: crop {args.crop}, augment, batch {args.batch}, {args.workers} workers (persistent), "
              f"{args.epochs} epochs, shuffled; torch {torch.__version__}, {torch.get_num_threads()} threads")
        rates: dict[str, list[float]] = {"png": [], "shards": []}
        cpu: dict[str, list[float]] = {"png": [], "shards": []}
        # alternate the loaders so that neither always runs on a cooler cache or a quieter machine
        for _ in range(args.rounds):
            for name, ds in (("png", pngs), ("shards", shards)):
                rate, n, dt, ms = run(ds, args.epochs, args.batch, args.workers, args.seed)
                rates[name].append(rate)
                cpu[name].append(ms)
                print(f"  {name:7s} {n} items in {dt:6.2f} s = {rate:8.1f} samples/s, {ms:6.2f} CPU ms/sample",
                      flush=True)
        med = {k: statistics.median(v) for k, v in rates.items()}
        ms = {k: statistics.median(v) for k, v in cpu.items()}
        ratio = med["shards"] / med["png"]
        print(f"PNG folder (cv2.imread whole + crop): {med['png']:7.1f} samples/s, {ms['png']:.2f} CPU ms/sample")
        print(f"DeMMIDataset (HDF5 window reads):      {med['shards']:7.1f} samples/s, "
              f"{ms['shards']:.2f} CPU ms/sample")
        print(f"(medians of {args.rounds} alternated rounds)")
        verdict = "met" if ratio >= 3 else "NOT met"
        print(f"ratio DeMMIDataset / PNG = {ratio:.2f}x samples/s (target >= 3x: {verdict}); "
              f"CPU cost ratio {ms['png'] / ms['shards']:.2f}x")


if __name__ == "__main__":
    main()
