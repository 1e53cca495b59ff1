"""``demmi export``: each format loaded back with its real library (PIL for the PNG folders, ``webdataset``,
Hugging Face ``datasets``) and compared, pixels and fields, with our reader."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from PIL import Image

from demmi_rf.errors import DatasetError
from demmi_rf.publish.exports import ExportError, export_dataset
from demmi_rf.store import open_dataset

from ._publish_data import built_dataset
from .conftest import run_cli

SETTINGS = "clean,noise50+haze+stripe"
ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    return built_dataset(tmp_path_factory)


def _same_value(ours, theirs) -> bool:
    if isinstance(ours, float) and math.isnan(ours):
        return theirs is None or (isinstance(theirs, float) and math.isnan(theirs))
    if isinstance(ours, tuple):
        return list(ours) == list(theirs)
    if isinstance(ours, (np.integer, np.bool_)):
        return ours.item() == theirs
    return ours == theirs


def _check_fields(row, fields: dict) -> None:
    for column, value in row.items():
        assert _same_value(value, fields[column]), (row["sample_id"], column, value, fields[column])


def test_png_export_matches_the_reader(ds_root, tmp_path):
    out = tmp_path / "png"
    result = run_cli(["export", str(ds_root), str(out), "--format", "png", "--degradations", SETTINGS,
                      "--no-progress"])
    assert "png:" in result.output
    with open(out / "index.csv", newline="", encoding="utf-8") as fh:
        index = list(csv.DictReader(fh))
    with open_dataset(ds_root) as ds:
        expected = ds.samples(settings=SETTINGS.split(","))
        assert [r["sample_id"] for r in index] == list(expected["sample_id"])
        for r in index:
            arrays = ds.read(r["sample_id"])
            for array, col in zip(ARRAYS, ("vi", "ir", "vi_gt", "ir_gt")):
                with Image.open(out / r[col]) as im:
                    assert np.array_equal(np.asarray(im), arrays[array]), (r["sample_id"], array)
    # the layout fusion repositories read: equally named files in vi/ and ir/ per split and setting
    assert (out / "test" / "noise50+haze+stripe" / "vi" / "msrs__00004N.png").is_file()
    assert sorted(p.name for p in (out / "test" / "clean" / "vi").iterdir()) == \
        sorted(p.name for p in (out / "test" / "clean" / "ir").iterdir())


def _keep_mode(key: str, data: bytes):
    """A webdataset decoder: PNG -> numpy in the file's own mode (gray stays HxW)."""
    if key.endswith(".png"):
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)
    return None


def test_webdataset_export_round_trips(ds_root, tmp_path):
    wds = pytest.importorskip("webdataset", reason="webdataset is in the 'publish' extra")
    out = tmp_path / "wds"
    report = export_dataset(ds_root, out, "webdataset", settings=SETTINGS.split(","), shard_samples=4)
    shards = sorted(str(p) for p in out.glob("*.tar"))
    assert len(shards) == report.files and len(shards) >= 3  # several shards per split
    seen = []
    with open_dataset(ds_root) as ds:
        for sample in wds.WebDataset(shards, shardshuffle=False).decode(_keep_mode):
            fields = sample["json"]
            sid = fields["sample_id"]
            seen.append(sid)
            arrays = ds.read(sid)
            for array in ARRAYS:
                assert np.array_equal(sample[f"{array}.png"], arrays[array]), (sid, array)
            _check_fields(ds.row(sid), fields)
        expected = list(ds.samples(settings=SETTINGS.split(","))["sample_id"])
    assert sorted(seen) == sorted(expected) and len(seen) == len(expected)
    # deterministic bytes: a second export is identical
    again = tmp_path / "wds2"
    export_dataset(ds_root, again, "webdataset", settings=SETTINGS.split(","), shard_samples=4)
    assert [p.read_bytes() for p in sorted(out.glob("*.tar"))] == [p.read_bytes() for p in sorted(again.glob("*.tar"))]


def test_hf_export_loads_with_datasets(ds_root, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="datasets is in the 'publish' extra")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "hf"
    export_dataset(ds_root, out, "hf", settings=SETTINGS.split(","), shard_samples=8)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    with open_dataset(ds_root) as ds:
        assert set(loaded) == set(ds.splits)
        for split in ds.splits:
            part = loaded[split]
            expected = ds.samples(split=split, settings=SETTINGS.split(","))
            assert list(part["sample_id"]) == list(expected["sample_id"])
            assert isinstance(part.features["vis"], datasets.Image)
            for item in part:
                arrays = ds.read(item["sample_id"])
                for array in ARRAYS:
                    assert np.array_equal(np.asarray(item[array]), arrays[array]), (item["sample_id"], array)
                _check_fields(ds.row(item["sample_id"]), item)
    # the plain Parquet loader reads the same files
    plain = datasets.load_dataset("parquet", data_files={"test": str(out / "data" / "test-*.parquet")},
                                  cache_dir=str(tmp_path / "cache2"))
    assert plain["test"]["sample_id"] == loaded["test"]["sample_id"]


def test_export_refuses_existing_output_and_bad_names(ds_root, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_dataset(ds_root, out, "png")
    with pytest.raises(ExportError, match="unknown export format"):
        export_dataset(ds_root, tmp_path / "x", "zip")
    with pytest.raises(ExportError, match="inside the dataset"):
        export_dataset(ds_root, ds_root / "export", "png")
    with pytest.raises(DatasetError, match="no split"):
        export_dataset(ds_root, tmp_path / "y", "png", split="validation")
    assert not (tmp_path / "y").exists() and not (tmp_path / "x").exists()
    result = run_cli(["export", str(ds_root), str(out), "--format", "png"], ok=False)
    assert result.exit_code == 1 and "already exists" in result.output


def test_failed_export_leaves_nothing(ds_root, tmp_path, monkeypatch):
    import demmi_rf.publish.exports as exports

    calls = {"n": 0}
    real = exports.png_bytes

    def failing(array, compress_level=6):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(28, "No space left on device")
        return real(array, compress_level)

    monkeypatch.setattr(exports, "png_bytes", failing)
    with pytest.raises(ExportError, match="No space left"):
        export_dataset(ds_root, tmp_path / "out", "png", settings=["clean"])
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary folder


def test_crafted_manifest_names_cannot_escape(ds_root, tmp_path, monkeypatch):
    import demmi_rf.publish.exports as exports

    class Fake:
        root = ds_root

        def samples(self, split=None, settings=None):
            import pandas as pd

            return pd.DataFrame({"sample_id": ["x/../../evil@clean"], "split": ["test"], "setting": ["clean"],
                                 "pair_id": ["x/../../evil"]})

    with pytest.raises(DatasetError, match="cannot be used as a file name"):
        exports._rows(Fake(), None, None)
