"""The GPU check script runs end to end on a CPU at toy sizes (``--smoke``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_on_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--out",
                           str(tmp_path), "--parts", "train,fps"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] and report["device"] == "cpu"
    assert report["train"]["stage1"]["steps"] == 2 and report["train"]["stage2"]["steps"] == 2
    rows = report["throughput"]
    assert [(r["batch"], r["mode"], r["dispatch"]) for r in rows] == [
        (1, "eager", "sparse"), (1, "eager", "dense"), (2, "eager", "sparse"), (2, "eager", "dense")]
    assert all(r["images_per_s"] > 0 for r in rows) and rows[0]["ratio_vs_eager_sparse_batch1"] == 1.0
    # both MoE dispatch modes compute the same (bf16), at each batch size
    assert rows[1]["max_abs_diff_vs_baseline"] < 0.05 and rows[3]["max_abs_diff_vs_baseline"] < 0.05
    for stage in ("stage1", "stage2"):
        assert report["train"][stage]["train_images_per_s"] > 0 and "peak_mem_gib" in report["train"][stage]
