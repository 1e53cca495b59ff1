"""Ingestion under hostile or odd input: decompression bombs, link loops, folders that cannot be listed,
over-long names, 32-bit/float IR, colour spaces other than RGB, EXIF orientation (issue 12)."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demmi_rf.errors import BitDepthError, ChannelError, ImageTooLargeError
from demmi_rf.sources import discover, read_ir, read_vis
from demmi_rf.sources.discover import MAX_PAIR_NAME
from demmi_rf.sources.images import DEFAULT_MAX_PIXELS, image_size


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def fake_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` gray pixels but holds one compressed row (a few
    hundred bytes on disk: decoding it would allocate the full image before finding it truncated)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1), 9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def _pair(root: Path, stem: str = "a", size: int = 40) -> None:
    _save(root / "ir" / f"{stem}.png", np.full((size, size), 7, np.uint8))
    _save(root / "vi" / f"{stem}.png", np.full((size, size, 3), 9, np.uint8))


# --- decompression bombs -------------------------------------------------------------------------------------
def test_default_limit_covers_common_frames_but_not_bombs():
    assert 1280 * 1024 <= 3840 * 2160 <= 4096 * 2160 <= DEFAULT_MAX_PIXELS < 25000 * 25000


def test_bomb_header_is_refused_before_decoding(tmp_path):
    bomb = fake_png(tmp_path / "bomb.png", 25000, 25000)
    mid = fake_png(tmp_path / "mid.png", 9000, 9000)  # 81 Mpx: above our limit, below Pillow's
    assert bomb.stat().st_size < 2000 and mid.stat().st_size < 2000
    assert image_size(mid) == (9000, 9000)
    # "too-large", not "unreadable": the size was refused from the header, the truncated data never decoded
    for read in (read_ir, read_vis):
        for path, text in ((bomb, "625000000 pixels"), (mid, "9000x9000")):
            with pytest.raises(ImageTooLargeError) as err:
                read(path)
            assert err.value.kind == "too-large"
            assert path.name in str(err.value) and text in str(err.value) and "--max-pixels" in str(err.value)


def test_bomb_pair_is_a_scan_problem_and_the_limit_can_be_raised(tmp_path):
    root = tmp_path / "TNO"
    _pair(root, "ok", size=64)
    fake_png(root / "ir" / "bomb.png", 30000, 30000)
    _save(root / "vi" / "bomb.png", np.zeros((40, 40, 3), np.uint8))
    res = discover(root)
    assert [p.pair_id for p in res.pairs] == ["tno/ok"]
    assert [(p.kind, p.path.name) for p in res.problems] == [("too-large", "bomb.png")]
    # a genuine image above a lowered limit is refused; raising the limit accepts it again
    low = discover(root, max_pixels=64 * 64 - 1)
    assert "tno/ok" not in [p.pair_id for p in low.pairs]
    assert "tno/ok" in [p.pair_id for p in discover(root, max_pixels=64 * 64).pairs]
    with pytest.raises(ValueError, match="max_pixels"):
        discover(root, max_pixels=0)


# --- link loops and folders that cannot be listed ---------------------------------------------------------------
def test_link_loops_are_problems_not_tracebacks(tmp_path):
    root = tmp_path / "TNO"
    _pair(root, "a")
    os.symlink("loop.png", root / "ir" / "loop.png")  # a file link to itself: stat gives ELOOP
    _save(root / "vi" / "loop.png", np.zeros((40, 40, 3), np.uint8))
    other = tmp_path / "other" / "LAB"
    (other / "vi").mkdir(parents=True)
    os.symlink("ir", other / "ir")  # the IR folder is a link to itself
    os.symlink("nowhere", root / "visible")  # a broken alias that "vi" wins over anyway: not a problem
    for check in ("none", "full"):  # "none" is what `demmi build` runs
        res = discover(root, tmp_path / "other", check=check)
        assert [p.pair_id for p in res.pairs] == ["tno/a"]
        kinds = {(p.kind, p.path.name) for p in res.problems}
        # the VIS loop.png loses its partner: unpaired
        assert kinds == {("unreadable", "loop.png"), ("unpaired", "loop.png"), ("unreadable-folder", "ir")}
        assert any("symbolic link" in p.message for p in res.problems)


def test_folders_that_cannot_be_listed_are_problems(tmp_path, monkeypatch):
    """Simulated with a patched os.scandir (tests may run as root, for whom chmod 000 hides nothing)."""
    root = tmp_path / "data"
    _pair(root / "TNO", "a")
    _pair(root / "MSRS" / "test", "b")
    locked = {str(root / "TNO" / "vi"), str(root / "MSRS")}
    real = os.scandir

    def scandir(path="."):
        if str(path) in locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = discover(root, check="none")
    assert res.pairs == []
    found = {(p.kind, str(p.path)) for p in res.problems}
    assert found == {("unreadable-folder", str(root / "TNO" / "vi")), ("unreadable-folder", str(root / "MSRS"))}
    assert all("permission denied" in p.message for p in res.problems)


def test_scan_json_lists_folder_problems(tmp_path):
    from click.testing import CliRunner

    from demmi_cli.main import cli

    root = tmp_path / "TNO"
    _pair(root, "a")
    os.symlink("loop.png", root / "ir" / "loop.png")
    result = CliRunner().invoke(cli, ["scan", str(root), "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    import json

    doc = json.loads(result.stdout)
    assert [p["kind"] for p in doc["problems"]] == ["unreadable"] and doc["n_pairs"] == 1


# --- names too long for the files made from them ------------------------------------------------------------------
def test_overlong_stem_is_a_scan_problem(tmp_path):
    root = tmp_path / "TNO"
    long_stem = "x" * 240
    _pair(root, long_stem)
    ok_stem = "y" * (MAX_PAIR_NAME - len("tno__"))
    _pair(root, ok_stem)
    res = discover(root, check="none")
    assert [p.stem for p in res.pairs] == [ok_stem]
    assert [p.kind for p in res.problems] == ["name-too-long"]
    # the longest accepted id still leaves room for the longest setting, .png and an atomic write's temp affixes
    assert len(f".tno__{ok_stem}@noise50+defocus+haze+stripe.png.4194304-abcdef01.tmp") <= 255


# --- bit depths and colour spaces -----------------------------------------------------------------------------
@pytest.mark.parametrize(("arr", "what"), [
    (np.full((40, 40), 70000, np.int32), "32-bit integer"),
    (np.full((40, 40), 0.5, np.float32), "floating-point"),
])
@pytest.mark.parametrize("ir16", ["error", "shift", "minmax"])
def test_32bit_and_float_ir_are_refused_whatever_ir16(tmp_path, arr, what, ir16):
    path = _save(tmp_path / "ir.tif", arr)
    with pytest.raises(BitDepthError, match=what) as err:
        read_ir(path, ir16=ir16)
    assert "ir.tif" in str(err.value)


def test_16bit_ir_conversions_still_work(tmp_path):
    arr = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40
    for ext in (".png", ".tif"):
        path = _save(tmp_path / f"ir16{ext}", arr)
        assert np.array_equal(read_ir(path, ir16="shift"), (arr >> 8).astype(np.uint8))
        assert read_ir(path, ir16="minmax").max() == 255


def test_lab_vis_is_refused(tmp_path):
    path = tmp_path / "lab.tif"
    Image.new("LAB", (40, 40), (50, 10, 20)).save(path)
    with pytest.raises(ChannelError, match="L\\*a\\*b\\*") as err:
        read_vis(path)
    assert "lab.tif" in str(err.value)


def test_ycbcr_tiff_vis_is_converted_with_the_jfif_equations(tmp_path):
    path = tmp_path / "ycc.tif"
    ycc = np.stack(np.meshgrid(np.arange(40) * 6, np.arange(40) * 5), axis=2).astype(np.uint8)
    ycc = np.concatenate([np.full((40, 40, 1), 120, np.uint8), ycc], axis=2)
    Image.fromarray(ycc, "YCbCr").save(path)
    got = read_vis(path).astype(np.float64)
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    want = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                     y + 1.772 * (cb - 128)], axis=2).clip(0, 255)
    assert np.abs(got - want).max() <= 1.0  # Pillow's fixed-point JFIF conversion


def test_exif_orientation_is_ignored_pixels_as_stored(tmp_path):
    """Decision (docs/sources.md): registration holds between the stored pixel grids, so the tag is ignored."""
    stored = np.zeros((40, 64, 3), np.uint8)
    stored[:, :32] = (200, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "vis.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    got = read_vis(path)
    assert got.shape == (40, 64, 3)
    assert got[:, :28, 0].mean() > 190 and got[:, 36:].mean() < 10


def test_scan_max_pixels_option(tmp_path):
    import json

    from click.testing import CliRunner

    from demmi_cli.main import cli

    root = tmp_path / "TNO"
    _pair(root, "a", size=40)
    low = CliRunner().invoke(cli, ["scan", str(root), "--json", "--max-pixels", "1599"], catch_exceptions=False)
    assert low.exit_code == 1 and {p["kind"] for p in json.loads(low.stdout)["problems"]} == {"too-large"}
    ok = CliRunner().invoke(cli, ["scan", str(root), "--json", "--max-pixels", "1600"], catch_exceptions=False)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["n_pairs"] == 1


def test_baseline_refuses_fused_names_too_long_before_any_work(tmp_path):
    from demmi_rf.baselines.run import check_fused_names, write_png_atomic
    from demmi_rf.errors import DemmiError

    ok = "tno/" + "y" * (MAX_PAIR_NAME - len("tno__")) + "@noise50+defocus+haze+stripe"
    check_fused_names([ok])  # the longest id scan accepts, with the longest setting, fits
    with pytest.raises(DemmiError, match="too long for a fused file name"):
        check_fused_names([ok, "tno/" + "x" * 240 + "@clean"])
    with pytest.raises(DemmiError, match="cannot write the fused image"):
        write_png_atomic(tmp_path / ("z" * 300 + ".png"), np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("exc", [EOFError("early end"), KeyError("tag"), IndexError("tile"), MemoryError()])
def test_any_decoder_failure_is_an_unreadable_image(tmp_path, monkeypatch, exc):
    """Whatever a crafted file makes a Pillow plugin raise, the caller gets a PairError naming the file."""
    from demmi_rf.errors import UnreadableImageError
    from demmi_rf.evaluation import read_fused, scan_fused

    path = _save(tmp_path / "src__a@clean.png", np.zeros((40, 40), np.uint8))

    def broken(self, *args, **kwargs):
        raise exc

    monkeypatch.setattr(Image.Image, "load", broken)
    with pytest.raises(UnreadableImageError, match="src__a@clean.png"):
        read_vis(path)
    res = discover(ir_dir=tmp_path, vis_dir=tmp_path, name="x")
    assert [p.kind for p in res.problems] == ["unreadable"]  # one problem for the pair (its IR is read first)
    from demmi_rf.errors import DemmiError

    with pytest.raises(DemmiError, match="cannot decode the fused image"):
        read_fused(path)
    assert scan_fused(tmp_path, {"src/a@clean": (40, 40)}).found  # the header alone is fine
