"""Decompression bombs in a build, and the memory estimate checked before a build starts (issue 12, item 7)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from demmi_rf.errors import MemoryBudgetError
from demmi_rf.sources import budget, discover
from demmi_rf.sources.budget import check_build_memory, estimate_build_memory, largest_pair_pixels

from .test_sources_hostile import fake_png


def _pair(root, stem, h, w):
    for side, shape in (("ir", (h, w)), ("vi", (h, w, 3))):
        (root / side).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(shape, 90, np.uint8)).save(root / side / f"{stem}.png")


def test_estimate_is_the_documented_formula():
    est = estimate_build_memory(1280 * 1024, n_settings=16, workers=8, available=2 * 2**30)
    assert est.bytes_per_pixel == budget.BASE_BYTES_PER_PIXEL + 16 * budget.BYTES_PER_PIXEL_PER_SETTING == 104
    assert est.per_worker == 1280 * 1024 * 104 + budget.WORKER_OVERHEAD_BYTES
    assert est.total == 8 * est.per_worker and not est.fits
    assert est.workers_that_fit == 2 * 2**30 // est.per_worker == 6
    assert estimate_build_memory(10, 1, 2).fits  # available unknown: no refusal
    with pytest.raises(ValueError, match="workers"):
        estimate_build_memory(10, 1, -1)


def test_largest_pair_reads_headers_only_and_ignores_bombs(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # raised below: restored after
    root = tmp_path / "TNO"
    _pair(root, "small", 40, 50)
    _pair(root, "big", 64, 96)
    fake_png(root / "ir" / "bomb.png", 25000, 25000)
    fake_png(root / "vi" / "bomb.png", 25000, 25000)
    fake_png(root / "ir" / "mismatch.png", 5000, 5000)  # skipped by the build: its VIS partner is small
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "vi" / "mismatch.png")
    pairs = discover(root, check="none").pairs
    assert len(pairs) == 4
    assert largest_pair_pixels(pairs) == 64 * 96  # the bomb is refused by the readers, it does not count
    assert largest_pair_pixels(pairs, max_pixels=25000 * 25000) == 25000 * 25000


def test_check_refuses_with_the_numbers(tmp_path):
    root = tmp_path / "TNO"
    _pair(root, "a", 64, 96)
    pairs = discover(root, check="none").pairs
    per_worker = estimate_build_memory(64 * 96, 16, 1).per_worker
    assert check_build_memory(pairs, 16, 3, available=3 * per_worker).workers == 3
    with pytest.raises(MemoryBudgetError) as err:
        check_build_memory(pairs, 16, 3, available=2 * per_worker + 1)
    text = str(err.value)
    assert "3 worker(s)" in text and f"{64 * 96} pixels" in text and "104 bytes per pixel" in text
    assert "use --workers 2" in text
    with pytest.raises(MemoryBudgetError, match="even one worker does not fit"):
        check_build_memory(pairs, 16, 1, available=1000)


def test_build_refuses_before_any_work_when_memory_is_short(tmp_path, monkeypatch):
    from demmi_rf.builder import build_dataset

    root = tmp_path / "TNO"
    _pair(root, "a", 64, 96)
    monkeypatch.setattr(budget, "available_memory", lambda: 10 * 2**20)
    out = tmp_path / "ds"
    with pytest.raises(MemoryBudgetError, match="of memory but"):
        build_dataset(out, [root], settings=["clean"], workers=2)
    assert not out.exists()


def test_build_skips_a_bomb_pair_with_a_clear_reason(tmp_path):
    from demmi_rf.builder import build_dataset

    root = tmp_path / "TNO"
    _pair(root, "a", 64, 96)
    fake_png(root / "ir" / "bomb.png", 25000, 25000)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "vi" / "bomb.png")
    report = build_dataset(tmp_path / "ds", [root], settings=["clean"], workers=1)
    assert [(s["pair_id"], s["kind"]) for s in report.skipped] == [("tno/bomb", "too-large")]
    assert "refused before decoding" in report.skipped[0]["message"]
    assert report.card["counts"]


def test_build_max_pixels_option(tmp_path):
    import json

    from click.testing import CliRunner

    from demmi_cli.main import cli

    root = tmp_path / "TNO"
    _pair(root, "a", 64, 96)
    _pair(root, "b", 40, 40)
    args = ["build", "--source", str(root), "--degradations", "clean", "--workers", "1", "--json", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "ds"), "--max-pixels", str(64 * 96 - 1)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(s["pair_id"], s["kind"]) for s in doc["skipped"]] == [("tno/a", "too-large")]
