"""The published baseline tables in ``manifests/baselines/``: consistent, and reproducible bit for bit.

The slow test rebuilds the embedded-sample dataset, reruns the cheapest baseline (``average``) and its ``tang``
evaluation, and requires the dataset's content hash, every number, id and stamp of the committed results (all but
``provenance`` and ``dataset.card_hash``, which depend on the library builds and the HDF5 file bytes) and the
per-sample CSV bytes to come out identical. If it fails after a deliberate change to the build, the
degradations or the metrics, regenerate the tables with ``bash manifests/baselines/regenerate.sh``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf import baselines
from demmi_rf.evaluation import comparable, read_results, render_leaderboard

TABLES = Path(__file__).resolve().parents[1] / "manifests" / "baselines"
PROFILES = ("tang", "paper")


def run(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_every_baseline_and_profile_is_published_on_one_dataset():
    hashes = set()
    for profile in PROFILES:
        for name in baselines.names():
            res = read_results(TABLES / profile / f"{name}.json")
            assert res["method"] == name and res["profile"] == profile and res["reference"] == "clean"
            assert res["dataset"]["name"] == "demmi-rf-v1" and res["split"] == "test"
            assert res["samples"]["complete"] and res["samples"]["scored"] == res["samples"]["expected"]
            assert len(res["settings"]) == 16
            assert (TABLES / profile / res["per_sample"]["file"]).is_file()
            hashes.add((res["dataset"]["content_hash"], res["dataset"]["card_hash"]))
    assert len(hashes) == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_leaderboards_render_the_committed_results(profile):
    files = [TABLES / profile / f"{n}.json" for n in baselines.names()]
    text = render_leaderboard([read_results(f) for f in files], [str(f) for f in files])
    assert (TABLES / profile / "leaderboard.md").read_text(encoding="utf-8") == text


@pytest.mark.parametrize("profile", PROFILES)
def test_docs_show_the_committed_tables(profile):
    docs = (TABLES.parents[1] / "docs" / "benchmark.md").read_text(encoding="utf-8")
    table = [ln for ln in (TABLES / profile / "leaderboard.md").read_text(encoding="utf-8").splitlines()
             if ln.startswith("|")]
    missing = [ln for ln in table if ln not in docs]
    assert not missing, f"docs/benchmark.md does not show the regenerated {profile} table: {missing[:2]}"


def test_readme_names_the_regeneration_command():
    readme = (TABLES / "README.md").read_text(encoding="utf-8")
    assert "bash manifests/baselines/regenerate.sh" in readme
    assert (TABLES / "regenerate.sh").is_file()


@pytest.mark.slow
def test_average_baseline_regenerates_bit_for_bit(tmp_path):
    from demmi_rf.build import build_dataset

    ds = tmp_path / "dataset"
    build_dataset(ds, [], workers=2)  # the embedded samples, default recipe: what regenerate.sh builds
    fused = tmp_path / "fused"
    run(["baseline", "average", "--dataset", str(ds), "--out", str(fused), "--workers", "2", "--no-progress"])
    out = tmp_path / "average.json"
    run(["eval", "--dataset", str(ds), "--fused", str(fused), "--method", "average", "--profile", "tang",
         "--out", str(out), "--workers", "2", "--no-progress"])
    committed = read_results(TABLES / "tang" / "average.json")
    fresh = read_results(out)
    # numbers first (every value equal exactly: JSON floats round-trip), then the per-sample bytes
    assert fresh["table"] == committed["table"]
    assert out.with_suffix(".csv").read_bytes() == (TABLES / "tang" / "average.csv").read_bytes()
    # then the dataset's identity: same recipe, samples and pixels (the card hash, which also covers the HDF5
    # file bytes of this machine's h5py/HDF5/zlib build, is provenance and may differ)
    assert fresh["dataset"]["content_hash"] == committed["dataset"]["content_hash"], (
        "the embedded-sample build gives different content (recipe, samples or pixels); regenerate "
        "manifests/baselines")
    assert comparable(fresh) == comparable(committed)
    assert "card_hash" not in comparable(fresh)["dataset"] and fresh["dataset"]["card_hash"]
