"""demmi verify / demmi info: checksums of shards and arrays, located problems, card printing."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf.errors import ShardError
from demmi_rf.store import manifest as manifest_module
from demmi_rf.store import open_dataset, verify_dataset
from demmi_rf.store import verify as verify_module
from demmi_rf.store.card import card_bytes

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


# ---- verify reads the manifest in chunks (issue 16: memory bounded) ------------------------------------------


def _reorder_manifest(root, rows):
    """Rewrite manifest.csv with its data lines in the order ``rows`` (indices) gives; returns the data lines."""
    lines = (root / "manifest.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    head, data = lines[0], lines[1:]
    (root / "manifest.csv").write_text(head + "".join(data[i] for i in rows(len(data))), encoding="utf-8")
    return data


def test_chunked_verify_of_an_interleaved_manifest_checks_every_array(copy, small_dataset, monkeypatch):  # noqa: F811
    """Chunks of 5 rows and the shards' rows interleaved (every shard spans several chunks): the same arrays are
    checked, the same content hash recomputed, and only the manifest's own sha256 differs."""
    expected = verify_dataset(small_dataset)
    with open_dataset(copy) as ds:
        row = ds.samples(settings="haze").iloc[-1]
    monkeypatch.setattr(manifest_module, "CHUNK_ROWS", 5)
    _reorder_manifest(copy, lambda n: [*range(0, n, 2), *range(1, n, 2)][::-1])
    report = verify_dataset(copy)
    assert [p.message for p in report.problems] == ["manifest.csv: sha256 differs from the card (edited or corrupted)"]
    assert report.arrays_checked == expected.arrays_checked and report.samples == expected.samples
    assert report.content_hash == expected.content_hash
    # a damaged array is still found with its shard's rows spread over chunks
    with h5py.File(copy / row.shard, "r+") as h5:
        arr = h5[row.vis_path]
        first = (0,) * arr.ndim
        arr[first] = arr[first] ^ 0xFF
    texts = [str(p) for p in verify_dataset(copy).problems]
    assert any(f"sample {row.sample_id}: array vis: sha256 differs from the manifest" in t for t in texts), texts


@pytest.mark.parametrize("quick", [True, False])
def test_chunked_verify_finds_a_sample_listed_twice_in_different_chunks(copy, monkeypatch, quick):
    monkeypatch.setattr(manifest_module, "CHUNK_ROWS", 4)
    data = _reorder_manifest(copy, lambda n: [*range(n), 0])  # the first row again, at the end (another chunk)
    sid = data[0].split(",", 1)[0]
    report = verify_dataset(copy, quick=quick)
    assert any(p.message == f"manifest.csv: sample id {sid!r} appears more than once" for p in report.problems)
    assert report.arrays_checked == 0  # no check relies on such rows


def test_chunked_verify_counts_pairs_across_chunks(copy, monkeypatch):
    """Counts are exact when a pair's rows fall in several chunks (distinct pairs are counted once)."""
    monkeypatch.setattr(manifest_module, "CHUNK_ROWS", 3)
    assert verify_dataset(copy, quick=True).ok
    card = json.loads((copy / "dataset.json").read_text())
    split = sorted(card["counts"]["by_split"])[0]
    card["counts"]["by_split"][split]["pairs"] += 1
    card["counts"]["pairs"] += 1
    (copy / "dataset.json").write_bytes(card_bytes(card))
    problems = [p.message for p in verify_dataset(copy, quick=True).problems]
    assert any("counts differ from the samples listed in manifest.csv" in m for m in problems), problems


def test_verify_never_holds_the_whole_manifest(small_dataset, monkeypatch):  # noqa: F811
    """The full and quick checks read the manifest in chunks only (memory bounded by a chunk and one shard)."""
    import demmi_rf.store.reader as reader_module

    def whole(*args, **kwargs):
        raise AssertionError("verify read the whole manifest")

    monkeypatch.setattr(manifest_module, "read_manifest", whole)
    monkeypatch.setattr(reader_module, "read_manifest", whole)
    sizes = []
    real = manifest_module.iter_manifest

    def chunks(path):
        for chunk in real(path, chunk_rows=7):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(verify_module, "iter_manifest", chunks)
    for quick in (True, False):
        sizes.clear()
        report = verify_dataset(small_dataset, quick=quick)
        assert report.ok and report.samples == 36 and sizes == [7] * 5 + [1]
