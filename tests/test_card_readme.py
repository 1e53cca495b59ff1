"""The README dataset card and the Croissant metadata: written by every build and by ``demmi card``, valid
under the real ``mlcroissant`` package, whose records equal the manifest."""

from __future__ import annotations

import json
import math

import pytest

from demmi_rf.errors import DatasetError
from demmi_rf.publish import regenerate_cards
from demmi_rf.publish.card_readme import readme_text
from demmi_rf.publish.croissant import croissant_document
from demmi_rf.store import open_dataset

from ._publish_data import built_dataset
from .conftest import run_cli


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    return built_dataset(tmp_path_factory)


def test_build_writes_readme_and_croissant(ds_root):
    readme = (ds_root / "README.md").read_text(encoding="utf-8")
    with open_dataset(ds_root) as ds:
        card, card_hash = ds.card, ds.card_hash
    assert readme.startswith("---\npretty_name:")
    assert card["content_hash"] in readme and card_hash in readme  # identity and how to verify it
    assert "demmi verify" in readme
    for d in card["sources"]["datasets"]:  # every source's licence and citation
        assert d["licence"].split(";")[0] in readme
        assert d["citation"].split(",")[0] in readme
    for setting in card["recipe"]["settings"]:
        assert f"| {setting} |" in readme  # counts per setting
    doc = json.loads((ds_root / "croissant.json").read_text(encoding="utf-8"))
    files = {d["@id"]: d for d in doc["distribution"]}
    assert files["card"]["sha256"] == card_hash
    assert files["manifest"]["sha256"] == card["manifest"]["sha256"]
    assert files["shards"]["includes"] == "shards/*.h5"


def test_croissant_validates_and_records_equal_the_manifest(ds_root):
    mlc = pytest.importorskip("mlcroissant", reason="mlcroissant is in the 'publish' extra")
    dataset = mlc.Dataset(jsonld=str(ds_root / "croissant.json"))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors, issues.report()
    # the only warning: no datePublished (the file holds no timestamps, so rebuilds give the same bytes)
    assert all("datePublished" in w for w in issues.warnings), issues.report()
    records = list(dataset.records("samples"))
    with open_dataset(ds_root) as ds:
        manifest = ds.manifest
    assert len(records) == len(manifest)

    def text(v):
        return v.decode("utf-8") if isinstance(v, bytes) else v

    for rec, (_, row) in zip(records, manifest.iterrows()):
        assert text(rec["samples/sample_id"]) == row["sample_id"]
        assert text(rec["samples/sha256_vis"]) == row["sha256_vis"]
        assert rec["samples/height"] == row["height"] and rec["samples/vis_channels"] == row["vis_channels"]
        assert rec["samples/changes_ir"] == bool(row["changes_ir"])
        beta = rec["samples/haze.beta"]
        if isinstance(row["haze.beta"], float) and math.isnan(row["haze.beta"]):
            assert beta is None or math.isnan(beta)
        else:
            assert beta == row["haze.beta"]
    arrays = {f["name"]: f for f in json.loads((ds_root / "croissant.json").read_text())["recordSet"][1]["field"]}
    assert set(arrays) == {"vis", "ir", "vis_clean", "ir_clean"} and arrays["vis"]["isArray"] is True


def test_demmi_card_regenerates_identical_bytes(ds_root, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(ds_root, copy)
    before = {n: (copy / n).read_bytes() for n in ("README.md", "croissant.json")}
    for n in before:
        (copy / n).unlink()
    result = run_cli(["card", str(copy)])
    assert "croissant.json" in result.output
    assert {n: (copy / n).read_bytes() for n in before} == before


def test_demmi_card_refuses_a_damaged_dataset(ds_root, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(ds_root, copy)
    (copy / "README.md").unlink()
    with open(copy / "manifest.csv", "a", encoding="utf-8") as fh:
        fh.write("\n")
    with pytest.raises(DatasetError, match="manifest"):
        regenerate_cards(copy)
    assert not (copy / "README.md").exists()  # nothing written for a damaged dataset
    result = run_cli(["card", str(copy)], ok=False)
    assert result.exit_code != 0 and "manifest" in result.output


def test_crafted_card_text_cannot_break_the_readme_table(ds_root):
    with open_dataset(ds_root) as ds:
        card = json.loads(json.dumps(ds.card))
    card["sources"]["datasets"][0]["licence"] = "evil | <script>alert(1)</script>\n## injected"
    text = readme_text(card, "0" * 64)
    row = next(line for line in text.splitlines() if line.startswith("| msrs |"))
    assert "<script>" not in text and "\n## injected" not in text
    assert row.count(" | ") == 4  # five cells: the pipe in the licence is escaped
    doc = croissant_document(card, "0" * 64, [("sample_id", "sc:Text")])
    assert json.loads(json.dumps(doc))["license"][0].startswith("msrs: evil")
