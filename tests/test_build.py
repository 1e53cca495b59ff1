"""demmi build: plan, splits, shard content, manifest and card, resume, refusal, executors, bad pairs, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf import degrade
from demmi_rf.builder import BuildError, build_dataset, plan_shards
from demmi_rf.recipe import load_recipe
from demmi_rf.rng import seed_material, stable_unit
from demmi_rf.samples import sample_root
from demmi_rf.sources import discover, read_pair
from demmi_rf.store import array_sha256, open_dataset, read_manifest

SMALL_SETTINGS = ("clean", "haze", "stripe", "noise50+haze+stripe")
SHA_COLUMNS = ["sample_id", "sha256_vis", "sha256_ir", "sha256_vis_clean", "sha256_ir_clean"]


def write_test_recipe(folder: Path, pairs_per_shard: int = 2) -> Path:
    """The v1 recipe with small shards (more shards from the 9 embedded pairs)."""
    data = load_recipe().to_json()
    data.update(name="demmi-rf-v1-test", pairs_per_shard=pairs_per_shard)
    path = folder / "recipe-test.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="session")
def small_recipe(tmp_path_factory) -> Path:
    return write_test_recipe(tmp_path_factory.mktemp("recipe"))


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, small_recipe) -> Path:
    """The embedded samples x 4 settings, 2 pairs per shard, 1 local worker (built once per session)."""
    out = tmp_path_factory.mktemp("small") / "ds"
    build_dataset(out, recipe=small_recipe, settings=SMALL_SETTINGS, workers=1)
    return out


def h5_differences(a: Path, b: Path) -> list[str]:
    """Objects, attributes and data that differ between two HDF5 files (empty when equal in content)."""
    out = []

    def items(path):
        found = {}
        with h5py.File(path, "r") as h5:
            def visit(name, obj):
                data = obj[()].tobytes() if isinstance(obj, h5py.Dataset) else None
                layout = (obj.chunks, obj.compression) if isinstance(obj, h5py.Dataset) else None
                found[name] = (dict(obj.attrs), data, layout)
            h5.visititems(visit)
            found["/"] = (dict(h5.attrs), None, None)
        return found

    ia, ib = items(a), items(b)
    for name in sorted(set(ia) | set(ib)):
        if ia.get(name) != ib.get(name):
            out.append(name)
    return out


def _h5_tree(path: Path) -> dict[str, tuple]:
    found = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: found.__setitem__(name, obj.shape) if isinstance(obj, h5py.Dataset) else None)
    return found


# ---- plan and splits ------------------------------------------------------------------------------------
def test_splits_keep_official_and_hash_the_rest_independently_of_seed(small_recipe):
    pairs = discover(sample_root()).pairs
    r = load_recipe(small_recipe)
    plans = [plan_shards(pairs, r.with_overrides(seed=s), "/x") for s in (1, 99)]
    split_of = [{p.pair_id: t.split for t in plan for p in t.pairs} for plan in plans]
    assert split_of[0] == split_of[1], "the seed must never move pairs between splits"
    for rec in pairs:
        if rec.split:  # MSRS samples sit in the official test folder
            assert split_of[0][rec.pair_id] == rec.split == "test"
        else:
            expected = "test" if stable_unit("split", rec.pair_id) < r.test_fraction else "train"
            assert split_of[0][rec.pair_id] == expected


def test_plan_is_sorted_and_chunked(small_recipe):
    pairs = discover(sample_root()).pairs
    plan = plan_shards(list(reversed(pairs)), load_recipe(small_recipe), "/x")
    assert [t.file for t in plan] == [f"shards/test-0000{i}.h5" for i in range(3)] + \
        [f"shards/train-0000{i}.h5" for i in range(2)]
    for split in ("test", "train"):
        ids = [p.pair_id for t in plan if t.split == split for p in t.pairs]
        assert ids == sorted(ids)
    assert all(1 <= len(t.pairs) <= 2 for t in plan)


# ---- content --------------------------------------------------------------------------------------------
def test_each_sample_stores_only_the_modality_its_setting_changed(small_dataset):
    tree = _h5_tree(small_dataset / "shards" / "test-00000.h5")
    for pair in ("msrs/00004N", "msrs/00016N"):
        assert tree[f"pairs/{pair}/vis"] == (480, 640, 3) and tree[f"pairs/{pair}/ir"] == (480, 640)
        assert not any(k.startswith(f"samples/{pair}@clean/") for k in tree)
        assert f"samples/{pair}@haze/vis" in tree and f"samples/{pair}@haze/ir" not in tree
        assert f"samples/{pair}@stripe/ir" in tree and f"samples/{pair}@stripe/vis" not in tree
        assert {f"samples/{pair}@noise50+haze+stripe/{m}" for m in ("vis", "ir")} <= set(tree)
    assert sum(k.startswith("pairs/") for k in tree) == 4  # clean arrays once per pair
    assert len([k for k in tree if k.startswith("samples/")]) == 2 * 4


def test_stored_arrays_equal_degrade_and_attributes_hold_params(small_dataset, small_recipe):
    recipe = load_recipe(small_recipe)
    manifest = read_manifest(small_dataset / "manifest.csv")
    records = {p.pair_id: p for p in discover(sample_root()).pairs}
    with open_dataset(small_dataset) as ds:
        for pid, rows in manifest.groupby("pair_id"):
            pair = read_pair(records[pid])
            for row in rows.itertuples(index=False):
                d = degrade(pair.vis, pair.ir, row.setting, recipe.seed, pair_id=pid, ranges=recipe.degradations)
                assert row.sha256_vis == hashlib.sha256(np.ascontiguousarray(d.vis).tobytes()).hexdigest()
                assert row.sha256_ir == hashlib.sha256(np.ascontiguousarray(d.ir).tobytes()).hexdigest()
                assert json.loads(row.params) == json.loads(json.dumps(d.params))
                got = ds.read(row.sample_id)
                np.testing.assert_array_equal(got["vis"], d.vis)
                np.testing.assert_array_equal(got["ir"], d.ir)
        with h5py.File(small_dataset / "shards" / "test-00000.h5", "r") as h5:
            attrs = h5["samples/msrs/00004N@haze"].attrs
            row = manifest.set_index("sample_id").loc["msrs/00004N@haze"]
            assert json.loads(attrs["params"]) == json.loads(row["params"])
            assert attrs["seed_material_vis"] == row["seed_material_vis"]


def test_manifest_has_the_spec_columns(small_dataset, small_recipe):
    m = read_manifest(small_dataset / "manifest.csv")
    seed = load_recipe(small_recipe).seed
    assert len(m) == 9 * len(SMALL_SETTINGS)
    assert m["sample_id"].tolist() == [f"{p}@{s}" for p, s in zip(m["pair_id"], m["setting"])]
    haze = m[m["setting"] == "haze"]
    assert haze["haze.beta"].between(1.0, 2.0).all() and m.loc[m["setting"] == "stripe", "haze.beta"].isna().all()
    assert m.loc[m["setting"] == "stripe", "stripe.s"].between(3.0, 8.0).all()
    row = m.set_index("sample_id").loc["tno/07@noise50+haze+stripe"]
    assert row["seed_material_vis"] == seed_material(seed, "tno/07", "noise50+haze+stripe", "vis")
    assert row["seed_material_ir"] == seed_material(seed, "tno/07", "noise50+haze+stripe", "ir")
    assert row["atoms"] == ("noise50", "haze", "stripe") and row["vis_channels"] == 1
    assert (row["height"], row["width"]) == (256, 256)
    assert row["shard"] == "shards/test-00002.h5" and row["vis_path"] == "/samples/tno/07@noise50+haze+stripe/vis"
    clean = m.set_index("sample_id").loc["tno/07@clean"]
    assert clean["vis_path"] == clean["vis_clean_path"] == "/pairs/tno/07/vis"
    assert clean["seed_material_vis"] == "" and clean["atoms"] == ()
    assert clean["ir_file"] == "TNO/ir/07.png" and clean["vis_file"] == "TNO/vi/07.png"


def test_card_records_recipe_counts_shards_and_sources(small_dataset, small_recipe):
    card = json.loads((small_dataset / "dataset.json").read_text())
    recipe = load_recipe(small_recipe).with_overrides(settings=SMALL_SETTINGS)
    assert card["recipe"] == recipe.to_json() and card["recipe_hash"] == recipe.hash
    assert card["recipe"]["base"]["hash"] == load_recipe(small_recipe).hash
    assert card["spec_version"] == "1" and card["toolkit_version"]
    assert card["counts"]["by_split"]["test"]["settings"] == {s: 5 for s in SMALL_SETTINGS}
    assert card["counts"]["by_split"]["train"]["pairs"] == 4 and card["counts"]["samples"] == 36
    assert len(card["shards"]) == 5
    for shard in card["shards"]:
        data = (small_dataset / shard["file"]).read_bytes()
        assert shard["bytes"] == len(data) and shard["sha256"] == hashlib.sha256(data).hexdigest()
    manifest = (small_dataset / "manifest.csv").read_bytes()
    assert card["manifest"]["sha256"] == hashlib.sha256(manifest).hexdigest()
    assert card["sources"]["roots"] == ["<embedded samples>"]
    by_source = {d["source"]: d for d in card["sources"]["datasets"]}
    assert {k: v["pairs"] for k, v in by_source.items()} == {"msrs": 4, "roadscene": 3, "tno": 2}
    assert "Toet" in by_source["tno"]["citation"] and "CC BY 4.0" in by_source["tno"]["licence"]
    assert card["skipped"] == []
    assert json.loads((small_dataset / "recipe.json").read_text()) == recipe.to_json()


# ---- resume and refusal ---------------------------------------------------------------------------------
def test_rerun_reuses_complete_shards_and_gives_identical_outputs(tmp_path, small_dataset, small_recipe):
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    before = {n: (copy / n).read_bytes() for n in ("manifest.csv", "dataset.json")}
    report = build_dataset(copy, recipe=small_recipe, settings=SMALL_SETTINGS, workers=1)
    assert report.built == [] and len(report.reused) == 5
    assert {n: (copy / n).read_bytes() for n in before} == before


def test_invalid_or_stale_shards_are_rebuilt(tmp_path, small_dataset, small_recipe):
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    before = (copy / "manifest.csv").read_bytes()
    shard = copy / "shards" / "train-00000.h5"
    shard.write_bytes(shard.read_bytes()[:5000])  # truncated
    (copy / "shards" / "train-00007.h5").write_bytes(b"stale")  # not in the plan
    (copy / "shards" / ".train-00001.h5.123-abcd.tmp").write_bytes(b"partial")
    report = build_dataset(copy, recipe=small_recipe, settings=SMALL_SETTINGS, workers=1)
    assert report.built == ["shards/train-00000.h5"] and len(report.reused) == 4
    assert sorted(p.name for p in (copy / "shards").iterdir()) == \
        ["test-00000.h5", "test-00001.h5", "test-00002.h5", "train-00000.h5", "train-00001.h5"]
    assert (copy / "manifest.csv").read_bytes() == before


def test_building_into_a_folder_of_another_recipe_is_refused(tmp_path, small_dataset, small_recipe):
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    with pytest.raises(BuildError) as err:
        build_dataset(copy, recipe=small_recipe, settings=SMALL_SETTINGS, seed=5, workers=1)
    assert "another recipe" in str(err.value) and "seed 20250713 -> 5" in str(err.value)
    with pytest.raises(BuildError, match=r"settings \[clean, haze, stripe, noise50\+haze\+stripe\] -> \[haze\]"):
        build_dataset(copy, recipe=small_recipe, settings=["haze"], workers=1)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(BuildError, match="not empty and holds no DeMMI-RF build"):
        build_dataset(foreign, settings=["haze"], workers=1)
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"], "a refused build must write nothing"
    assert (copy / "dataset.json").is_file(), "a refused build must not touch the existing dataset"


# ---- executors ------------------------------------------------------------------------------------------
def test_same_pixels_whatever_the_executor_and_worker_count(tmp_path, small_dataset, small_recipe):
    reference = read_manifest(small_dataset / "manifest.csv")
    ref_card = json.loads((small_dataset / "dataset.json").read_text())
    for label, kw in (("local2", {"workers": 2}), ("dask2", {"workers": 2, "executor": "dask"})):
        out = tmp_path / label
        report = build_dataset(out, recipe=small_recipe, settings=SMALL_SETTINGS, **kw)
        assert len(report.built) == 5
        got = read_manifest(out / "manifest.csv")
        pd.testing.assert_frame_equal(got[SHA_COLUMNS], reference[SHA_COLUMNS])
        pd.testing.assert_frame_equal(got, reference)
        card = json.loads((out / "dataset.json").read_text())
        for shard, ref in zip(card["shards"], ref_card["shards"]):
            assert h5_differences(out / shard["file"], small_dataset / ref["file"]) == [], shard["file"]
            # HDF5 files are written deterministically too: even the shard files are byte-identical
            assert shard["sha256"] == ref["sha256"], f"{label} {shard['file']}: same content, other bytes"


# ---- bad input ------------------------------------------------------------------------------------------
def test_unreadable_pair_is_skipped_and_reported(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sample_root(), src, ignore=shutil.ignore_patterns("*.py", "*.md", "__pycache__"))
    bad = src / "RoadScene" / "cropinfrared" / "FLIR_06621.png"
    bad.write_bytes(bad.read_bytes()[:200])
    result = CliRunner().invoke(cli, ["build", "--source", str(src), "--out", str(tmp_path / "ds"),
                                      "--degradations", "haze,stripe", "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "roadscene/FLIR_06621" in result.output and "skipped 1" in result.output
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert [s["pair_id"] for s in card["skipped"]] == ["roadscene/FLIR_06621"]
    assert card["skipped"][0]["path"].endswith("FLIR_06621.png") and card["skipped"][0]["kind"]
    manifest = read_manifest(tmp_path / "ds" / "manifest.csv")
    assert "roadscene/FLIR_06621" not in set(manifest["pair_id"]) and len(manifest) == 8 * 2
    with open_dataset(tmp_path / "ds") as ds:  # nothing half-written: every listed array reads and matches
        for row in ds.manifest.itertuples(index=False):
            assert array_sha256(ds.read(row.sample_id, arrays=("ir",))["ir"]) == row.sha256_ir
    shutil.copy(sample_root() / "RoadScene" / "cropinfrared" / "FLIR_06621.png", bad)  # fixed: the re-run retries
    report = build_dataset(tmp_path / "ds", [src], settings=["haze", "stripe"], workers=1)
    assert report.built == ["shards/train-00000.h5"] and report.skipped == []
    assert len(read_manifest(tmp_path / "ds" / "manifest.csv")) == 9 * 2


# ---- CLI ------------------------------------------------------------------------------------------------
def test_cli_build_embedded_samples_prints_summary(tmp_path):
    out = tmp_path / "ds"
    result = CliRunner().invoke(cli, ["build", "--out", str(out), "--degradations", "stripe,haze+noise50",
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:4] == ["stripe", "5", "4", "9"] for line in lines), result.output
    assert any(line.split()[:4] == ["noise50+haze", "5", "4", "9"] for line in lines)
    assert any(line.split()[:4] == ["samples", "10", "8", "18"] for line in lines)
    assert "shard(s) built" in result.output and "on disk" in result.output
    assert open_dataset(out).settings == ("stripe", "noise50+haze")


def test_cli_errors_are_clear(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["build", "--out", str(tmp_path / "a"), "--degradations", "fog"])
    assert r.exit_code == 2 and "unknown atom 'fog'" in r.output  # a misspelt name is a usage error
    # an ad-hoc mixture of the recipe's atoms builds (issue 14); one with an atom the recipe has no ranges for not
    r = runner.invoke(cli, ["build", "--out", str(tmp_path / "a"), "--degradations", "lowlight+haze+stripe"])
    assert r.exit_code == 2 and "without a [degradations.<atom>] table in recipe 'demmi-rf-v1'" in r.output
    r = runner.invoke(cli, ["build", "--out", str(tmp_path / "a"), "--scheduler", "tcp://x:1"])
    assert r.exit_code == 2 and "--scheduler needs --executor dask" in r.output
    r = runner.invoke(cli, ["build", "--out", str(tmp_path / "a"), "--recipe", "nope"])
    assert r.exit_code == 2 and "unknown recipe 'nope'" in r.output
    r = runner.invoke(cli, ["build", "--out", str(tmp_path / "a"), "--source", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "does not exist" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(cli, ["build", "--out", str(tmp_path / "b"), "--source", str(empty)])
    assert r.exit_code == 1 and "no IR/VIS pairs found" in r.output


def test_progress_reports_plan_and_every_shard(tmp_path, small_recipe):
    events = []
    build_dataset(tmp_path / "ds", recipe=small_recipe, settings=["stripe"], workers=1,
                  progress=lambda kind, data: events.append((kind, data)))
    assert events[0] == ("plan", {"shards": 5, "samples": 9, "settings": 1})
    shards = [d for k, d in events if k == "shard"]
    assert sorted(d["file"] for d in shards) == [f"shards/test-0000{i}.h5" for i in range(3)] + \
        [f"shards/train-0000{i}.h5" for i in range(2)]
    assert sum(len(d["rows"]) for d in shards) == 9


def test_dask_executor_uses_a_given_scheduler_address(tmp_path, small_dataset, small_recipe):
    import logging

    from distributed import Client, LocalCluster

    reference = read_manifest(small_dataset / "manifest.csv")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        out = tmp_path / "ds"
        report = build_dataset(out, recipe=small_recipe, settings=["stripe"], executor="dask",
                               scheduler=cluster.scheduler_address)
        assert len(report.built) == 5
        prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert "demmi-shard" in prefixes  # the shards ran on this scheduler
    got = read_manifest(out / "manifest.csv")
    ref = reference[reference["setting"] == "stripe"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[SHA_COLUMNS], ref[SHA_COLUMNS])


def test_worker_processes_start_from_a_stdin_script(tmp_path):
    import subprocess
    import sys

    code = (f"from demmi_rf.builder import build_dataset\n"
            f"r = build_dataset({str(tmp_path / 'ds')!r}, settings=['stripe'], workers=2)\n"
            f"print(len(r.built))\n")
    done = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3"]  # 9 embedded pairs, 4 per shard: test 2 shards + train 1
