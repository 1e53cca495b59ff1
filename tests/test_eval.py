"""``demmi baseline`` and ``demmi eval`` end to end on a small build (one RGB MSRS pair, one gray TNO pair,
three settings): fused-folder checks, refusal on missing images, stamping, the Table-1 aggregation, determinism."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demmi_rf import __version__
from demmi_rf.errors import DemmiError
from demmi_rf.evaluation import read_csv_rows, read_results, scan_fused, setting_table
from demmi_rf.evaluation.table import robust_mean
from demmi_rf.metrics import evaluate, get_profile
from demmi_rf.store import open_dataset

from .conftest import run_cli as run

SETTINGS = ("clean", "noise50", "stripe")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, samples_dir) -> Path:
    """A dataset of 2 test pairs x 3 settings built from copies of two embedded pairs."""
    from demmi_rf.builder import build_dataset

    src = tmp_path_factory.mktemp("src")
    for rel in ("MSRS/test/ir/00055D.png", "MSRS/test/vi/00055D.png", "TNO/ir/07.png", "TNO/vi/07.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples_dir / rel, src / rel)
    out = tmp_path_factory.mktemp("ds") / "small"
    build_dataset(out, [src / "MSRS", src / "TNO"], settings=list(SETTINGS), workers=1)
    return out


@pytest.fixture(scope="session")
def test_ids(small_dataset) -> list[str]:
    with open_dataset(small_dataset) as ds:
        return list(ds.samples(split="test")["sample_id"])


@pytest.fixture(scope="session")
def fused_average(small_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fused") / "average"
    run(["baseline", "average", "--dataset", str(small_dataset), "--out", str(out), "--workers", "1",
         "--no-progress"])
    return out


def copy_fused(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "fused"
    shutil.copytree(src, dst)
    return dst


def eval_args(ds: Path, fused: Path, out: Path, *extra: str, method: str = "average", profile: str = "paper"):
    return ["eval", "--dataset", str(ds), "--fused", str(fused), "--method", method, "--profile", profile,
            "--out", str(out), "--workers", "1", "--no-progress", *extra]


# --- demmi baseline ----------------------------------------------------------------------------------------
def test_baseline_writes_one_png_per_test_sample_with_safe_names(fused_average, test_ids, small_dataset):
    names = sorted(p.name for p in fused_average.iterdir())
    assert names == sorted(i.replace("/", "__") + ".png" for i in test_ids)
    assert "msrs__00055D@noise50.png" in names  # the documented safe form of msrs/00055D@noise50
    with open_dataset(small_dataset) as ds:
        for sid in test_ids:
            row = ds.row(sid)
            with Image.open(fused_average / (sid.replace("/", "__") + ".png")) as im:
                assert im.size == (row["width"], row["height"])
                assert im.mode == ("RGB" if row["vis_channels"] == 3 else "L")


def test_baseline_output_does_not_depend_on_workers(small_dataset, fused_average, tmp_path):
    out = tmp_path / "avg2"
    run(["baseline", "average", "--dataset", str(small_dataset), "--out", str(out), "--workers", "2",
         "--no-progress"])
    for p in fused_average.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_baseline_cli_rejects_unknown_names(small_dataset, tmp_path):
    result = run(["baseline", "median", "--dataset", str(small_dataset), "--out", str(tmp_path)], ok=False)
    assert result.exit_code != 0 and "average" in result.output


def test_baseline_subset_of_settings(small_dataset, tmp_path):
    out = tmp_path / "max"
    run(["baseline", "max", "--dataset", str(small_dataset), "--out", str(out), "--degradations", "stripe",
         "--workers", "1", "--no-progress"])
    assert sorted(p.name for p in out.iterdir()) == ["msrs__00055D@stripe.png", "tno__07@stripe.png"]


# --- demmi eval: complete run ------------------------------------------------------------------------------
def test_eval_writes_stamped_results_and_table_one(small_dataset, fused_average, tmp_path, test_ids):
    out = tmp_path / "res" / "average.json"
    result = run(eval_args(small_dataset, fused_average, out, profile="tang"))
    res = read_results(out)
    with open_dataset(small_dataset) as ds:
        card_hash, content_hash, card = ds.card_hash, ds.content_hash, ds.card
    assert res["method"] == "average" and res["profile"] == "tang" and res["reference"] == "clean"
    assert res["dataset"]["content_hash"] == content_hash == card["content_hash"]
    assert res["dataset"]["card_hash"] == card_hash and res["dataset"]["name"] == card["name"]
    assert res["toolkit_version"] == __version__
    assert res["metrics"] == list(get_profile("tang").keys)
    assert res["settings"] == list(SETTINGS)  # recipe order
    assert [r["setting"] for r in res["table"]] == [*SETTINGS, "mean"]
    assert res["samples"] == {"expected": 6, "scored": 6, "complete": True, "missing": [], "invalid": [],
                              "extra": []}
    # the printed table: settings as rows, then the mean row last
    lines = result.output.splitlines()
    rows = [ln.split()[0] for ln in lines if ln.split() and ln.split()[0] in (*SETTINGS, "mean")]
    assert rows == [*SETTINGS, "mean"]
    assert "MS_SSIM" in result.output and "Nabf↓" in result.output

    # per-sample CSV: one row per sample, values equal an independent call of the metrics
    csv_rows = read_csv_rows(out.with_suffix(".csv"))
    assert [r["sample_id"] for r in csv_rows] == test_ids
    sid = "msrs/00055D@noise50"
    with open_dataset(small_dataset) as ds:
        refs = ds.read(sid, arrays=("ir_clean", "vis_clean"))
    fused = np.asarray(Image.open(fused_average / "msrs__00055D@noise50.png"))
    expected = evaluate(fused, refs["ir_clean"], refs["vis_clean"], "tang")
    got = next(r for r in csv_rows if r["sample_id"] == sid)["values"]
    assert got == expected  # bit-identical through the CSV round trip

    # table: per-setting means of the CSV rows, then the mean over settings
    for row in res["table"][:-1]:
        vals = [r["values"]["MI"] for r in csv_rows if r["setting"] == row["setting"]]
        assert row["n"] == 2
        assert row["values"]["MI"] == pytest.approx(statistics.fmean(vals), rel=1e-15)
    mean = res["table"][-1]
    assert mean["n"] == 3
    assert mean["values"]["SSIM"] == pytest.approx(statistics.fmean(r["values"]["SSIM"] for r in res["table"][:-1]))


def test_eval_is_reproducible_bit_for_bit_and_worker_independent(small_dataset, fused_average, tmp_path):
    a, b = tmp_path / "a" / "results.json", tmp_path / "b" / "results.json"
    run(eval_args(small_dataset, fused_average, a))
    args = eval_args(small_dataset, fused_average, b)
    args[args.index("--workers") + 1] = "2"
    run(args)
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".csv").read_bytes() == b.with_suffix(".csv").read_bytes()
    res = json.loads(a.read_text())
    assert "provenance" in res and not any(k in json.dumps(res) for k in ("timestamp", "hostname"))


def test_reference_degraded_scores_against_the_inputs(small_dataset, fused_average, tmp_path):
    clean, degraded = tmp_path / "clean.json", tmp_path / "degraded.json"
    run(eval_args(small_dataset, fused_average, clean))
    run(eval_args(small_dataset, fused_average, degraded, "--reference", "degraded"))
    rc, rd = read_results(clean), read_results(degraded)
    assert rd["reference"] == "degraded"
    by = {r["setting"]: r["values"] for r in rc["table"]}
    bd = {r["setting"]: r["values"] for r in rd["table"]}
    assert by["clean"] == bd["clean"]  # degraded inputs of the clean setting are the clean sources
    assert by["noise50"]["MSE"] != bd["noise50"]["MSE"]
    # against the noisy VIS, the average (which copies the noise) looks closer than against the clean VIS
    assert bd["noise50"]["MSE"] < by["noise50"]["MSE"]


# --- demmi eval: missing, unusable and extra files ---------------------------------------------------------
def test_missing_images_are_refused_unless_allowed(small_dataset, fused_average, tmp_path):
    fused = copy_fused(fused_average, tmp_path)
    (fused / "tno__07@stripe.png").unlink()
    out = tmp_path / "r.json"
    result = run(eval_args(small_dataset, fused, out), ok=False)
    assert result.exit_code != 0
    assert "1 fused image(s) missing: tno/07@stripe" in result.output
    assert "--allow-missing" in result.output
    assert not out.exists()

    result = run(eval_args(small_dataset, fused, out, "--allow-missing"))
    assert "missing: tno/07@stripe" in result.output
    res = read_results(out)
    assert res["samples"]["missing"] == ["tno/07@stripe"]
    assert res["samples"]["complete"] is False and res["samples"]["scored"] == 5
    assert {r["setting"]: r["n"] for r in res["table"]}["stripe"] == 1


def test_wrong_size_and_bad_mode_are_reported_as_unusable(small_dataset, fused_average, tmp_path):
    fused = copy_fused(fused_average, tmp_path)
    img = np.asarray(Image.open(fused / "msrs__00055D@clean.png"))
    Image.fromarray(img[:-2]).save(fused / "msrs__00055D@clean.png")
    Image.fromarray(np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])).save(fused / "msrs__00055D@stripe.png")
    out = tmp_path / "r.json"
    result = run(eval_args(small_dataset, fused, out), ok=False)
    assert "2 fused image(s) unusable" in result.output
    assert "msrs__00055D@clean.png is 478x640 (HxW) but the sample is 480x640" in result.output
    assert "alpha channel" in result.output
    run(eval_args(small_dataset, fused, out, "--allow-missing"))
    invalid = {d["sample_id"]: d["problem"] for d in read_results(out)["samples"]["invalid"]}
    assert set(invalid) == {"msrs/00055D@clean", "msrs/00055D@stripe"}


def test_extra_files_are_reported_and_ignored(small_dataset, fused_average, tmp_path):
    fused = copy_fused(fused_average, tmp_path)
    (fused / "notes.txt").write_text("hello")
    shutil.copy(fused / "tno__07@clean.png", fused / "tno__99@clean.png")
    shutil.copy(fused / "tno__07@clean.png", fused / "tno__07@clean.jpg")
    out = tmp_path / "r.json"
    result = run(eval_args(small_dataset, fused, out))
    assert "3 extra file(s)" in result.output and "notes.txt" in result.output
    res = read_results(out)
    assert res["samples"]["extra"] == ["notes.txt", "tno__07@clean.jpg", "tno__99@clean.png"]
    assert res["samples"]["complete"] is True and res["samples"]["scored"] == 6


def test_empty_folder_and_bad_options_fail_clearly(small_dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(eval_args(small_dataset, empty, tmp_path / "r.json", "--allow-missing"), ok=False)
    assert "no usable fused image" in result.output
    result = run(eval_args(small_dataset, empty, tmp_path / "r.json", profile="matlab"), ok=False)
    assert result.exit_code != 0 and "matlab" in result.output
    result = run(eval_args(small_dataset, empty, tmp_path / "r.json", "--split", "val"), ok=False)
    assert result.exit_code != 0 and "val" in result.output


def test_scan_fused_sorts_a_folder(tmp_path):
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / "src__a@clean.png")
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "src__b@clean.png")
    Image.fromarray(np.zeros((4, 6), np.uint16)).save(tmp_path / "src__c@clean.png")
    (tmp_path / "sub").mkdir()
    scan = scan_fused(tmp_path, {"src/a@clean": (4, 6), "src/b@clean": (4, 6), "src/c@clean": (4, 6),
                                 "src/d@clean": (4, 6)})
    assert list(scan.found) == ["src/a@clean"]
    assert scan.missing == ("src/d@clean",)
    assert set(scan.invalid) == {"src/b@clean", "src/c@clean"}
    assert "16-bit" in scan.invalid["src/c@clean"] or "mode" in scan.invalid["src/c@clean"]
    assert scan.extra == ("sub/",)
    assert not scan.complete
    with pytest.raises(DemmiError, match="does not exist"):
        scan_fused(tmp_path / "nope", {})


def test_setting_table_means_and_nan_handling():
    nan = float("nan")
    scores = [("a", {"m": 1.0}), ("a", {"m": 3.0}), ("b", {"m": nan}), ("b", {"m": 5.0}), ("c", {"m": nan})]
    rows = setting_table(scores, ["a", "b", "c"], ["m"])
    assert [(r.setting, r.n, r.values["m"]) for r in rows[:2]] == [("a", 2, 2.0), ("b", 2, 5.0)]
    assert math.isnan(rows[2].values["m"])
    assert rows[-1].setting == "mean" and rows[-1].values["m"] == 3.5  # mean of 2.0 and 5.0, NaN left out
    assert robust_mean([0.1] * 10) == 0.1  # fsum: exact where a running sum is not
    with pytest.raises(ValueError, match="not in the table"):
        setting_table([("z", {"m": 1.0})], ["a"], ["m"])


# --- hostile input (issue 12) ----------------------------------------------------------------------------------
def _fake_png(path: Path, width: int, height: int) -> Path:
    """A PNG header declaring ``width`` x ``height`` gray pixels, a few hundred bytes on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_fused_bombs_are_unusable_not_tracebacks(small_dataset, fused_average, tmp_path):
    from demmi_rf.evaluation import read_fused

    fused = copy_fused(fused_average, tmp_path)
    _fake_png(fused / "tno__07@clean.png", 30000, 30000)  # beyond Pillow's own limit
    _fake_png(fused / "tno__07@stripe.png", 9000, 9000)  # beyond ours only
    result = run(eval_args(small_dataset, fused, tmp_path / "r.json"), ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "tno__07@clean.png declares more pixels than Pillow opens" in result.output
    assert "tno__07@stripe.png is 9000x9000" in result.output and "refused before decoding" in result.output
    for name in ("tno__07@clean.png", "tno__07@stripe.png"):
        with pytest.raises(DemmiError, match="refused before decoding"):
            read_fused(fused / name)
    scan = scan_fused(fused_average, {"tno/07@clean": (270, 360)}, max_pixels=100)
    assert "more than the limit of 100" in scan.invalid["tno/07@clean"]


def test_eval_out_never_overwrites_inputs_or_datasets(small_dataset, fused_average, tmp_path):
    manifest = small_dataset / "manifest.csv"
    before = manifest.read_bytes()
    other = tmp_path / "other_ds"
    shutil.copytree(small_dataset, other)
    cases = {
        small_dataset / "manifest.json": "inside the input",  # its .csv would be the manifest
        other / "manifest.json": "inside the DeMMI-RF dataset folder",
        other / "shards" / "x.json": "inside the DeMMI-RF dataset folder",
        fused_average / "r.json": "inside the input",
        tmp_path / "r.csv": "the same file",
    }
    for out, message in cases.items():
        result = run(eval_args(small_dataset, fused_average, out), ok=False)
        assert result.exit_code != 0 and message in result.output, (out, result.output)
    assert manifest.read_bytes() == before and (other / "manifest.csv").read_bytes() == before
    assert not (fused_average / "r.json").exists() and not (tmp_path / "r.csv").exists()
    # an existing file that demmi eval did not write is not overwritten; a previous result is
    notes = tmp_path / "notes.csv"
    notes.write_text("my notes\n")
    result = run(eval_args(small_dataset, fused_average, tmp_path / "notes.json"), ok=False)
    assert "notes.csv exists and is not a per-sample CSV written by 'demmi eval'" in result.output
    assert notes.read_text() == "my notes\n"
    good = tmp_path / "good.json"
    run(eval_args(small_dataset, fused_average, good))
    run(eval_args(small_dataset, fused_average, good))  # re-running over its own results is fine


@pytest.mark.parametrize("method", ["a|b", "x\n| evil | 1 |", "=HYPERLINK(\"http://e\")", "-1+2", "@cmd", "",
                                    " lead", "é", "x" * 65])
def test_eval_refuses_method_names_outside_the_allowed_set(small_dataset, fused_average, tmp_path, method):
    result = run(eval_args(small_dataset, fused_average, tmp_path / "r.json", method=method), ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "method" in result.output
    assert not (tmp_path / "r.json").exists()


def test_per_sample_csv_text_cells_are_neutralised():
    from demmi_rf.evaluation.results import csv_bytes

    rows = [{"sample_id": "=cmd|' /C calc'!A0", "pair_id": "+p", "setting": "clean", "height": 1, "width": 1,
             "fused_channels": 1, "values": {"m": -1.5}, "reasons": {}}]
    text = csv_bytes(rows, ["m"]).decode()
    line = text.splitlines()[1]
    assert line.startswith("'=cmd") and ",'+p," in line and line.endswith(",-1.5,")  # numbers untouched


def test_read_csv_rows_names_the_bad_cell(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("sample_id,pair_id,setting,height,width,fused_channels,CC,nan_reasons\n"
                   "a/b@clean,a/b,clean,4,x4,1,0.5,\n")
    with pytest.raises(DemmiError, match="line 2, column width: 'x4' is not a number"):
        read_csv_rows(bad)
    (tmp_path / "s.csv").write_text("hello,world\n1,2\n")
    with pytest.raises(DemmiError, match="not a per-sample CSV"):
        read_csv_rows(tmp_path / "s.csv")


def test_baseline_out_inside_the_dataset_is_refused(small_dataset, tmp_path):
    before = sorted(p.name for p in small_dataset.rglob("*"))
    for out in (small_dataset, small_dataset / "shards" / "fused"):
        result = run(["baseline", "average", "--dataset", str(small_dataset), "--out", str(out), "--workers", "1",
                      "--no-progress"], ok=False)
        assert result.exit_code != 0 and "inside the dataset folder" in result.output
    assert sorted(p.name for p in small_dataset.rglob("*")) == before
