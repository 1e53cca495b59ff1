"""CPU cost of ``demmi fuse`` with a small TG-ECNet configuration on one 640x480 pair, as a ratio to what its
FLOP count would take at the machine's measured convolution throughput.

Measured in one run, on ``--threads`` threads (default 1):

* ``conv_gflops``: a dense 3x3 convolution (64 -> 64 channels, 240x320), the best case of the machine;
* ``model_gflop``: FLOPs of one fused 640x480 image (both restorer passes and the fusion head), counted by
  ``torch.utils.flop_counter`` (a multiply-add counts 2);
* per variant (``nchw``: the default; ``channels_last``: ``demmi fuse --channels-last``): seconds per image
  through :class:`tgecnet_ref.infer.Fuser` (best of ``--repeat``), and ``ratio_to_flop_time`` = seconds /
  (model_gflop / conv_gflops): 1 would be a model running at dense-convolution speed;
* the five most expensive modules of the default variant.

    python benchmarks/cpu_fuse_profile.py --config tiny --out cpu_fuse.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def conv_gflops(repeat: int) -> float:
    x, w = torch.rand(1, 64, 240, 320), torch.rand(64, 64, 3, 3)
    F.conv2d(x, w, padding=1)
    best = min(_timed(lambda: F.conv2d(x, w, padding=1)) for _ in range(repeat))
    return 2 * 64 * 64 * 9 * 240 * 320 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from tgecnet_ref.config import load_config
    from tgecnet_ref.infer import Fuser
    from tgecnet_ref.model import TGECNet
    from tgecnet_ref.train.checkpoint import save_checkpoint

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    torch.manual_seed(0)
    model = TGECNet(cfg.model).eval()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"cpu_fuse_{os.getpid()}.pt"
    save_checkpoint(work, {"stage": 2, "config": cfg.to_dict(), "model": model.state_dict()})
    rng = np.random.default_rng(0)
    vis, ir = rng.integers(0, 256, (2, 480, 640), dtype=np.uint8)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.rand(1, 1, 480, 640), torch.rand(1, 1, 480, 640))
    report: dict = {"config": args.config, "threads": args.threads, "torch": torch.__version__,
                    "load_average": os.getloadavg()[0], "model_gflop": round(fc.get_total_flops() / 1e9, 2),
                    "conv_gflops": round(conv_gflops(args.repeat), 2), "variants": {}}
    flop_time = report["model_gflop"] / report["conv_gflops"]
    outputs = {}
    for name, kw in (("nchw", {}), ("channels_last", {"channels_last": True})):
        fuser = Fuser(work, device="cpu", **kw)
        fuser.fuse_luminance(vis[:64, :64], ir[:64, :64])  # warm-up
        def once(name: str = name, fuser: Fuser = fuser) -> None:
            outputs[name] = fuser.fuse_luminance(vis, ir)

        best = min(_timed(once) for _ in range(args.repeat))
        report["variants"][name] = {"seconds": round(best, 2), "ratio_to_flop_time": round(best / flop_time, 1)}
    report["channels_last_speedup"] = round(report["variants"]["nchw"]["seconds"]
                                            / report["variants"]["channels_last"]["seconds"], 2)
    report["channels_last_mean_abs_diff"] = float(np.abs(outputs["nchw"] - outputs["channels_last"]).mean())
    # where the time goes (default variant), per top-level module
    times: collections.Counter = collections.Counter()
    hooks = []
    for part_name, part in (("restorer", model.restorer), ("fusion", model.fusion)):
        for name, mod in part.named_children():
            key = f"{part_name}.{name}"
            hooks.append(mod.register_forward_pre_hook(lambda m, i: setattr(m, "_t0", time.perf_counter())))
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, key=key: times.__setitem__(key, times[key] + time.perf_counter() - m._t0)))
    with torch.no_grad():
        model(torch.rand(1, 1, 480, 640), torch.rand(1, 1, 480, 640))
    for h in hooks:
        h.remove()
    report["top_modules_s"] = {k: round(v, 2) for k, v in times.most_common(5)}
    work.unlink()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return report


if __name__ == "__main__":
    main()
