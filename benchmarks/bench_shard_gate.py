"""Cost of the store's shard gate (:func:`demmi_rf.store.safe.open_shard`) against a plain ``h5py.File`` open.

In one run, alternating, median of ``--rounds``: for every shard of a built dataset,

* ``plain``: ``h5py.File(path, "r")`` and the root ``format`` attribute (what the reader did before the gate);
* ``gate, first``: the gate with its per-process cache cleared (the whole-file walk: links, objects, dataset
  storage properties);
* ``gate, cached``: the gate again (same device, inode, size and times: the walk is skipped);

and one pass reading every array of every sample through ``open_dataset`` (fresh reader, cache cleared) with
the gate, against the same pass with the walk disabled. Ratios are against ``plain`` / the pass without the
walk, measured in the same run.

    python benchmarks/bench_shard_gate.py                 # builds demmi-rf-v1 from the embedded samples
    python benchmarks/bench_shard_gate.py --dataset DIR   # an existing built dataset
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py

from demmi_rf.store import open_dataset, safe


def _plain(root: Path, rels: list[str]) -> float:
    start = time.perf_counter()
    for rel in rels:
        with h5py.File(root / rel, "r") as h5:
            h5.attrs.get("format")
    return time.perf_counter() - start


def _gate(root: Path, rels: list[str], clear: bool) -> float:
    if clear:
        safe._CHECKED.clear()
    start = time.perf_counter()
    for rel in rels:
        safe.open_shard(rel, root=root).close()
    return time.perf_counter() - start


def _read_all(root: Path, walk: bool) -> float:
    safe._CHECKED.clear()
    original = safe.check_structure
    if not walk:
        safe.check_structure = lambda h5, name: None
    try:
        start = time.perf_counter()
        with open_dataset(root) as ds:
            for sid in ds.manifest["sample_id"]:
                ds.read(sid)
        return time.perf_counter() - start
    finally:
        safe.check_structure = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="a built dataset (default: build demmi-rf-v1 from samples)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataset
        if root is None:
            from demmi_rf.builder import build_dataset  # noqa: PLC0415

            root = Path(tmp) / "ds"
            build_dataset(root, recipe="demmi-rf-v1", workers=1)
        with open_dataset(root) as ds:
            rels = [s.file for s in ds.record.shards]
        objects = 0
        for rel in rels:
            with h5py.File(root / rel, "r") as h5:
                names: list[str] = []
                h5.visit(names.append)
                objects += len(names)
        times: dict[str, list[float]] = {"plain": [], "first": [], "cached": [], "read_walk": [], "read_nowalk": []}
        for _ in range(args.rounds):
            times["plain"].append(_plain(root, rels))
            times["first"].append(_gate(root, rels, clear=True))
            times["cached"].append(_gate(root, rels, clear=False))
            times["read_nowalk"].append(_read_all(root, walk=False))
            times["read_walk"].append(_read_all(root, walk=True))
        med = {k: statistics.median(v) for k, v in times.items()}
        n = len(rels)
        print(f"dataset {root}: {n} shard(s), {objects} objects, median of {args.rounds} rounds")
        print(f"plain open          {med['plain'] / n * 1e3:8.2f} ms/shard")
        print(f"gate, first open    {med['first'] / n * 1e3:8.2f} ms/shard  ({med['first'] / med['plain']:.1f}x plain; "
              f"{med['first'] / objects * 1e3:.2f} ms/object)")
        print(f"gate, cached open   {med['cached'] / n * 1e3:8.2f} ms/shard  "
              f"({med['cached'] / med['plain']:.1f}x plain)")
        print(f"read every array    {med['read_walk']:8.2f} s with the walk, {med['read_nowalk']:.2f} s without "
              f"(ratio {med['read_walk'] / med['read_nowalk']:.3f})")


if __name__ == "__main__":
    main()
