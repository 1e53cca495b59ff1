"""Checkpoints are checked before a model is built (a crafted configuration cannot make ``fuse`` allocate
gigabytes; weights that do not match their configuration give a clear error), optional dependencies are
checked before work starts, and ``train``/``fuse`` need no tqdm and report one line per epoch off a terminal."""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from demmi_rf.optional import MissingDependencyError
from tests.conftest import run_cli
from tgecnet_ref.config import MAX_PARAMETERS, ModelConfig, config_from_dict, load_config
from tgecnet_ref.infer import Fuser
from tgecnet_ref.model import TGECNet
from tgecnet_ref.train import TrainOptions, train
from tgecnet_ref.train.checkpoint import CheckpointError, expected_shapes, export_safetensors, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class Pairs(Dataset):
    """Random 32x32 items in the layout of ``DeMMIDataset`` (restoration or fusion)."""

    def __init__(self, stage: int, n: int = 8) -> None:
        g = torch.Generator().manual_seed(stage)
        self.x = torch.rand(n, 4, 1, 32, 32, generator=g)
        self.stage = stage

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict:
        a, b, c, d = self.x[i]
        if self.stage == 1:
            return {"input": a, "target": b}
        return {"vis": a, "ir": b, "vis_clean": c, "ir_clean": d}


