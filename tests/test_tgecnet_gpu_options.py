"""The trainer's and the fuser's speed options, exercised on a CPU: channels-last weights and activations,
bfloat16 autocast, the defaults (autocast off on a CPU), and the CLI flags."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.test_tgecnet_checkpoint_checks import Pairs
from tgecnet_ref.config import load_config
from tgecnet_ref.infer import Fuser
from tgecnet_ref.model import TGECNet
from tgecnet_ref.model.layers import LayerNorm2d, to_channels_last
from tgecnet_ref.train import TrainOptions, train
from tgecnet_ref.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_config("tiny")
    torch.manual_seed(0)
    state = TGECNet(cfg.model).state_dict()
    return save_checkpoint(tmp_path_factory.mktemp("g") / "s2.pt", {"stage": 2, "config": cfg.to_dict(),
                                                                     "model": state})


def test_layer_norm_keeps_the_memory_format() -> None:
    ln = LayerNorm2d(8)
    x = torch.randn(2, 8, 6, 5)
    y = ln(x)
    yc = ln(x.contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous() and yc.is_contiguous(memory_format=torch.channels_last) and not yc.is_contiguous()
    assert torch.equal(y, yc)  # same values, no copy back to NCHW


def test_channels_last_model_and_fuser(ckpt: Path) -> None:
    model = TGECNet(load_config("tiny").model)
    with pytest.raises(RuntimeError):  # why to_channels_last exists: the 5-D prompt components
        model.to(memory_format=torch.channels_last)
    to_channels_last(model)
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    rng = np.random.default_rng(0)
    vis, ir = rng.integers(0, 256, (2, 40, 48), dtype=np.uint8)
    base = Fuser(ckpt, device="cpu")
    fast = Fuser(ckpt, device="cpu", channels_last=True)
    assert base.amp is False  # autocast defaults to off on a CPU (on for CUDA)
    a, b = base.fuse_luminance(vis, ir), fast.fuse_luminance(vis, ir)
    assert float(np.abs(a - b).mean()) < 2e-3  # float rounding of other kernels (a few top-k choices may flip)


def test_training_with_channels_last_and_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    r = train(TrainOptions(dataset=Pairs(1), stage=1, out=tmp_path / "r", config="tiny", epochs=1, amp=True,
                           channels_last=True, progress=False, echo=lambda s: None))
    assert r.steps == 2 and math.isfinite(r.history[-1]["loss"])


def test_fuse_cli_speed_flags(ckpt: Path, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (36, 40), dtype=np.uint8)).save(tmp_path / "a.png")
    run_cli(["fuse", "--checkpoint", str(ckpt), "--ir", str(tmp_path / "a.png"), "--vis", str(tmp_path / "a.png"),
             "--out", str(tmp_path / "f.png"), "--device", "cpu", "--channels-last", "--amp", "--no-tf32"])
    assert Image.open(tmp_path / "f.png").size == (40, 36)
