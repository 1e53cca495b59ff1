"""TG-ECNet inference: file names and sizes in the layout ``demmi eval`` reads (odd sizes), padding, tiling,
recolouring from the degraded input only, refusal of stage-1 checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from demmi_cli.main import cli
from demmi_rf.ids import safe_name
from demmi_rf.store import open_dataset
from tgecnet_ref.color import recolour, rgb_to_ycbcr, smooth, ycbcr_to_rgb
from tgecnet_ref.config import load_config
from tgecnet_ref.infer import Fuser, pad_to_multiple, tile_starts
from tgecnet_ref.model import TGECNet
from tgecnet_ref.train.checkpoint import CheckpointError, export_safetensors, save_checkpoint

SIZES = {"a": (45, 61, True), "b": (33, 70, False), "c": (50, 37, True), "d": (41, 41, True), "e": (39, 58, False)}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stage-2 and stage-1 checkpoints of a (randomly initialised) tiny model, .pt and .safetensors."""
    d = tmp_path_factory.mktemp("ck")
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = TGECNet(cfg.model)
    state = model.state_dict()
    out = {}
    for stage in (1, 2):
        out[f"s{stage}"] = save_checkpoint(d / f"s{stage}.pt", {"stage": stage, "config": cfg.to_dict(),
                                                                 "model": state})
    out["st"] = export_safetensors(d / "s2.safetensors", state, cfg, 2)
    return out


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build of five odd-sized pairs (RGB and gray VIS) under two settings."""
    root = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(0)
    for name, (h, w, rgb) in SIZES.items():
        for mod in ("ir", "vis"):
            folder = root / "src" / "tiny" / mod
            folder.mkdir(parents=True, exist_ok=True)
            shape = (h, w, 3) if (mod == "vis" and rgb) else (h, w)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{name}.png")
    out = root / "ds"
    res = CliRunner().invoke(cli, ["build", "--source", str(root / "src"), "--out", str(out), "--degradations",
                                   "noise50,stripe", "--workers", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    return out


def test_fuse_dataset_writes_eval_layout_with_original_sizes(ckpts, odd_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "fused"
    res = CliRunner().invoke(cli, ["fuse", "--checkpoint", str(ckpts["s2"]), "--dataset", str(odd_dataset),
                                   "--split", "all", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    frame = open_dataset(odd_dataset).samples()
    expected = {f"{safe_name(s)}.png" for s in frame["sample_id"]}
    assert {p.name for p in out.iterdir()} == expected
    for sid, h, w, c in zip(frame["sample_id"], frame["height"], frame["width"], frame["vis_channels"]):
        with Image.open(out / f"{safe_name(sid)}.png") as im:
            assert im.size == (w, h), sid
            assert im.mode == ("RGB" if c == 3 else "L"), sid


def test_fuse_subset_and_eval_reads_it(ckpts, odd_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "fused"
    res = CliRunner().invoke(cli, ["fuse", "--checkpoint", str(ckpts["st"]), "--dataset", str(odd_dataset),
                                   "--split", "test", "--degradations", "stripe", "--out", str(out),
                                   "--no-progress", "--color", "gray"])
    assert res.exit_code == 0, res.output
    test_ids = open_dataset(odd_dataset).samples(split="test", settings=["stripe"])["sample_id"].tolist()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{safe_name(s)}.png" for s in test_ids)
    assert all(Image.open(p).mode == "L" for p in out.iterdir())
    res = CliRunner().invoke(cli, ["eval", "--dataset", str(odd_dataset), "--fused", str(out), "--method", "tg",
                                   "--degradations", "stripe", "--out", str(tmp_path / "r.json"), "--workers", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.json").is_file()


def test_fuse_one_pair_of_files(ckpts, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (37, 53), dtype=np.uint8)).save(tmp_path / "ir.png")
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(tmp_path / "vis.png")
    res = CliRunner().invoke(cli, ["fuse", "--checkpoint", str(ckpts["s2"]), "--ir", str(tmp_path / "ir.png"),
                                   "--vis", str(tmp_path / "vis.png"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "o" / "vis.png") as im:
        assert im.size == (53, 37) and im.mode == "RGB"
    res = CliRunner().invoke(cli, ["fuse", "--checkpoint", str(ckpts["s2"]), "--ir", str(tmp_path / "ir.png"),
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--vis" in res.output


def test_fuse_no_fast_runs_the_reference_path_within_rounding(ckpts, tmp_path: Path, monkeypatch) -> None:
    """``demmi fuse --no-fast`` takes the reference path; its image equals the fast path's within one grey level
    (the two differ by float rounding only, docs/tgecnet.md "CPU inference")."""
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(tmp_path / "ir.png")
    Image.fromarray(rng.integers(0, 256, (40, 56), dtype=np.uint8)).save(tmp_path / "vis.png")
    import tgecnet_ref.infer as infer

    seen = []

    class Recording(infer.Fuser):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("fast"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(infer, "Fuser", Recording)
    images = {}
    for flag in ("--fast", "--no-fast"):
        res = CliRunner().invoke(cli, ["fuse", "--checkpoint", str(ckpts["s2"]), "--ir", str(tmp_path / "ir.png"),
                                       "--vis", str(tmp_path / "vis.png"), "--out", str(tmp_path / flag), flag])
        assert res.exit_code == 0, res.output
        with Image.open(tmp_path / flag / "vis.png") as im:
            images[flag] = np.asarray(im, dtype=np.int16)
    assert seen == [True, False]
    assert np.abs(images["--fast"] - images["--no-fast"]).max() <= 1


def test_stage1_checkpoint_is_refused(ckpts) -> None:
    with pytest.raises(CheckpointError, match="stage-1"):
        Fuser(ckpts["s1"])


def test_pad_to_multiple_and_tiles() -> None:
    x = torch.arange(37 * 53, dtype=torch.float32).reshape(1, 1, 37, 53)
    p = pad_to_multiple(x)
    assert p.shape[-2:] == (40, 56)
    assert torch.equal(p[..., :37, :53], x)
    assert torch.equal(p[..., 37, :53], x[..., 35, :])  # reflection about the last row
    assert pad_to_multiple(torch.rand(1, 1, 5, 9)).shape[-2:] == (16, 16)  # tiny: replicated up to 16
    assert pad_to_multiple(torch.rand(1, 1, 32, 48)).shape[-2:] == (32, 48)
    for size, tile, overlap in [(100, 32, 8), (32, 32, 8), (20, 32, 8), (257, 64, 16)]:
        starts = tile_starts(size, tile, overlap)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + tile] = True
            assert s + min(tile, size) <= size
        assert covered.all()
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_tiled_fusion(ckpts) -> None:
    rng = np.random.default_rng(4)
    vis, ir = rng.integers(0, 256, (70, 90), dtype=np.uint8), rng.integers(0, 256, (70, 90), dtype=np.uint8)
    whole = Fuser(ckpts["s2"]).fuse_luminance(vis, ir)
    assert np.array_equal(Fuser(ckpts["s2"], tile=96).fuse_luminance(vis, ir), whole)  # one tile = whole image
    tiled = Fuser(ckpts["s2"], tile=32, overlap=8).fuse_luminance(vis, ir)
    assert tiled.shape == (70, 90) and np.isfinite(tiled).all() and tiled.min() >= 0 and tiled.max() <= 1
    with pytest.raises(ValueError, match="multiple of 8"):
        Fuser(ckpts["s2"], tile=30)


def test_recolour_uses_the_degraded_inputs_smoothed_chroma() -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (24, 30, 3)).astype(np.uint8)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-3)
    # BT.601 full range: white -> (255, 128, 128), pure red -> Y = 0.299 * 255, Cr = 128 + 0.5 * 255
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([[[255, 255, 255]]]))[0, 0], [255, 128, 128], atol=1e-3)
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([[[255, 0, 0]]]))[0, 0, [0, 2]], [76.245, 255.5], atol=1e-3)
    fused_y = rng.uniform(40, 200, (24, 30))
    out = recolour(fused_y, rgb, sigma=2.0)
    ycc = rgb_to_ycbcr(out)
    ref = rgb_to_ycbcr(rgb)
    # luminance is the fused one, chroma the degraded input's, low-passed (rounding to uint8: < 1.5 levels)
    assert np.abs(ycc[..., 0] - fused_y).max() < 1.5
    for ch in (1, 2):
        target = smooth(ref[..., ch], 2.0)
        clipped = (out == 0).any(-1) | (out == 255).any(-1)
        assert np.abs(ycc[..., ch] - target)[~clipped].max() < 1.5
    assert float(np.std(smooth(ref[..., 1], 2.0))) < 0.5 * float(np.std(ref[..., 1]))  # it is smoothed


def test_fuse_dataset_without_tqdm_logs_progress_lines(ckpts, odd_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    import sys

    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)
    res = CliRunner().invoke(cli, ["fuse", "--checkpoint", str(ckpts["s2"]), "--dataset", str(odd_dataset),
                                   "--out", str(tmp_path / "f"), "--split", "all", "--limit", "3", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "[demmi] fuse: 3/3 images (100.0%)" in res.output  # off a terminal: a log line with the count
    assert len(list((tmp_path / "f").glob("*.png"))) == 3
