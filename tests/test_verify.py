"""demmi verify / demmi info: checksums of shards and arrays, located problems, card printing."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf.errors import ShardError
from demmi_rf.store import open_dataset, verify_dataset

from .test_build import SMALL_SETTINGS, small_dataset, small_recipe  # noqa: F401 - fixtures


@pytest.fixture()
def copy(tmp_path, small_dataset):  # noqa: F811
    out = tmp_path / "ds"
    shutil.copytree(small_dataset, out)
    return out


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _offset(path, name, chunked):
    with h5py.File(path, "r") as h5:
        ds = h5[name]
        assert (ds.chunks is not None) == chunked, f"{name}: expected chunked={chunked}"
        return ds.id.get_chunk_info(0).byte_offset + 40 if chunked else ds.id.get_offset() + 1000


def test_fresh_dataset_verifies(small_dataset):  # noqa: F811
    report = verify_dataset(small_dataset)
    assert report.ok and report.shards_checked == 5 and report.samples == 36
    # 18 clean arrays + 9 haze VIS + 9 stripe IR + 9 x 2 mixture arrays
    assert report.arrays_checked == 18 + 9 + 9 + 18
    r = CliRunner().invoke(cli, ["verify", str(small_dataset)])
    assert r.exit_code == 0 and any(line.startswith("OK ") and "54 array(s)" in line for line in r.output.splitlines())
    r = CliRunner().invoke(cli, ["verify", "--quick", str(small_dataset)])
    assert r.exit_code == 0 and "quick" in r.output


def test_flipped_byte_in_raw_array_names_shard_and_samples(copy):
    shard = copy / "shards" / "test-00001.h5"
    _flip(shard, _offset(shard, "samples/msrs/00055D@noise50+haze+stripe/vis", chunked=False))
    r = CliRunner().invoke(cli, ["verify", str(copy)])
    assert r.exit_code == 1
    assert "shards/test-00001.h5: sha256 differs from the card" in r.output
    assert "shards/test-00001.h5: sample msrs/00055D@noise50+haze+stripe: array vis: sha256 differs" in r.output
    assert "@haze" not in r.output and "test-00000" not in r.output
    quick = CliRunner().invoke(cli, ["verify", "--quick", str(copy)])
    assert quick.exit_code == 1 and "shards/test-00001.h5: sha256 differs from the card" in quick.output
    assert "sample" not in quick.output.split("problem(s)")[0].replace("sample(s)", "")


def test_flipped_byte_in_compressed_clean_array_names_every_sample_using_it(copy):
    shard = copy / "shards" / "train-00000.h5"
    _flip(shard, _offset(shard, "pairs/roadscene/FLIR_04722/vis", chunked=True))
    report = verify_dataset(copy)
    assert not report.ok
    located = {(p.shard, p.sample, p.array) for p in report.problems if p.sample}
    expected = {("shards/train-00000.h5", f"roadscene/FLIR_04722@{s}", name)
                for s in SMALL_SETTINGS for name in ("vis_clean",) + (("vis",) if s in ("clean", "stripe") else ())}
    assert located == expected


def test_truncated_shard_is_reported_by_verify_and_the_reader(copy):
    shard = copy / "shards" / "train-00001.h5"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    r = CliRunner().invoke(cli, ["verify", str(copy)])
    assert r.exit_code == 1
    assert "shards/train-00001.h5: size" in r.output and "truncated" in r.output
    assert "shards/train-00001.h5: cannot be opened" in r.output
    with open_dataset(copy) as ds:
        sid = ds.samples(split="train").query("shard == 'shards/train-00001.h5'")["sample_id"].iloc[0]
        with pytest.raises(ShardError, match=r"shard shards/train-00001.h5: cannot be opened as HDF5"):
            ds.read(sid)


def test_missing_shard_leftover_temp_and_missing_card(copy):
    (copy / "shards" / "test-00002.h5").unlink()
    (copy / "shards" / ".train-00000.h5.99-beef.tmp").write_bytes(b"x")
    report = verify_dataset(copy)
    messages = [str(p) for p in report.problems]
    assert "shards/test-00002.h5: shard file is missing" in messages
    assert any("leftover temporary file" in m and ".train-00000.h5.99-beef.tmp" in m for m in messages)
    (copy / "dataset.json").unlink()
    r = CliRunner().invoke(cli, ["verify", str(copy)])
    assert r.exit_code == 1 and "dataset card is missing" in r.output


def test_edited_manifest_row_is_reported(copy):
    text = (copy / "manifest.csv").read_text()
    (copy / "manifest.csv").write_text(text.replace("tno/07@haze,", "tno/07@hazy,", 1))
    report = verify_dataset(copy, quick=True)
    assert any("manifest.csv: sha256 differs from the card" in str(p) for p in report.problems)


def test_info_prints_the_card(small_dataset):  # noqa: F811
    r = CliRunner().invoke(cli, ["info", str(small_dataset)])
    assert r.exit_code == 0
    card = json.loads((small_dataset / "dataset.json").read_text())
    assert card["recipe_hash"] in r.output and "<embedded samples>" in r.output
    assert any(line.split() == ["samples", "20", "16", "36"] for line in r.output.splitlines())
    assert "tno: 2 pairs" in r.output and "CC BY 4.0" in r.output
    j = CliRunner().invoke(cli, ["info", "--json", str(small_dataset)])
    assert j.exit_code == 0 and json.loads(j.output) == card
    bad = CliRunner().invoke(cli, ["info", str(small_dataset / "shards")])
    assert bad.exit_code == 1 and "dataset card is missing" in bad.output
