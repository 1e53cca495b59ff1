"""Gradient accumulation (one process, and two gloo DDP processes that skip the gradient all-reduce on
accumulation micro-batches), step-defined runs (``paper-1gpu``), the schedule that follows the run's length,
and the optional TensorBoard logging."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.test_tgecnet_checkpoint_checks import Pairs
from tgecnet_ref.config import TGConfig, load_config
from tgecnet_ref.train import TrainOptions, load_checkpoint, train

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def linear_config(batch: int, accum: int) -> TGConfig:
    """tiny, made batch-linear: no gating noise and no balance term, so that the mean loss of a batch of 4 is
    the mean of the losses of two batches of 2 (what accumulation must reproduce)."""
    cfg = load_config("tiny")
    model = dataclasses.replace(cfg.model, moe_noisy=False)
    st = dataclasses.replace(cfg.stage1, batch_size=batch, accum_steps=accum, w_balance=0.0, epochs=2)
    return dataclasses.replace(cfg, model=model, stage1=st)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_checkpoint(run / "last.pt")["model"].items() if k.startswith("restorer.")}


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("acc") / "b4"
    r = train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out=out, config=linear_config(4, 1), progress=False,
                           echo=lambda s: None))
    assert r.steps == 4
    return out


def test_accumulation_equals_the_large_batch(big_batch: Path, tmp_path: Path) -> None:
    r = train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out=tmp_path / "a2", config=linear_config(2, 2),
                           progress=False, echo=lambda s: None))
    assert r.steps == 4  # optimizer steps: 4 batches of 2 per epoch, 2 per step, 2 epochs
    ref, acc = _weights(big_batch), _weights(tmp_path / "a2")
    assert _close(ref, acc) < 1e-4
    # and differs from not accumulating (4 optimizer steps per epoch of batch 2)
    train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out=tmp_path / "n", config=linear_config(2, 1),
                       progress=False, echo=lambda s: None))
    assert _close(ref, _weights(tmp_path / "n")) > 1e-2
    rows = _rows(tmp_path / "a2" / "steps.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[0]["images_per_s"]) > 0


def test_two_gloo_processes_accumulate_without_syncing_micro_batches(big_batch: Path, tmp_path: Path) -> None:
    """2 processes x batch 1 x 2 accumulated micro-batches = the same global batch of 4 (same items: the
    distributed sampler deals one permutation out), and DDP's all-reduce is skipped on the first micro-batch."""
    script = tmp_path / "ddp_accum.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        import torch
        from torch.nn.parallel import DistributedDataParallel
        from tests.test_tgecnet_accum import linear_config
        from tests.test_tgecnet_checkpoint_checks import Pairs
        from tgecnet_ref.train import TrainOptions, train

        torch.set_num_threads(1)
        calls = []
        original = DistributedDataParallel.no_sync
        def counting(self):
            calls.append(1)
            return original(self)
        DistributedDataParallel.no_sync = counting
        r = train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out={str(tmp_path / "ddp")!r},
                               config=linear_config(1, 2), progress=False, device="cpu", echo=lambda s: None))
        with open({str(tmp_path)!r} + f"/no_sync_{{os.environ['RANK']}}.txt", "w") as fh:
            fh.write(f"{{len(calls)}} {{r.steps}}")
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rank in (0, 1):
        no_sync, steps = map(int, (tmp_path / f"no_sync_{rank}.txt").read_text().split())
        assert steps == 4 and no_sync == 4  # one un-synced micro-batch per optimizer step
    assert _close(_weights(big_batch), _weights(tmp_path / "ddp")) < 1e-4


def test_schedule_follows_a_run_longer_than_configured(tmp_path: Path) -> None:
    notes: list[str] = []
    train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out=tmp_path / "r", config="tiny", epochs=5,
                       progress=False, echo=notes.append))  # tiny's schedule is 3 epochs
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "r" / "steps.csv")]
    assert len(lrs) == 10 and min(lrs) > 0  # before: the last 4 steps trained at lr 0
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))  # one cosine over the whole run
    assert any("stretched" in n for n in notes)


def test_max_steps_ends_the_run_mid_epoch(tmp_path: Path) -> None:
    cfg = load_config("tiny")
    cfg = dataclasses.replace(cfg, stage1=dataclasses.replace(cfg.stage1, max_steps=3, warmup_steps=1,
                                                              schedule_steps=6))
    r = train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out=tmp_path / "m", config=cfg, progress=False,
                           echo=lambda s: None))
    assert r.steps == 3 and r.epochs == 2  # 2 steps per epoch
    lrs = [float(x["lr"]) for x in _rows(tmp_path / "m" / "steps.csv")]
    assert lrs[0] == pytest.approx(cfg.stage1.lr)  # warm-up of one step, then the 6-step cosine
    assert lrs[2] == pytest.approx(cfg.stage1.lr * 0.5 * (1 + torch.cos(torch.tensor(torch.pi / 5)).item()))


def test_paper_1gpu_is_the_papers_global_batch_and_step_counts() -> None:
    c, p = load_config("paper-1gpu"), load_config("paper")
    assert c.model == p.model
    assert c.stage1.batch_size * c.stage1.accum_steps == 8 * 7 and c.stage2.batch_size * c.stage2.accum_steps == 80
    # 35,418 / 26,631 training items over 8 GPUs, batches of 7 / 10 dropped at the end, 40 epochs
    per_epoch = ((35418 // 8) // 7, (26631 // 8) // 10)
    assert (c.stage1.max_steps, c.stage2.max_steps) == (40 * per_epoch[0], 40 * per_epoch[1])
    assert (c.stage1.warmup_steps, c.stage1.schedule_steps) == (5 * per_epoch[0], 180 * per_epoch[0])
    assert (c.stage2.warmup_steps, c.stage2.schedule_steps) == (5 * per_epoch[1], 180 * per_epoch[1])


def test_tensorboard_missing_gives_a_one_line_hint(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    notes: list[str] = []
    r = train(TrainOptions(dataset=Pairs(1, n=8), stage=1, out=tmp_path / "t", config="tiny", epochs=1,
                           progress=False, tensorboard=True, echo=notes.append))
    assert r.steps == 2
    hints = [n for n in notes if "tensorboard" in n.lower()]
    assert len(hints) == 1 and "pip install tensorboard" in hints[0] and "\n" not in hints[0]
    assert not (tmp_path / "t" / "tensorboard").exists()
