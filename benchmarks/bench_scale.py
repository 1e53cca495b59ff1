"""Costs as the work grows (issue 16 section 4): ``demmi build``, ``demmi verify`` and ``demmi info`` on 1k, 4k and
16k synthetic pairs.

Sources: small deterministic pairs (``--shape``, default 64x48) written once, in the MSRS layout
(``MSRS/{train,test}/{ir,vi}/<n>N.png``, 20 % in ``test``), into ``--cache`` (reused by later runs). Content:
a smooth gradient plus seeded noise per pair (``numpy.random.default_rng(index)``), so PNG decoding does real work.

Each measurement runs in a fresh child process (``python bench_scale.py --child ...``) that reports its own peak
resident memory (``VmHWM`` of ``/proc/self/status``), its CPU time (user + system, its own and that of the
children it reaped; a pool's workers are children of the forkserver and are *not* counted, so read CPU from the
``--workers 1`` rows) and wall-clock timings as one JSON line:

* ``build`` with ``--workers 1``: the local executor runs every shard in the driver process, so the peak is
  driver + work; with ``--workers 2`` the shards run in a process pool and the child's peak is the **driver's**
  alone (the pool's workers are other processes). ``setup`` is the time to the plan (discovery, planning, memory
  estimate from the image headers, locking), ``finish`` the time from the last shard's result to the end of the
  build (manifest, content hash, card and README/Croissant files): the driver's serial parts.
* ``verify`` (full mode: every array re-hashed) and ``verify --quick`` (card, manifest, content hash, shard files).
* ``info`` (the ``demmi info`` command, in process).

Printed per size: samples, shards, wall seconds, wall and CPU µs per sample, peak MiB, setup and finish seconds,
and the ratios against the smallest size measured in the same run (on a loaded machine, compare CPU, not
wall); then the memory slope in KB per sample between the smallest and the largest size
(``(peak_large - peak_small) / (samples_large - samples_small)``). Goals (issue 16): time per sample within 15 %
across sizes, driver memory bounded (slope near 0).

    nice -n 10 python benchmarks/bench_scale.py --skip-pool            # 1k, 4k, 16k pairs, workers=1 (~15 min idle)
    python benchmarks/bench_scale.py --pool-only --skip-verify         # the driver's memory alone
    python benchmarks/bench_scale.py --sizes 500,2000 --skip-pool      # quicker
    python benchmarks/bench_scale.py --json out.json                   # also write the figures
    python benchmarks/bench_scale.py --work DIR --reuse --skip-pool    # keep the datasets; later: verify/info only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "demmi-bench-scale"


# ---- sources ----------------------------------------------------------------------------------------------
def _write_range(args: tuple[str, int, int, int, int]) -> int:
    import cv2
    import numpy as np

    root, start, stop, height, width = args
    yy, xx = np.mgrid[0:height, 0:width]
    base = (xx * 255 // max(width - 1, 1) + yy * 64 // max(height - 1, 1)).astype(np.int16)
    for i in range(start, stop):
        split = "test" if i % 5 == 0 else "train"
        rng = np.random.default_rng(i)
        noise = rng.integers(-24, 25, size=(height, width, 4), dtype=np.int16)
        vis = np.clip(base[..., None] + (i % 97) + noise[..., :3], 0, 255).astype(np.uint8)
        ir = np.clip(255 - base + noise[..., 3], 0, 255).astype(np.uint8)
        name = f"{i:06d}N.png"
        cv2.imwrite(os.path.join(root, "MSRS", split, "vi", name), vis)
        cv2.imwrite(os.path.join(root, "MSRS", split, "ir", name), ir)
    return stop - start


def make_sources(cache: Path, pairs: int, height: int, width: int) -> Path:
    """``cache/msrs-<pairs>-<h>x<w>``: written once (a ``.done`` marker records completion)."""
    from concurrent.futures import ProcessPoolExecutor

    root = cache / f"msrs-{pairs}-{height}x{width}"
    if (root / ".done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for split in ("train", "test"):
        for mod in ("ir", "vi"):
            (root / "MSRS" / split / mod).mkdir(parents=True)
    step = 500
    jobs = [(str(root), s, min(s + step, pairs), height, width) for s in range(0, pairs, step)]
    with ProcessPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        assert sum(pool.map(_write_range, jobs)) == pairs
    (root / ".done").write_text(f"{pairs}\n")
    return root


def bench_recipe(settings: list[str], pairs_per_shard: int):
    """The v1 recipe narrowed to ``settings`` with ``pairs_per_shard`` (a recipe of its own, hash included)."""
    import copy

    from demmi_rf.recipe import load_recipe, validate_recipe

    base = load_recipe().with_overrides(settings=settings)
    data = copy.deepcopy(base.data)
    data["name"] = "bench-scale"
    data["pairs_per_shard"] = pairs_per_shard
    return validate_recipe(data, where="bench-scale")


# ---- the child process ------------------------------------------------------------------------------------
def peak_mib() -> float:
    """This process's peak resident set (VmHWM) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(ns: argparse.Namespace) -> None:
    start_mib = peak_mib()
    out: dict = {"kind": ns.child}
    if ns.child == "build":
        from demmi_rf.builder import build_dataset

        recipe = bench_recipe(ns.settings.split(","), ns.pairs_per_shard)
        marks = {"last": None, "plan": None}

        def progress(kind, data):
            if kind == "shard":
                marks["last"] = time.perf_counter()
            elif kind == "plan":
                marks["plan"] = time.perf_counter()

        t0 = time.perf_counter()
        report = build_dataset(ns.out, [ns.source], recipe=recipe, workers=ns.workers, progress=progress)
        t1 = time.perf_counter()
        out.update(seconds=t1 - t0, finish=t1 - (marks["last"] or t1), setup=(marks["plan"] or t0) - t0,
                   samples=report.card["counts"]["samples"],
                   shards=len(report.card["shards"]), content_hash=report.card["content_hash"],
                   manifest_sha256=report.card["manifest"]["sha256"])
    elif ns.child == "verify":
        from demmi_rf.store import verify_dataset

        t0 = time.perf_counter()
        rep = verify_dataset(ns.out, quick=ns.quick)
        out.update(seconds=time.perf_counter() - t0, samples=rep.samples, shards=rep.shards_checked,
                   ok=rep.ok, problems=[str(p) for p in rep.problems[:3]])
    elif ns.child == "info":
        from click.testing import CliRunner

        from demmi_cli.main import cli

        t0 = time.perf_counter()
        res = CliRunner().invoke(cli, ["info", ns.out])
        out.update(seconds=time.perf_counter() - t0, ok=res.exit_code == 0)
    import resource

    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    out.update(peak_mib=peak_mib(), import_mib=start_mib, cpu=cpu)
    print("RESULT " + json.dumps(out), flush=True)


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, str(HERE), *args], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"child {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# ---- the driver -------------------------------------------------------------------------------------------
def table(name: str, rows: list[dict], per_sample: bool = True) -> list[str]:
    base = rows[0]
    lines = [f"== {name}",
             f"{'pairs':>7} {'samples':>8} {'shards':>6} {'s':>8} {'us/sample':>10} {'x1k':>6} {'peak MiB':>9} "
             f"{'x1k':>6} {'setup s':>8} {'finish s':>9} {'cpu us/sample':>14} {'x1k':>6}"]
    for r in rows:
        us = 1e6 * r["seconds"] / max(r["samples"], 1)
        us0 = 1e6 * base["seconds"] / max(base["samples"], 1)
        cpu, cpu0 = (1e6 * x["cpu"] / max(x["samples"], 1) for x in (r, base))
        lines.append(f"{r['pairs']:>7} {r['samples']:>8} {r.get('shards', 0):>6} {r['seconds']:>8.2f} {us:>10.0f} "
                     f"{us / us0:>6.2f} {r['peak_mib']:>9.1f} {r['peak_mib'] / base['peak_mib']:>6.2f} "
                     f"{r.get('setup', float('nan')):>8.2f} {r.get('finish', float('nan')):>9.3f} {cpu:>14.0f} "
                     f"{cpu / cpu0:>6.2f}")
    if len(rows) > 1:
        big = rows[-1]
        slope = 1024 * (big["peak_mib"] - base["peak_mib"]) / max(big["samples"] - base["samples"], 1)
        lines.append(f"memory slope {slope:.3f} KB/sample ({base['samples']} -> {big['samples']} samples)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,4000,16000", help="pair counts (comma-separated)")
    ap.add_argument("--shape", default="64x48", help="WxH of the synthetic pairs")
    ap.add_argument("--settings", default="clean,stripe")
    ap.add_argument("--pairs-per-shard", type=int, default=64)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the sources are written once")
    ap.add_argument("--work", type=Path, default=None, help="where the datasets are built (default: a temp dir)")
    ap.add_argument("--skip-pool", action="store_true", help="only the workers=1 (in-process) build")
    ap.add_argument("--pool-only", action="store_true", help="only the workers=2 (pool: driver alone) build")
    ap.add_argument("--skip-verify", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="with --work: keep the datasets and measure verify/info on those already built there "
                         "(no build row for them)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    # child mode
    ap.add_argument("--child", choices=("build", "verify", "info"), help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.child:
        child(ns)
        return

    import tempfile

    width, height = (int(v) for v in ns.shape.lower().split("x"))
    sizes = [int(s) for s in ns.sizes.split(",")]
    ns.cache.mkdir(parents=True, exist_ok=True)
    work = ns.work or Path(tempfile.mkdtemp(prefix="demmi-bench-scale-"))
    common = ["--settings", ns.settings, "--pairs-per-shard", str(ns.pairs_per_shard)]
    results: dict[str, list[dict]] = {}
    print(f"settings {ns.settings}; {ns.pairs_per_shard} pairs per shard; {width}x{height} pairs; "
          f"cpus {len(os.sched_getaffinity(0))}; work {work}", flush=True)
    for n in sizes:
        t0 = time.perf_counter()
        src = make_sources(ns.cache, n, height, width)
        print(f"[{n} pairs] sources ready in {time.perf_counter() - t0:.1f} s ({src})", flush=True)
        variants = ([] if ns.pool_only else [("build workers=1 (driver+work)", 1)]) + \
            ([] if ns.skip_pool else [("build workers=2 (driver only)", 2)])
        out = work / f"ds-{n}"
        if ns.reuse and (out / "dataset.json").is_file():
            variants = []
            card = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
            samples, shards = card["counts"]["samples"], len(card["shards"])
            print(f"[{n} pairs] reusing {out} ({samples} samples, {shards} shards)", flush=True)
        for name, workers in variants:
            shutil.rmtree(out, ignore_errors=True)
            r = run_child(["--child", "build", "--source", str(src), "--out", str(out), "--workers", str(workers),
                           *common])
            r["pairs"] = n
            results.setdefault(name, []).append(r)
            print(f"[{n} pairs] {name}: {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB, finish "
                  f"{r['finish']:.2f} s, content {r['content_hash'][:12]}", flush=True)
        if variants:
            samples, shards = results[variants[0][0]][-1]["samples"], results[variants[0][0]][-1]["shards"]
        checks = [("verify (full)", ["--child", "verify"]), ("verify --quick", ["--child", "verify", "--quick"]),
                  ("info", ["--child", "info"])]
        for name, args in checks:
            if ns.skip_verify and name.startswith("verify"):
                continue
            r = run_child([*args, "--out", str(out)])
            if not r.get("ok", True):
                raise SystemExit(f"{name} failed on {out}: {r}")
            r.update(pairs=n, samples=samples, shards=shards)
            results.setdefault(name, []).append(r)
            print(f"[{n} pairs] {name}: {r['seconds']:.2f} s, peak {r['peak_mib']:.0f} MiB", flush=True)
        if not ns.reuse:
            shutil.rmtree(out, ignore_errors=True)
    print()
    for name, rows in results.items():
        print("\n".join(table(name, rows)))
        print()
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2) + "\n")
    if not ns.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
