"""How far ``compat="public"`` (the authors' stage-2 forward: the restorer's level-1 MoE bypassed in the fusion
pass) and ours differ on the same weights.

Builds the embedded samples (``noise50,stripe``), trains the ``tiny`` configuration briefly (stage 1, then
stage 2 with each compat mode), and fuses ``--limit`` test images (centre crops of ``--crop`` pixels) with
each stage-2 model under both modes. Reports, per
model, the mean and maximum absolute difference of the fused luminance between the two modes (8-bit levels)
and the relative L2 difference of the decoder-level-1 features. Run::

    python benchmarks/tgecnet_compat.py --out /tmp/compat

(random weights are no guide: their fused outputs saturate, so a short real training is used instead).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> dict:
    from click.testing import CliRunner

    from demmi_cli.main import cli
    from demmi_rf.store import open_dataset
    from demmi_rf.torch.augment import rgb_to_gray_bt601
    from tgecnet_ref.config import load_config
    from tgecnet_ref.model import TGECNet
    from tgecnet_ref.train import TrainOptions, load_checkpoint, train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--epochs1", type=int, default=6)
    ap.add_argument("--epochs2", type=int, default=4)
    ap.add_argument("--limit", type=int, default=4, help="test images to fuse")
    ap.add_argument("--crop", type=int, default=256, help="centre crop (pixels) of each test image; 0: whole")
    args = ap.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="compat_"))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ds = work / "ds"
    if not (ds / "dataset.json").is_file():
        res = CliRunner().invoke(cli, ["build", "--out", str(ds), "--degradations", "noise50,stripe", "--workers", "2",
                                       "--no-progress"])
        assert res.exit_code == 0, res.output
    cfg = load_config("tiny")
    quiet = {"progress": False, "echo": lambda s: None, "device": "cpu"}
    if not (work / "s1" / "last.pt").is_file():
        train(TrainOptions(dataset=ds, stage=1, out=work / "s1", config=cfg, epochs=args.epochs1, **quiet))
    models = {}
    for mode in ("ours", "public"):
        c = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, compat=mode))
        run = work / f"s2_{mode}"
        if not (run / "last.pt").is_file():
            train(TrainOptions(dataset=ds, stage=2, out=run, config=c, epochs=args.epochs2,
                               init=work / "s1" / "last.pt", **quiet))
        models[mode] = load_checkpoint(run / "last.pt")["model"]
    store = open_dataset(ds)
    ids = store.samples(split="test")["sample_id"].tolist()[: args.limit]
    report: dict = {"config": "tiny", "epochs": [args.epochs1, args.epochs2], "test_images": len(ids),
                    "crop": args.crop}
    for trained_with, state in models.items():
        nets = {}
        for mode in ("ours", "public"):
            net = TGECNet(dataclasses.replace(cfg.model, compat=mode)).eval()
            net.load_state_dict(state)
            nets[mode] = net
        diffs, maxes, feats = [], [], []
        for sid in ids:
            a = store.read(sid, arrays=("vis", "ir"))
            v = torch.from_numpy(rgb_to_gray_bt601(a["vis"]) / 255.0).float()[None, None]
            i = torch.from_numpy(a["ir"] / 255.0).float()[None, None]
            h, w = (v.shape[-2] // 8) * 8, (v.shape[-1] // 8) * 8
            y0, x0 = 0, 0
            if args.crop:
                h, w = min(h, args.crop), min(w, args.crop)
                y0, x0 = (v.shape[-2] - h) // 2, (v.shape[-1] - w) // 2
            v, i = v[..., y0:y0 + h, x0:x0 + w], i[..., y0:y0 + h, x0:x0 + w]
            with torch.no_grad():
                out = {m: n(v, i).fused.clamp(0, 1) for m, n in nets.items()}
                both = torch.cat([v, i])
                fo, _ = nets["ours"].restorer.features(both)
                fp, _ = nets["ours"].restorer.features(both, skip_moe=(1,))
            d = (out["ours"] - out["public"]).abs() * 255.0
            diffs.append(float(d.mean()))
            maxes.append(float(d.max()))
            feats.append(float((fo - fp).norm() / fo.norm()))
        report[f"stage2_trained_with_{trained_with}"] = {
            "fused_mean_abs_diff_8bit": round(float(np.mean(diffs)), 3),
            "fused_max_abs_diff_8bit": round(float(np.max(maxes)), 2),
            "features_relative_l2_diff": round(float(np.mean(feats)), 4)}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (work / "compat.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
