"""GPU check of the reference TG-ECNet: a short real training run, then inference speed.

On a CUDA machine::

    python benchmarks/gpu_check.py --out /tmp/gpu_check

1. builds a DeMMI-RF dataset from ``../shared/data/realpairs`` (``demmi build``);
2. trains the ``small`` configuration, stage 1 then stage 2, for a few minutes (bf16 autocast) with the real
   trainer, and reports the per-epoch losses and training images per second;
3. fuses the test split of one setting with the trained model and scores it with ``demmi eval``;
4. measures fused images per second at 640x480 for the ``paper`` configuration in bf16 (batch 1 and
   ``--batch``, random weights), eager and with ``torch.compile``, for both MoE dispatch modes, with peak GPU
   memory; every figure is printed with its ratio to the eager/sparse batch-1 baseline of the same run.
   Training figures: optimizer steps x global batch / wall time for stage 1 and stage 2, and peak memory.
   The goal of issue 13: >= 20 fused 640x480 images/s in bf16 on one H100/H200.

``--smoke`` runs the same steps at toy sizes (``tiny`` configuration, a few steps, 64x48 images) and works on
a CPU; it is what the test suite and CI can afford. Results go to ``<out>/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
REALPAIRS = REPO.parent / "shared" / "data" / "realpairs"


def _demmi(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "demmi_cli.main", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"demmi {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(source: Path | None, out: Path, settings: str | None, workers: int) -> Path:
    args = ["build", "--out", str(out), "--workers", str(workers), "--no-progress"]
    if source is not None:
        args += ["--source", str(source)]
    if settings:
        args += ["--degradations", settings]
    t = time.perf_counter()
    _demmi(*args)
    print(f"[build] {out} from {source or 'embedded samples'} in {time.perf_counter() - t:.1f} s", flush=True)
    return out


def train_stages(ds: Path, work: Path, config: str, device: str, amp: bool, minutes1: float, minutes2: float,
                 smoke: bool) -> dict:
    from tgecnet_ref.train import TrainOptions, resolve_config, train

    extra = {"epochs": 1, "steps_per_epoch": 2} if smoke else {}
    res = {}
    for stage, minutes in ((1, minutes1), (2, minutes2)):
        opts = TrainOptions(dataset=ds, stage=stage, out=work / f"stage{stage}", config=config, device=device,
                            amp=amp, progress=False, max_seconds=60.0 * minutes,
                            init=(work / "stage1" / "last.pt") if stage == 2 else None, **extra)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        r = train(opts)
        dt = time.perf_counter() - t
        s = resolve_config(opts).stage(stage)
        bs = s.batch_size * s.accum_steps
        res[f"stage{stage}"] = {"epochs": r.epochs, "steps": r.steps, "seconds": round(dt, 1),
                                "train_images_per_s": round(r.steps * bs / dt, 2),
                                "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                                if device == "cuda" else None,
                                "loss_per_epoch": [round(h["loss"], 5) for h in r.history],
                                "trainable_parameters": r.parameters["stage1" if stage == 1 else "fusion"]}
        print(f"[train] stage {stage}: {r.epochs} epoch(s), {r.steps} steps in {dt:.1f} s; loss per epoch "
              f"{res[f'stage{stage}']['loss_per_epoch']}", flush=True)
    return res


def fuse_and_eval(ds: Path, work: Path, setting: str, device: str, limit: int | None) -> dict:
    from tgecnet_ref.infer import Fuser, fuse_dataset

    fuser = Fuser(work / "stage2" / "last.pt", device=device, amp=device == "cuda")
    t = time.perf_counter()
    written = fuse_dataset(fuser, ds, work / "fused", split="test", settings=[setting], limit=limit)
    dt = time.perf_counter() - t
    out = {"setting": setting, "images": len(written), "seconds": round(dt, 2)}
    try:
        _demmi("eval", "--dataset", str(ds), "--fused", str(work / "fused"), "--method", "tgecnet-small-check",
               "--degradations", setting, "--out", str(work / "eval.json"), "--no-progress",
               *(["--allow-missing"] if limit else []))
        out["eval"] = json.loads((work / "eval.json").read_text())
    except Exception as exc:  # noqa: BLE001 - the speed figures below still matter
        out["eval_error"] = str(exc)[-2000:]
    print(f"[fuse] {len(written)} test images ({setting}) in {dt:.1f} s; eval "
          f"{'ok' if 'eval' in out else 'FAILED'}", flush=True)
    return out


def throughput(config: str, hw: tuple[int, int], device: torch.device, iters: int, warmup: int,
               compile_modes: list[str], batches: tuple[int, ...] = (1,)) -> list[dict]:
    """Fused images per second (bf16 autocast, inference mode) per variant and batch size; peak memory."""
    import dataclasses

    from tgecnet_ref.config import load_config
    from tgecnet_ref.model import TGECNet

    cfg = load_config(config).model
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size
    torch.manual_seed(0)
    base = TGECNet(cfg).eval().to(device)
    variants = [("eager", "sparse"), ("eager", "dense")] + [("compile", d) for d in compile_modes]
    rows, reference = [], {}
    for batch in batches:
        g = torch.Generator().manual_seed(batch)
        vis = torch.rand(batch, 1, *hw, generator=g).to(device)
        ir = torch.rand(batch, 1, *hw, generator=g).to(device)
        for mode, dispatch in variants:
            model = TGECNet(dataclasses.replace(cfg, moe_dispatch=dispatch)).eval().to(device)
            model.load_state_dict(base.state_dict())
            fn = model
            if mode == "compile":
                torch._dynamo.reset()
                fn = torch.compile(model, dynamic=False)
            row = {"mode": mode, "dispatch": dispatch, "batch": batch}
            try:
                with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
                    t = time.perf_counter()
                    out = fn(vis, ir).fused
                    _sync(device)
                    row["first_call_s"] = round(time.perf_counter() - t, 2)
                    for _ in range(warmup):
                        fn(vis, ir)
                    _sync(device)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    t = time.perf_counter()
                    for _ in range(iters):
                        fn(vis, ir)
                    _sync(device)
                    dt = time.perf_counter() - t
                row["images_per_s"] = round(batch * iters / dt, 3)
                if device.type == "cuda":
                    row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                out = out.float()
                reference.setdefault(batch, out)
                row["max_abs_diff_vs_baseline"] = float((out - reference[batch]).abs().max())
            except Exception as exc:  # noqa: BLE001 - report and go on with the other variants
                row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            rows.append(row)
            del model, fn
    base_fps = rows[0].get("images_per_s")
    for row in rows:
        if base_fps and "images_per_s" in row:
            row["ratio_vs_eager_sparse_batch1"] = round(row["images_per_s"] / base_fps, 3)
        print(f"[fps] {config} {hw[1]}x{hw[0]} bf16 batch {row['batch']:2d} {row['mode']:8s} {row['dispatch']:6s} "
              + (f"{row['images_per_s']:8.2f} img/s  x{row.get('ratio_vs_eager_sparse_batch1', float('nan')):.2f} "
                 f"(first call {row['first_call_s']} s)" if "images_per_s" in row else row.get("error", "")),
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="toy sizes; runs on a CPU")
    ap.add_argument("--out", type=Path, help="work folder (default: a temporary folder)")
    ap.add_argument("--source", type=Path, default=REALPAIRS, help="pairs to build from (default: realpairs)")
    ap.add_argument("--train-minutes", type=float, default=2.0, help="stage-1 budget")
    ap.add_argument("--stage2-minutes", type=float, default=1.0)
    ap.add_argument("--iters", type=int, default=30, help="timed inference iterations per variant")
    ap.add_argument("--batch", type=int, default=8, help="the larger inference batch (besides batch 1)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    ap.add_argument("--compile-sparse", action="store_true",
                    help="also compile the sparse MoE dispatch (data-dependent shapes: graph breaks)")
    ap.add_argument("--smoke-compile", action="store_true",
                    help="with --smoke, also run torch.compile (minutes of C++ compilation on a CPU)")
    ap.add_argument("--parts", default="train,fuse,fps",
                    help="comma-separated parts to run: train (build + both stages), fuse (needs train), fps")
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"train", "fuse", "fps"}
    if unknown:
        ap.error(f"unknown part(s) {sorted(unknown)}; choose among train, fuse, fps")
    if "fuse" in parts and "train" not in parts:
        ap.error("the fuse part needs the train part (it fuses with the model trained there)")

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        ap.error("no CUDA device: run with --smoke for the CPU version")
    device = torch.device("cuda" if cuda else "cpu")
    work = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    source = args.source if args.source and args.source.is_dir() else None
    report: dict = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
                    "smoke": args.smoke, "source": str(source) if source else "embedded samples"}
    t0 = time.perf_counter()
    if "train" in parts:
        ds = build(source, work / "ds", "noise50,stripe" if args.smoke else None,
                   workers=2 if args.smoke else max(1, min(16, os.cpu_count() or 1)))
        report["train"] = train_stages(ds, work, "tiny" if args.smoke else "small", device.type, amp=cuda,
                                       minutes1=args.train_minutes, minutes2=args.stage2_minutes,
                                       smoke=args.smoke)
    if "fuse" in parts:
        report["fuse"] = fuse_and_eval(ds, work, "stripe" if args.smoke else "noise50+haze+stripe", device.type,
                                       limit=2 if args.smoke else None)
    if "fps" in parts:
        compile_modes = [] if args.no_compile else (["dense", "sparse"] if args.compile_sparse else ["dense"])
        if args.smoke:
            if not args.smoke_compile and compile_modes:
                print("[fps] torch.compile skipped in --smoke (pass --smoke-compile to run it)", flush=True)
                compile_modes = []
            report["throughput"] = throughput("tiny", (48, 64), device, iters=3, warmup=1,
                                              compile_modes=compile_modes, batches=(1, 2))
        else:
            report["throughput"] = throughput("paper", (480, 640), device, iters=args.iters, warmup=5,
                                              compile_modes=compile_modes, batches=(1, args.batch))
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    (work / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(f"[done] {report['total_seconds']} s; report {work / 'gpu_check.json'}", flush=True)
    return report


if __name__ == "__main__":
    main()