@pytest.fixture(scope="module")
def tiny_state() -> dict:
    torch.manual_seed(0)
    return TGECNet(load_config("tiny").model).state_dict()


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_crafted_safetensors_with_huge_ffn_is_refused_before_allocating(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    cfg = load_config("tiny").to_dict()
    cfg["model"]["ffn_expansion_factor"] = 1e7
    path = tmp_path / "bomb.safetensors"
    save_file({"x": torch.zeros(1)}, str(path),
              metadata={"format": "tgecnet_ref/1", "config": json.dumps(cfg), "stage": "2"})
    assert path.stat().st_size < 4096
    before = _peak_mib()
    with pytest.raises(CheckpointError, match="ffn_expansion_factor"):
        Fuser(path, device="cpu")
    assert _peak_mib() - before < 200  # nothing near the gigabytes the model would take
    res = run_cli(["fuse", "--checkpoint", str(path), "--ir", str(path), "--vis", str(path), "--out",
                   str(tmp_path / "o.png")], ok=False)
    assert res.exit_code == 1 and "ffn_expansion_factor" in res.output and "Traceback" not in res.output


def test_in_bounds_but_enormous_configuration_is_refused_on_the_meta_device() -> None:
    big = dataclasses.replace(ModelConfig(), dim=1024, num_blocks=(64, 64, 64, 64), heads=(8, 8, 8, 8))
    before = _peak_mib()
    with pytest.raises(ValueError, match="parameters"):
        expected_shapes(big)
    assert _peak_mib() - before < 200
    assert sum(int(torch.tensor(s).prod()) for s in expected_shapes(ModelConfig()).values()) < MAX_PARAMETERS


@pytest.mark.parametrize("bad", [{"dim": -3}, {"dim": 2.5}, {"heads": [1, 1, 1, "x"]}, {"moe_noisy": 1},
                                 {"ffn_expansion_factor": float("nan")}, {"compat": "theirs"}, {"num_blocks": 7}])
def test_model_configuration_types_and_bounds(bad: dict) -> None:
    data = load_config("tiny").to_dict()
    data["model"].update(bad)
    with pytest.raises(ValueError, match=f"model.{next(iter(bad))}"):
        config_from_dict(data)


def test_configuration_tables_must_be_tables() -> None:
    with pytest.raises(ValueError, match="must be a table"):
        config_from_dict({"model": [1, 2]})
    with pytest.raises(ValueError, match="accum_steps"):
        config_from_dict({"stage1": {"accum_steps": 0}})


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_weights_that_do_not_match_their_configuration(kind: str, tiny_state: dict, tmp_path: Path) -> None:
    cfg = load_config("tiny")
    state = dict(tiny_state)
    state["fusion.output.weight"] = torch.zeros(1, 16, 5, 5)  # wrong shape
    del state["restorer.latent.0.attn.temperature"]  # missing
    state["fusion.extra"] = torch.zeros(2)  # unexpected
    if kind == "pt":
        path = save_checkpoint(tmp_path / "m.pt", {"stage": 2, "config": cfg.to_dict(), "model": state})
    else:
        path = export_safetensors(tmp_path / "m.safetensors", state, cfg, 2)
    with pytest.raises(CheckpointError) as err:
        Fuser(path, device="cpu")
    msg = str(err.value)
    assert str(path) in msg and "fusion.output.weight" in msg and "latent.0.attn.temperature" in msg
    assert "fusion.extra" in msg
    res = run_cli(["fuse", "--checkpoint", str(path), "--ir", str(path), "--vis", str(path), "--out",
                   str(tmp_path / "o.png")], ok=False)
    assert res.exit_code == 1 and "do not match" in res.output and "Traceback" not in res.output


def test_pt_checkpoint_with_a_crafted_configuration(tiny_state: dict, tmp_path: Path) -> None:
    cfg = load_config("tiny").to_dict()
    cfg["model"]["dim"] = 10**6
    path = save_checkpoint(tmp_path / "m.pt", {"stage": 2, "config": cfg, "model": tiny_state})
    with pytest.raises(CheckpointError, match="model.dim"):
        Fuser(path, device="cpu")


def test_train_refuses_before_training_without_safetensors(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors -> ImportError
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'demmi-rf\[torch\]'"):
        train(TrainOptions(dataset=Pairs(1), stage=1, out=tmp_path / "run", config="tiny", progress=False,
                           echo=lambda s: None))
    assert not (tmp_path / "run").exists()  # refused before anything was done
    res = run_cli(["train", "--stage", "1", "--config", "tiny", "--dataset", str(tmp_path), "--out",
                   str(tmp_path / "run2")], ok=False)
    assert res.exit_code == 1 and "pip install 'demmi-rf[torch]'" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "run2").exists()


def test_train_and_fuse_work_without_tqdm_and_log_one_line_per_epoch(monkeypatch, capsys, tmp_path: Path) -> None:
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)
    r = train(TrainOptions(dataset=Pairs(1), stage=1, out=tmp_path / "s1", config="tiny", epochs=2,
                           progress=True, echo=lambda s: None))  # stderr is no terminal here: log lines
    assert r.steps == 4
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " epoch " in ln]
    assert len(lines) == 2, lines
    for n, ln in enumerate(lines, start=1):
        assert ln.startswith(f"[demmi] stage 1 epoch {n}/2: loss ")
        for part in ("l1 ", "grad ", "balance ", ", lr ", " items/s", "ETA "):
            assert part in ln, ln
    train(TrainOptions(dataset=Pairs(2), stage=2, out=tmp_path / "s2", config="tiny", epochs=1,
                       init=tmp_path / "s1" / "last.pt", progress=False, echo=lambda s: None))
    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray((torch.rand(36, 40) * 255).byte().numpy()).save(img)
    res = run_cli(["fuse", "--checkpoint", str(tmp_path / "s2" / "model.safetensors"), "--ir", str(img), "--vis",
                   str(img), "--out", str(tmp_path / "f.png"), "--device", "cpu"])
    assert (tmp_path / "f.png").is_file(), res.output


def test_config_option_is_only_for_public_files(tiny_state: dict, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", {"stage": 2, "config": load_config("tiny").to_dict(),
                                               "model": tiny_state})
    with pytest.raises(CheckpointError, match="carries its own configuration"):
        Fuser(path, device="cpu", config="paper")
    assert Fuser(path, device="cpu", compat="public").config.model.compat == "public"
