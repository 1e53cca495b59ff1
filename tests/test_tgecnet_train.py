"""TG-ECNet trainer on a real build of the embedded samples: stage-1 loss falls, bit-for-bit resume, stage 2
from a frozen stage-1 checkpoint, torchrun/gloo DDP with two CPU processes, the CLI, the schedule."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from demmi_cli.main import cli
from tgecnet_ref.train import TrainOptions, load_checkpoint, lr_factor, train
from tgecnet_ref.train.checkpoint import CheckpointError

SETTINGS = "noise50,stripe,noise50+haze+stripe"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``demmi build`` of the embedded samples (no --source), three settings."""
    out = tmp_path_factory.mktemp("tg") / "ds"
    res = CliRunner().invoke(cli, ["build", "--out", str(out), "--degradations", SETTINGS, "--workers", "2",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    return out


def _opts(dataset: Path, out: Path, **kw) -> TrainOptions:
    return TrainOptions(dataset=dataset, out=out, progress=False, echo=lambda s: None,
                        **{"stage": 1, "config": "tiny", **kw})


@pytest.fixture(scope="module")
def stage1(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("runs")
    straight = train(_opts(dataset, base / "a", epochs=3))
    train(_opts(dataset, base / "b", epochs=2))
    resumed = train(_opts(dataset, base / "b", epochs=3, resume=True))
    return {"a": base / "a", "b": base / "b", "straight": straight, "resumed": resumed}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_stage1_tiny_trains_end_to_end_and_loss_falls(stage1: dict) -> None:
    h = stage1["straight"].history
    assert len(h) == 3 and all(math.isfinite(e["loss"]) for e in h)
    assert h[-1]["loss"] < 0.8 * h[0]["loss"], h
    run = stage1["a"]
    for name in ("last.pt", "epoch_0001.pt", "epoch_0003.pt", "model.safetensors", "steps.csv", "steps.jsonl",
                 "epochs.csv", "epochs.jsonl", "config.json"):
        assert (run / name).is_file(), name
    steps = _rows(run / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, stage1["straight"].steps + 1))
    assert {"epoch", "lr", "loss", "l1", "grad", "balance"} <= set(steps[0])
    jsonl = [json.loads(x) for x in (run / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in jsonl] == [0, 1, 2]
    assert json.loads((run / "config.json").read_text())["config"]["name"] == "tiny"


def test_checkpoint_contents_load_weights_only(stage1: dict) -> None:
    ckpt = torch.load(stage1["a"] / "last.pt", map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "step", "rng", "config", "stage"} <= set(ckpt)
    assert ckpt["epoch"] == 3 and ckpt["stage"] == 1
    exported = load_checkpoint(stage1["a"] / "model.safetensors")
    for k, v in exported["model"].items():
        assert torch.equal(v, ckpt["model"][k]), k


def test_resume_is_bit_for_bit_on_cpu(stage1: dict) -> None:
    a = load_checkpoint(stage1["a"] / "last.pt")
    b = load_checkpoint(stage1["b"] / "last.pt")
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["scheduler"] == b["scheduler"]
    # the logs match too (the resumed run appended its epoch to the first run's files)
    drop = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]  # noqa: E731
    assert drop(_rows(stage1["a"] / "epochs.csv")) == drop(_rows(stage1["b"] / "epochs.csv"))
    assert drop(_rows(stage1["a"] / "steps.csv")) == drop(_rows(stage1["b"] / "steps.csv"))


def test_run_folder_guards(dataset: Path, stage1: dict, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="--resume"):
        train(_opts(dataset, stage1["a"], epochs=1))
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(_opts(dataset, tmp_path / "empty", resume=True))
    with pytest.raises(CheckpointError, match="stage-1 run"):
        train(_opts(dataset, stage1["a"], stage=2, resume=True))


def test_stage2_loads_and_freezes_stage1(dataset: Path, stage1: dict, tmp_path: Path) -> None:
    out = tmp_path / "s2"
    res = CliRunner().invoke(cli, ["train", "--dataset", str(dataset), "--stage", "2", "--config", "tiny",
                                   "--init", str(stage1["a"] / "last.pt"), "--out", str(out), "--epochs", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    s1, s2 = load_checkpoint(stage1["a"] / "last.pt"), load_checkpoint(out / "last.pt")
    assert s2["stage"] == 2
    restorer = [k for k in s1["model"] if k.startswith("restorer.")]
    assert restorer and all(torch.equal(s1["model"][k], s2["model"][k]) for k in restorer)
    fusion = [k for k in s1["model"] if k.startswith("fusion.")]
    assert any(not torch.equal(s1["model"][k], s2["model"][k]) for k in fusion)
    # only fusion parameters are in the optimizer
    n_fusion = sum(1 for k in fusion)
    assert len(s2["optimizer"]["param_groups"][0]["params"]) == n_fusion
    rows = _rows(out / "epochs.csv")
    assert {"l1_vis", "l1_ir", "l1_max", "grad", "balance"} <= set(rows[0])


def test_stage2_needs_a_matching_init(dataset: Path, stage1: dict, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["train", "--dataset", str(dataset), "--stage", "2", "--config", "tiny",
                                   "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "--init" in res.output
    with pytest.raises(CheckpointError, match="differs"):
        train(_opts(dataset, tmp_path / "y", stage=2, config="small", init=stage1["a"] / "last.pt"))


def test_dry_run_prints_parameter_counts() -> None:
    res = CliRunner().invoke(cli, ["train", "--stage", "1", "--dry-run", "--out", "unused"])
    assert res.exit_code == 0, res.output
    assert "38,373,147" in res.output and "40,000,426" in res.output  # paper config (see docs/tgecnet.md)
    assert "38.6M / 40.2M" in res.output
    res = CliRunner().invoke(cli, ["train", "--stage", "2", "--dry-run", "--config", "tiny", "--out", "unused"])
    assert res.exit_code == 0 and "trainable in stage 2: 14,320" in res.output
    assert not Path("unused").exists()


def test_ddp_two_cpu_processes_with_torchrun(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "demmi_cli.main", "train", "--dataset", str(dataset), "--stage", "1", "--config", "tiny",
           "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2", "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 2 and len(ckpt["rng"]) == 2  # one RNG state per process
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # independent gating noise
    # 16 restoration items over 2 processes at batch 4: 2 batches per process per epoch
    assert len(_rows(out / "steps.csv")) == 2


def test_lr_schedule() -> None:
    assert lr_factor(0, 4, 20) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(20, 4, 20) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(50, 4, 20, min_ratio=0.1) == pytest.approx(0.1)
    vals = [lr_factor(s, 4, 20) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_time_budget_stops_after_the_step_that_runs_out(dataset: Path, tmp_path: Path) -> None:
    r = train(_opts(dataset, tmp_path / "t", epochs=3, max_seconds=0.0))
    assert r.steps == 1 and r.epochs == 1
    assert load_checkpoint(tmp_path / "t" / "last.pt")["step"] == 1
    assert (tmp_path / "t" / "model.safetensors").is_file()
