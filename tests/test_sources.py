"""Ingestion: every supported layout, pairing, ids, splits, and every bad-input case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from demmi_cli.main import cli
from demmi_rf.errors import (
    BitDepthError,
    ChannelError,
    ImageTooSmallError,
    PairError,
    SizeMismatchError,
    UnreadableImageError,
)
from demmi_rf.sources import discover, read_ir, read_pair, read_vis

MSRS = ["00004N", "00016N"]


def _arr(samples: Path, stem: str, side: str) -> np.ndarray:
    folder = {"ir": "ir", "vis": "vi"}[side]
    return np.asarray(Image.open(samples / "MSRS" / "test" / folder / f"{stem}.png"))


def _save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def _write_pairs(samples: Path, ir_dir: Path, vis_dir: Path, ext: str = ".png", names=None, ir3=False) -> None:
    for i, stem in enumerate(MSRS):
        name = names[i] if names else stem
        ir = _arr(samples, stem, "ir")
        if ir3:
            ir = np.repeat(ir[..., None], 3, axis=2)
        _save(ir_dir / f"{name}{ext}", ir)
        _save(vis_dir / f"{name}{ext}", _arr(samples, stem, "vis"))


# --- layouts -------------------------------------------------------------------------------------------
def test_embedded_samples_are_found(samples_dir):
    res = discover(samples_dir)
    assert res.problems == []
    assert res.counts() == {"msrs": {"test": 4}, "roadscene": {"-": 3}, "tno": {"-": 2}}
    ids = [p.pair_id for p in res.pairs]
    assert ids == sorted(ids) and "msrs/00004N" in ids and "tno/07" in ids and "roadscene/FLIR_06621" in ids
    tno = next(p for p in res.pairs if p.pair_id == "tno/07")
    assert tno.vis_channels == 1 and (tno.height, tno.width) == (256, 256)


def test_shared_realpairs_all_found(realpairs_dir):
    res = discover(realpairs_dir)
    assert res.problems == []
    if realpairs_dir.name == "realpairs":
        assert len(res.pairs) == 38
        assert sorted(res.counts()) == ["msrs", "roadscene", "tno"]


def test_msrs_layout_keeps_official_split(tmp_path, samples_dir):
    root = tmp_path / "MSRS"
    _write_pairs(samples_dir, root / "train" / "ir", root / "train" / "vi")
    _write_pairs(samples_dir, root / "test" / "ir", root / "test" / "vi", names=["00999D", "01000N"])
    res = discover(root)
    assert res.problems == []
    assert {p.pair_id: p.split for p in res.pairs} == {
        "msrs/00004N": "train", "msrs/00016N": "train", "msrs/00999D": "test", "msrs/01000N": "test"}


def test_m3fd_layout(tmp_path, samples_dir):
    root = tmp_path / "M3FD_Fusion"
    _write_pairs(samples_dir, root / "Ir", root / "Vis", names=["00001", "00002"], ir3=True)
    res = discover(tmp_path)
    assert res.problems == []
    assert [p.pair_id for p in res.pairs] == ["m3fd/00001", "m3fd/00002"]
    assert all(p.split is None for p in res.pairs)
    assert read_pair(res.pairs[0]).ir.ndim == 2  # 3 identical channels collapsed


def test_llvip_layout_with_split_children(tmp_path, samples_dir):
    root = tmp_path / "LLVIP"
    _write_pairs(samples_dir, root / "infrared" / "train", root / "visible" / "train", ext=".jpg",
                 names=["010001", "010002"], ir3=True)
    _write_pairs(samples_dir, root / "infrared" / "test", root / "visible" / "test", ext=".jpg",
                 names=["190001", "190002"], ir3=True)
    (root / "Annotations").mkdir()
    (root / "Annotations" / "010001.xml").write_text("<annotation/>")
    res = discover(root)
    assert res.problems == []
    assert {p.pair_id: p.split for p in res.pairs} == {
        "llvip/010001": "train", "llvip/010002": "train", "llvip/190001": "test", "llvip/190002": "test"}


def test_roadscene_layout_ignores_uncropped_and_hr_folders(tmp_path, samples_dir):
    root = tmp_path / "RoadScene"
    _write_pairs(samples_dir, root / "cropinfrared", root / "crop_LR_visible", ext=".jpg",
                 names=["FLIR_00001", "FLIR_00002"])
    big = np.zeros((100, 140, 3), np.uint8)
    _save(root / "crop_HR_visible" / "FLIR_00001.jpg", big)
    _save(root / "infrared" / "FLIR_00001.png", big[..., 0])
    res = discover(root)
    assert res.problems == []
    assert [p.pair_id for p in res.pairs] == ["roadscene/FLIR_00001", "roadscene/FLIR_00002"]
    assert all(p.ir_path.parent.name == "cropinfrared" and p.vis_path.parent.name == "crop_LR_visible"
               for p in res.pairs)


def test_fmb_layout(tmp_path, samples_dir):
    root = tmp_path / "FMB"
    _write_pairs(samples_dir, root / "train" / "Infrared", root / "train" / "Visible", names=["a1", "a2"])
    _write_pairs(samples_dir, root / "test" / "Infrared", root / "test" / "Visible", names=["b1", "b2"])
    (root / "train" / "Label").mkdir()
    res = discover(root)
    assert res.problems == []
    assert {p.pair_id: p.split for p in res.pairs} == {
        "fmb/a1": "train", "fmb/a2": "train", "fmb/b1": "test", "fmb/b2": "test"}


def test_tno_layout_with_bmp_and_tiff(tmp_path, samples_dir):
    root = tmp_path / "TNO"
    ir = np.asarray(Image.open(samples_dir / "TNO" / "ir" / "07.png"))
    vi = np.asarray(Image.open(samples_dir / "TNO" / "vi" / "07.png"))
    _save(root / "ir" / "01.bmp", ir)
    _save(root / "vi" / "01.bmp", np.repeat(vi[..., None], 3, axis=2))  # gray stored as 3 equal channels
    _save(root / "ir" / "02.tif", ir)
    _save(root / "vi" / "02.tif", vi)
    res = discover(root)
    assert res.problems == []
    assert [p.pair_id for p in res.pairs] == ["tno/01", "tno/02"]
    a, b = read_pair(res.pairs[0]), read_pair(res.pairs[1])
    assert a.vis.ndim == 2 and np.array_equal(a.vis, vi) and np.array_equal(b.ir, ir)


def test_ems_layout_uses_clean_ground_truth_and_merges_repeats(tmp_path, samples_dir):
    root = tmp_path / "EMS"
    for kind in ("haze", "stripe"):
        base = root / "train" / kind
        _write_pairs(samples_dir, base / "Infrared_gt", base / "Visible_gt")
        _save(base / "Infrared" / "00004N.png", np.zeros((40, 40), np.uint8))  # degraded input, not a source
        _save(base / "Visible" / "00004N.png", np.zeros((40, 40, 3), np.uint8))
    res = discover(root)
    assert res.problems == []
    assert [p.pair_id for p in res.pairs] == ["ems/00004N", "ems/00016N"]
    assert all(p.ir_path.parent.name == "Infrared_gt" and p.split == "train" for p in res.pairs)


def test_explicit_ir_and_vis_dirs(tmp_path, samples_dir):
    _write_pairs(samples_dir, tmp_path / "therm_frames", tmp_path / "rgb_frames")
    res = discover(ir_dir=tmp_path / "therm_frames", vis_dir=tmp_path / "rgb_frames", name="My Lab Set")
    assert res.problems == []
    assert [p.pair_id for p in res.pairs] == ["my-lab-set/00004N", "my-lab-set/00016N"]


def test_generic_folder_name_becomes_source(tmp_path, samples_dir):
    _write_pairs(samples_dir, tmp_path / "Night_Drive" / "ir", tmp_path / "Night_Drive" / "vis")
    res = discover(tmp_path)
    assert [p.source for p in res.pairs] == ["night-drive", "night-drive"]


# --- bad input -----------------------------------------------------------------------------------------
@pytest.fixture
def good_root(tmp_path, samples_dir) -> Path:
    root = tmp_path / "TNO"
    _write_pairs(samples_dir, root / "ir", root / "vi")
    return root


def _only_problem(res, kind):
    kinds = [p.kind for p in res.problems]
    assert kinds == [kind], [str(p) for p in res.problems]
    return res.problems[0]


def test_unpaired_file_on_either_side(good_root):
    _save(good_root / "ir" / "lonely_ir.png", np.zeros((64, 64), np.uint8))
    _save(good_root / "vi" / "lonely_vis.png", np.zeros((64, 64, 3), np.uint8))
    res = discover(good_root)
    assert sorted(p.kind for p in res.problems) == ["unpaired", "unpaired"]
    msgs = " ".join(p.message for p in res.problems)
    assert "lonely_ir.png" in msgs and "no VIS partner" in msgs and "lonely_vis.png" in msgs and "no IR partner" in msgs
    assert len(res.pairs) == 2


def test_size_mismatch(good_root):
    _save(good_root / "ir" / "00004N.png", np.zeros((480, 600), np.uint8))
    res = discover(good_root)
    prob = _only_problem(res, "size-mismatch")
    assert "00004N" in prob.message and "600x480" in prob.message and "640x480" in prob.message
    assert [p.stem for p in res.pairs] == ["00016N"]
    rec = discover(good_root, check="none").pairs[0]
    with pytest.raises(SizeMismatchError):
        read_pair(rec)


def test_truncated_png_and_jpeg_and_non_image(good_root):
    data = (good_root / "vi" / "00004N.png").read_bytes()
    (good_root / "vi" / "00004N.png").write_bytes(data[: len(data) // 2])
    jpg = _save(good_root / "ir" / "cut.jpg", np.full((64, 64), 128, np.uint8))
    jpg.write_bytes(jpg.read_bytes()[:-200])
    _save(good_root / "vi" / "cut.png", np.zeros((64, 64, 3), np.uint8))
    (good_root / "ir" / "00016N.png").write_text("this is not an image")
    res = discover(good_root)
    assert sorted(p.kind for p in res.problems) == ["unreadable"] * 3
    by_name = {p.path.name: p.message for p in res.problems}
    assert "truncated or corrupt" in by_name["00004N.png"]
    assert "truncated or corrupt" in by_name["cut.jpg"]
    assert "not an image" in by_name["00016N.png"]
    assert res.pairs == []
    with pytest.raises(UnreadableImageError) as err:
        read_vis(good_root / "vi" / "00004N.png")
    assert "00004N.png" in str(err.value)


def test_ir_with_unequal_channels(good_root, samples_dir):
    _save(good_root / "ir" / "00004N.png", _arr(samples_dir, "00004N", "vis"))
    prob = _only_problem(discover(good_root), "bad-channels")
    assert "3 channels that differ" in prob.message and "00004N.png" in prob.message
    with pytest.raises(ChannelError):
        read_ir(good_root / "ir" / "00004N.png")


def test_16_bit_ir_is_refused_unless_converted(good_root):
    ir16 = (np.arange(480 * 640, dtype=np.uint32).reshape(480, 640) % 65536).astype(np.uint16)
    path = good_root / "ir" / "00004N.png"
    _save(path, ir16)
    prob = _only_problem(discover(good_root), "bad-bit-depth")
    assert "16-bit" in prob.message and "--ir16" in prob.message
    with pytest.raises(BitDepthError):
        read_ir(path)
    shifted = read_ir(path, ir16="shift")
    assert shifted.dtype == np.uint8 and np.array_equal(shifted, (ir16 >> 8).astype(np.uint8))
    stretched = read_ir(path, ir16="minmax")
    assert stretched.min() == 0 and stretched.max() == 255
    assert discover(good_root, ir16="minmax").problems == []


def test_16_bit_vis_is_refused(tmp_path):
    path = tmp_path / "v16.png"
    _save(path, np.full((40, 40), 4000, np.uint16))
    with pytest.raises(BitDepthError, match="8-bit"):
        read_vis(path)


def test_rgba_vis_transparent_refused_opaque_accepted(good_root, samples_dir):
    vis = _arr(samples_dir, "00004N", "vis")
    rgba = np.dstack([vis, np.full(vis.shape[:2], 255, np.uint8)])
    _save(good_root / "vi" / "00016N.png", np.dstack([_arr(samples_dir, "00016N", "vis"), rgba[..., 3]]))
    rgba[10, 10, 3] = 0
    _save(good_root / "vi" / "00004N.png", rgba)
    res = discover(good_root)
    prob = _only_problem(res, "bad-channels")
    assert "alpha" in prob.message and "00004N.png" in prob.message
    assert [p.stem for p in res.pairs] == ["00016N"]
    assert read_pair(res.pairs[0]).vis.shape == (480, 640, 3)


def test_image_smaller_than_32_px(tmp_path):
    root = tmp_path / "tiny"
    _save(root / "ir" / "a.png", np.zeros((31, 64), np.uint8))
    _save(root / "vis" / "a.png", np.zeros((31, 64, 3), np.uint8))
    prob = _only_problem(discover(root), "too-small")
    assert "64x31" in prob.message and "32 px" in prob.message
    with pytest.raises(ImageTooSmallError):
        read_ir(root / "ir" / "a.png")


def test_same_stem_with_two_extensions(good_root, samples_dir):
    _save(good_root / "vi" / "00004N.jpg", _arr(samples_dir, "00004N", "vis"))
    res = discover(good_root)
    assert [p.kind for p in res.problems] == ["duplicate-stem", "unpaired"]
    assert "00004N.jpg" in res.problems[0].message and "00004N.png" in res.problems[0].message
    assert [p.stem for p in res.pairs] == ["00016N"]


def test_non_ascii_file_name(good_root, samples_dir):
    for side, folder in (("ir", "ir"), ("vis", "vi")):
        _save(good_root / folder / "straße.png", _arr(samples_dir, "00004N", side))
    res = discover(good_root)
    assert [p.kind for p in res.problems] == ["non-ascii-name", "non-ascii-name"]
    assert "straße.png" in res.problems[0].message
    assert len(res.pairs) == 2


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty" / "ir").mkdir(parents=True)
    (tmp_path / "empty" / "vi").mkdir()
    (tmp_path / "nothing").mkdir()
    res = discover(tmp_path / "empty", tmp_path / "nothing", tmp_path / "does-not-exist")
    assert [p.kind for p in res.problems] == ["no-pairs", "missing-path", "empty-folder"]
    text = [p.message for p in res.problems]
    assert "does-not-exist: path does not exist" in text[1]
    assert "nothing" in text[0] and "--ir-dir" in text[0]
    assert "hold no image files" in text[2]


def test_pair_errors_are_one_family(good_root):
    (good_root / "ir" / "00016N.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rec = [p for p in discover(good_root, check="none").pairs if p.stem == "00016N"][0]
    with pytest.raises(PairError) as err:
        read_pair(rec)
    assert err.value.kind == "unreadable" and err.value.path.name == "00016N.png"


# --- CLI -----------------------------------------------------------------------------------------------
def test_scan_cli_reports_and_continues(good_root, samples_dir, tmp_path):
    _save(good_root / "ir" / "lonely.png", np.zeros((64, 64), np.uint8))
    runner = CliRunner()
    out = runner.invoke(cli, ["scan", str(good_root), str(samples_dir), str(tmp_path / "missing")])
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert any(line.startswith("PROBLEM unpaired:") and "lonely.png" in line for line in lines)
    assert any(line.startswith("PROBLEM missing-path:") for line in lines)
    assert any("11 pairs from 3 source(s)" in line for line in lines)


def test_scan_cli_json(samples_dir):
    out = CliRunner().invoke(cli, ["scan", str(samples_dir), "--json", "--no-progress"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)  # progress lines go to stderr
    assert doc["n_pairs"] == 9 and doc["problems"] == []
    assert {g["source"] for g in doc["groups"]} == {"msrs", "tno", "roadscene"}


def test_scan_cli_explicit_dirs(tmp_path, samples_dir):
    shutil.copytree(samples_dir / "TNO", tmp_path / "t")
    out = CliRunner().invoke(cli, ["scan", "--ir-dir", str(tmp_path / "t" / "ir"), "--vis-dir",
                                   str(tmp_path / "t" / "vi"), "--name", "tno"])
    assert out.exit_code == 0, out.output
    assert "2 pairs from 1 source(s) (tno)" in out.output
