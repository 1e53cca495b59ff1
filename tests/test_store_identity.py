"""The dataset content hash (``demmi_rf.store.identity``): defined by recipe, samples and pixels only.

Same pixels stored differently (other chunking, compression, hence other shard bytes and another card hash)
keep the content hash; one changed pixel, split or recipe changes it; the reader and ``demmi verify`` check the
card's ``content_hash`` against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf import SPEC_VERSION
from demmi_rf.errors import DatasetError
from demmi_rf.store import array_sha256, content_hash, content_text, open_dataset, read_manifest, verify_dataset
from demmi_rf.store.card import card_bytes
from demmi_rf.store.checksums import file_sha256
from demmi_rf.store.identity import CONTENT_COLUMNS

from .test_build import SMALL_SETTINGS, small_dataset, small_recipe  # noqa: F401 - fixtures


def rewrite_shards(root: Path, chunk: int = 32, level: int = 6) -> None:
    """Re-write every shard of the dataset at ``root`` with h5py: same groups, arrays and attributes, but
    every array deflated at ``level`` in ``chunk``x``chunk`` tiles (other file bytes), then re-write the card
    with the new shard sizes and sha256 (as a build with another HDF5 library would produce)."""
    card = json.loads((root / "dataset.json").read_text())
    for shard in card["shards"]:
        path = root / shard["file"]
        new = path.with_suffix(".new")
        with h5py.File(path, "r") as src, h5py.File(new, "w", track_order=False) as dst:
            dst.attrs.update(dict(src.attrs))

            def copy(name: str, obj) -> None:
                if isinstance(obj, h5py.Dataset):
                    data = obj[()]
                    chunks = (min(chunk, data.shape[0]),) if data.ndim == 1 else \
                        (min(chunk, data.shape[0]), min(chunk, data.shape[1]), *data.shape[2:])
                    d = dst.create_dataset(name, data=data, chunks=chunks, compression="gzip",
                                           compression_opts=level)
                else:
                    d = dst.require_group(name)
                d.attrs.update(dict(obj.attrs))

            src.visititems(copy)
        new.replace(path)
        shard["bytes"], shard["sha256"] = path.stat().st_size, file_sha256(path)
    card["bytes"] = sum(s["bytes"] for s in card["shards"]) + card["manifest"]["bytes"]
    (root / "dataset.json").write_bytes(card_bytes(card))


@pytest.fixture()
def copy(tmp_path, small_dataset) -> Path:  # noqa: F811
    dst = tmp_path / "ds"
    shutil.copytree(small_dataset, dst)
    return dst


def _manifest(root: Path):
    return read_manifest(root / "manifest.csv")


# ---- definition ----------------------------------------------------------------------------------------
def test_content_text_follows_its_documented_definition(small_dataset):  # noqa: F811
    m = _manifest(small_dataset)
    card = json.loads((small_dataset / "dataset.json").read_text())
    text = content_text(m, card["recipe_hash"], SPEC_VERSION).decode("utf-8")
    lines = text.split("\n")
    assert text.endswith("\n") and lines[-1] == ""
    assert lines[:3] == ["demmi-rf-content 1", f"spec_version {SPEC_VERSION}", f"recipe_hash {card['recipe_hash']}"]
    body = [json.loads(ln) for ln in lines[3:-1]]
    assert len(body) == len(m) and [b[0] for b in body] == sorted(m["sample_id"])
    row = m.set_index("sample_id").loc[body[0][0]]
    assert body[0] == [body[0][0], row["split"], int(row["height"]), int(row["width"]), int(row["vis_channels"]),
                       row["sha256_vis"], row["sha256_ir"], row["sha256_vis_clean"], row["sha256_ir_clean"]]
    assert card["content_hash"] == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_content_text_escapes_ids_as_json_does():
    import pandas as pd

    ids = ['tno/a"b@clean', "tno/c\\d@haze", "tno/tab\there@clean", "tno/ü@clean"]
    frame = pd.DataFrame({"sample_id": ids, "split": "test", "height": 2, "width": 3, "vis_channels": 1,
                          **{c: "0" * 64 for c in CONTENT_COLUMNS[5:]}})
    lines = content_text(frame, "r" * 64, "1").decode("utf-8").split("\n")[3:-1]
    want = sorted([[i, "test", 2, 3, 1, *["0" * 64] * 4] for i in ids], key=lambda f: f[0])
    assert lines == [json.dumps(f, separators=(",", ":"), ensure_ascii=False) for f in want]


def test_content_hash_ignores_row_order_and_non_content_columns(small_dataset):  # noqa: F811
    m = _manifest(small_dataset)
    rh = "r" * 64
    base = content_hash(m, rh, "1")
    shuffled = m.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled["shard"] = "shards/elsewhere-00007.h5"  # storage columns do not count
    shuffled["vis_path"] = "/somewhere/else"
    assert content_hash(shuffled, rh, "1") == base
    assert content_hash(m[list(CONTENT_COLUMNS)], rh, "1") == base


def test_content_hash_changes_with_pixels_split_recipe_and_spec(small_dataset):  # noqa: F811
    m = _manifest(small_dataset)
    base = content_hash(m, "r" * 64, "1")
    assert content_hash(m, "s" * 64, "1") != base
    assert content_hash(m, "r" * 64, "2") != base
    moved = m.copy()
    moved.loc[0, "split"] = "train" if moved.loc[0, "split"] == "test" else "test"
    assert content_hash(moved, "r" * 64, "1") != base
    # one pixel of one stored array
    with open_dataset(small_dataset) as ds:
        sid = ds.manifest.sample_id[0]
        vis = ds.read(sid, arrays="vis")["vis"].copy()
    vis.flat[0] ^= 1
    touched = m.copy()
    touched.loc[touched.sample_id == sid, "sha256_vis"] = array_sha256(vis)
    assert content_hash(touched, "r" * 64, "1") != base
    with pytest.raises(DatasetError, match="more than once"):
        content_hash(m.iloc[[0, 0]], "r" * 64, "1")
    with pytest.raises(DatasetError, match="sha256_ir_clean"):
        content_hash(m.drop(columns=["sha256_ir_clean"]), "r" * 64, "1")


# ---- builds ----------------------------------------------------------------------------------------------
def test_same_build_twice_gives_the_same_content_hash(tmp_path, small_dataset, small_recipe):  # noqa: F811
    from demmi_rf.builder import build_dataset

    again = build_dataset(tmp_path / "again", [], recipe=small_recipe, settings=SMALL_SETTINGS, workers=2)
    first = json.loads((small_dataset / "dataset.json").read_text())
    assert again.card["content_hash"] == first["content_hash"]
    with open_dataset(tmp_path / "again") as ds:
        assert ds.content_hash == first["content_hash"]


def test_shards_rewritten_with_other_chunks_keep_the_content_hash(copy, small_dataset):  # noqa: F811
    with open_dataset(small_dataset) as ds:
        original, card_hash = ds.content_hash, ds.card_hash
        sid = ds.manifest.sample_id[3]
        pixels = ds.read(sid)
    rewrite_shards(copy)
    first = json.loads((small_dataset / "dataset.json").read_text())["shards"][0]
    assert file_sha256(copy / first["file"]) != first["sha256"]  # other file bytes
    with h5py.File(copy / first["file"], "r") as h5:
        assert h5["/pairs"].visititems(lambda n, o: o.chunks if isinstance(o, h5py.Dataset) else None)[0] <= 32
    assert verify_dataset(copy).ok  # every array still matches the manifest sha256
    with open_dataset(copy) as ds:
        assert ds.card_hash != card_hash
        assert ds.content_hash == original
        for name, a in ds.read(sid).items():
            np.testing.assert_array_equal(a, pixels[name])


# ---- reader and verify -----------------------------------------------------------------------------------
def _tamper_card(root: Path, value: str) -> None:
    card = json.loads((root / "dataset.json").read_text())
    card["content_hash"] = value
    (root / "dataset.json").write_bytes(card_bytes(card))


def test_reader_refuses_a_card_whose_content_hash_differs(copy):
    with open_dataset(copy) as ds:
        real = ds.content_hash
    _tamper_card(copy, "0" * 64)
    with pytest.raises(DatasetError) as err:
        open_dataset(copy)
    assert "0" * 64 in str(err.value) and real in str(err.value) and "dataset.json" in str(err.value)


def test_reader_computes_the_content_hash_of_an_older_card(copy):
    with open_dataset(copy) as ds:
        real = ds.content_hash
    card = json.loads((copy / "dataset.json").read_text())
    del card["content_hash"]
    (copy / "dataset.json").write_bytes(card_bytes(card))
    with open_dataset(copy) as ds:
        assert ds.content_hash == real


def test_verify_reports_a_tampered_content_hash(copy):
    report = verify_dataset(copy, quick=True)
    assert report.ok and report.content_hash == json.loads((copy / "dataset.json").read_text())["content_hash"]
    _tamper_card(copy, "1" * 64)
    report = verify_dataset(copy, quick=True)
    assert not report.ok
    assert any("content_hash" in str(p) and "1" * 64 in str(p) and report.content_hash in str(p)
               for p in report.problems)
    result = CliRunner().invoke(cli, ["verify", "--quick", str(copy)])
    assert result.exit_code != 0 and "content_hash" in result.output


def test_info_prints_the_content_hash(small_dataset):  # noqa: F811
    result = CliRunner().invoke(cli, ["info", str(small_dataset)])
    assert result.exit_code == 0, result.output
    content = json.loads((small_dataset / "dataset.json").read_text())["content_hash"]
    assert f"content      {content}" in result.output
