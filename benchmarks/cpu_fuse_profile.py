"""CPU cost of ``demmi fuse`` with a small TG-ECNet configuration on one 640x480 pair (``--size``), before and after
the CPU inference fast path, as ratios to what the model's FLOP count would take at the machine's measured convolution
throughput.

Measured in one run, on ``--threads`` threads (default 1):

* ``conv_gflops``: a dense 3x3 convolution (64 -> 64 channels, 240x320), the best case of the machine;
* ``model_gflop``: FLOPs of one fused image (both restorer passes and the fusion head), counted by
  ``torch.utils.flop_counter`` (a multiply-add counts 2);
* per variant, seconds per image through :class:`tgecnet_ref.infer.Fuser` (best of ``--repeat`` in each of
  ``--rounds`` fresh processes, the variants taking turns so that a change of machine load hits all of them) and
  ``ratio_to_flop_time`` = seconds / (model_gflop / conv_gflops) (1 would be a model running at dense-convolution
  speed), ``speedup`` against ``reference``, and the largest difference of its fused luminance from the reference
  one. Variants: ``reference`` (``Fuser(fast=False)``, the path before the fast path existed), ``reference_reuse``
  (the same plus :func:`tgecnet_ref.infer.reuse_freed_memory`: the allocator's share), ``fast`` (``Fuser()``, the
  default), ``channels_last`` (``Fuser(channels_last=True)``). Each variant runs in its own process because the
  allocator setting is process-wide;
* the peak resident memory of each variant's process, and the five most expensive top-level modules of the
  ``reference`` and ``fast`` variants (unless ``--no-top-modules``).

    python benchmarks/cpu_fuse_profile.py --config tiny --out cpu_fuse.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VARIANTS = {
    "reference": {"fast": False},
    "reference_reuse": {"fast": False},
    "fast": {},
    "channels_last": {"channels_last": True},
}


def conv_gflops(repeat: int) -> float:
    x, w = torch.rand(1, 64, 240, 320), torch.rand(64, 64, 3, 3)
    F.conv2d(x, w, padding=1)
    best = min(_timed(lambda: F.conv2d(x, w, padding=1)) for _ in range(repeat))
    return 2 * 64 * 64 * 9 * 240 * 320 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


SIZE = (480, 640)


def _pair() -> tuple[np.ndarray, np.ndarray]:
    vis, ir = np.random.default_rng(0).integers(0, 256, (2, *SIZE), dtype=np.uint8)
    return vis, ir


def _child(variant: str, ckpt: Path, threads: int, repeat: int, npy: Path, profile: bool) -> dict:
    """One variant in this (fresh) process: best seconds of ``repeat`` fuses, the output saved to ``npy``."""
    from tgecnet_ref.infer import Fuser, reuse_freed_memory

    torch.set_num_threads(threads)
    if variant == "reference_reuse":
        reuse_freed_memory()
    fuser = Fuser(ckpt, device="cpu", **VARIANTS[variant])
    vis, ir = _pair()
    fuser.fuse_luminance(vis[:64, :64], ir[:64, :64])  # warm-up
    out: list[np.ndarray] = []
    best = min(_timed(lambda: out.append(fuser.fuse_luminance(vis, ir))) for _ in range(repeat))
    np.save(npy, out[-1])
    import resource

    result = {"seconds": best, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if profile:
        result["top_modules_s"] = _top_modules(fuser)
    return result


def _top_modules(fuser) -> dict[str, float]:
    """Seconds per top-level module of the restorer and the fusion head in one more fuse."""
    model = fuser.model
    times: collections.Counter = collections.Counter()
    hooks = []
    for part_name, part in (("restorer", model.restorer), ("fusion", model.fusion)):
        for name, mod in part.named_children():
            key = f"{part_name}.{name}"
            hooks.append(mod.register_forward_pre_hook(lambda m, i: setattr(m, "_t0", time.perf_counter())))
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, key=key: times.__setitem__(key, times[key] + time.perf_counter() - m._t0)))
    vis, ir = _pair()
    fuser.fuse_luminance(vis, ir)
    for h in hooks:
        h.remove()
    return {k: round(v, 2) for k, v in times.most_common(5)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="timed fuses per process (best counts)")
    ap.add_argument("--rounds", type=int, default=2, help="fresh processes per variant, variants taking turns")
    ap.add_argument("--variants", default="reference,reference_reuse,fast",
                    help=f"comma-separated, from {','.join(VARIANTS)} (the first is the baseline)")
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the pair (multiples of 8)")
    ap.add_argument("--no-top-modules", action="store_true", help="skip the per-module timing (one more fuse)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--npy", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global SIZE
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    if width < 16 or height < 16 or width % 8 or height % 8:
        ap.error(f"--size: width and height must be multiples of 8 and at least 16, got {args.size}")
    SIZE = (height, width)
    if args.child:
        result = _child(args.child, args.ckpt, args.threads, args.repeat, args.npy, args.profile)
        print(json.dumps(result))
        return result
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        ap.error(f"--variants: unknown {unknown}, choose from {list(VARIANTS)}")
    return _parent(args, variants)


def _parent(args: argparse.Namespace, variants: list[str]) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from tgecnet_ref.config import load_config
    from tgecnet_ref.model import TGECNet
    from tgecnet_ref.train.checkpoint import save_checkpoint

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    torch.manual_seed(0)
    model = TGECNet(cfg.model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "model.pt"
        save_checkpoint(work, {"stage": 2, "config": cfg.to_dict(), "model": model.state_dict()})
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(torch.rand(1, 1, *SIZE), torch.rand(1, 1, *SIZE))
        del model
        report: dict = {"config": args.config, "size": args.size, "threads": args.threads, "torch": torch.__version__,
                        "cpu_count": os.cpu_count(), "load_average_start": round(os.getloadavg()[0], 2),
                        "model_gflop": round(fc.get_total_flops() / 1e9, 2),
                        "conv_gflops": round(conv_gflops(max(args.repeat, 3)), 2),
                        "repeat": args.repeat, "rounds": args.rounds, "variants": {}}
        best = dict.fromkeys(variants, float("inf"))
        rss = dict.fromkeys(variants, 0.0)
        profiles: dict[str, dict] = {}
        for r in range(args.rounds):
            for v in variants:
                npy = Path(tmp) / f"{v}.npy"
                profile = r == args.rounds - 1 and v in ("reference", "fast") and not args.no_top_modules
                cmd = [sys.executable, __file__, "--child", v, "--ckpt", str(work), "--npy", str(npy),
                       "--size", args.size, "--threads", str(args.threads), "--repeat", str(args.repeat)]
                cmd += ["--profile"] if profile else []
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode:
                    raise SystemExit(f"variant {v} failed (exit status {done.returncode}; a negative one is the "
                                     f"signal, e.g. -9 when the kernel ran out of memory):\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                best[v] = min(best[v], result["seconds"])
                rss[v] = max(rss[v], result["peak_rss_mib"])
                if "top_modules_s" in result:
                    profiles[v] = result["top_modules_s"]
        report["load_average_end"] = round(os.getloadavg()[0], 2)
        flop_time = report["model_gflop"] / report["conv_gflops"]
        report["flop_time_s"] = round(flop_time, 3)
        base = variants[0]
        base_out = np.load(Path(tmp) / f"{base}.npy")
        for v in variants:
            out = np.load(Path(tmp) / f"{v}.npy")
            report["variants"][v] = {"seconds": round(best[v], 2), "ratio_to_flop_time": round(best[v] / flop_time, 2),
                                     f"speedup_vs_{base}": round(best[base] / best[v], 2),
                                     f"max_abs_diff_vs_{base}": float(np.abs(out - base_out).max()),
                                     "peak_rss_mib": round(rss[v])}
        report["top_modules_s"] = profiles
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return report


if __name__ == "__main__":
    main()
