"""Crafted datasets: shards that would read other files, re-signed cards, malformed card fields, deep JSON.

Each hostile dataset is *consistently re-signed* (manifest array sha256s, manifest sha256, shard sha256s and
sizes, content hash all recomputed), as an attacker would do, so only the store's own checks can stop it:
every entry point (the reader, ``DeMMIDataset``, ``demmi verify`` quick and full, ``demmi baseline``,
``demmi info``) must refuse with a ``DatasetError``/``ShardError`` naming the file and the problem, and never
return the secret bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from demmi_rf.errors import DatasetError, ShardError
from demmi_rf.store import open_dataset, verify_dataset
from demmi_rf.store.card import card_bytes, load_card, read_card
from demmi_rf.store.identity import card_content_hash
from demmi_rf.store.manifest import read_manifest

from .conftest import run_cli
from .test_build import small_dataset, small_recipe  # noqa: F401 - fixtures

ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")


# ---- crafting ---------------------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".build.lock"))
    return dst


def _target(root: Path) -> pd.Series:
    """The clean sample of the first RGB pair (its VIS array is what the attack replaces)."""
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    return m[(m.setting == "clean") & (m.vis_channels == "3")].iloc[0]


def _resign(root: Path, card_edit=None) -> None:
    """Recompute every checksum the way an attacker would: array sha256s from what h5py returns (following
    links and external storage), the manifest's and shards' sha256 and size, the content hash."""
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    for i, row in m.iterrows():
        with h5py.File(root / row.shard, "r") as h5:
            for name in ARRAYS:
                data = np.ascontiguousarray(h5[row[f"{name}_path"]][()])
                m.loc[i, f"sha256_{name}"] = hashlib.sha256(data.tobytes()).hexdigest()
    m.to_csv(root / "manifest.csv", index=False, lineterminator="\n")
    card = json.loads((root / "dataset.json").read_text())
    if card_edit is not None:
        card_edit(card)
    raw = (root / "manifest.csv").read_bytes()
    card["manifest"].update(sha256=hashlib.sha256(raw).hexdigest(), bytes=len(raw))
    for shard in card["shards"]:
        data = (root / shard["file"]).read_bytes()
        shard.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    card["content_hash"] = card_content_hash(read_manifest(root / "manifest.csv"), card)
    (root / "dataset.json").write_bytes(card_bytes(card))


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A folder outside every dataset, holding the secret."""
    return tmp_path_factory.mktemp("outside")


@pytest.fixture(scope="module")
def secret(outside) -> np.ndarray:
    """Bytes of a file outside the dataset that an attack tries to read, shaped like the target VIS."""
    tmp_path = outside
    shape = (480, 640, 3)
    data = np.frombuffer(hashlib.shake_256(b"not yours").digest(int(np.prod(shape))), np.uint8).reshape(shape)
    (tmp_path / "secret.bin").write_bytes(data.tobytes())
    with h5py.File(tmp_path / "secret.h5", "w") as h5:
        h5["data"] = data
    return data


def _craft(root: Path, kind: str, outside: Path) -> pd.Series:
    """Replace the target's VIS array in its shard by ``kind`` and re-sign the dataset."""
    row = _target(root)
    shape = (int(row.height), int(row.width), 3)
    assert shape == (480, 640, 3)
    with h5py.File(root / row.shard, "r+") as h5:
        original = h5[row.vis_path][()]
        del h5[row.vis_path]
        if kind == "committed datatype":  # in-file, harmless, but nothing a build writes
            h5[row.vis_path] = original
            h5["meta/type"] = np.dtype("u1")
        elif kind == "compact layout":
            h5[row.vis_path] = original
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            space = h5py.h5s.create_simple((16,))
            h5py.h5d.create(h5.id, b"meta/compact", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl).write(
                h5py.h5s.ALL, h5py.h5s.ALL, np.zeros(16, np.uint8))
        elif kind == "unwritten chunks":  # decodes to fill values: a bomb when the shape is large
            h5.create_dataset(row.vis_path, shape=shape, dtype="u1", chunks=(64, 64, 3), compression="gzip")
        elif kind == "external storage":
            h5.create_dataset(row.vis_path, shape=shape, dtype="u1",
                              external=[(str(outside / "secret.bin"), 0, int(np.prod(shape)))])
        elif kind == "external link":
            h5[row.vis_path] = h5py.ExternalLink(str(outside / "secret.h5"), "/data")
        elif kind == "soft link":
            other = next(p for p in h5["pairs/msrs"] if f"pairs/msrs/{p}/vis" != row.vis_path.lstrip("/"))
            h5[row.vis_path] = h5py.SoftLink(f"/pairs/msrs/{other}/vis")
        elif kind == "virtual":
            layout = h5py.VirtualLayout(shape=shape, dtype="u1")
            layout[...] = h5py.VirtualSource(str(outside / "secret.h5"), "data", shape=shape)
            h5.create_virtual_dataset(row.vis_path, layout)
        elif kind == "lzf filter":  # an HDF5 filter the toolkit never writes (others would load plugins)
            h5.create_dataset(row.vis_path, data=np.zeros(shape, np.uint8), chunks=(64, 64, 3), compression="lzf")
        else:  # pragma: no cover
            raise AssertionError(kind)
    _resign(root)
    return row


HOSTILE = {"external storage": "external raw storage", "external link": "is an external link",
           "soft link": "is a soft link", "virtual": "virtual dataset", "lzf filter": "filter(s) 32000",
           "committed datatype": "/meta/type is a committed datatype", "compact layout": "is a compact dataset",
           "unwritten chunks": "stores 0 of its 80 chunks"}


@pytest.fixture(scope="module", params=list(HOSTILE))
def hostile(request, tmp_path_factory, small_dataset, secret, outside):  # noqa: F811
    """A re-signed dataset with one hostile shard (built once per kind; the tests only read it)."""
    root = _copy(small_dataset, tmp_path_factory.mktemp("hostile") / "ds")
    row = _craft(root, request.param, outside)
    return root, row, HOSTILE[request.param]


# ---- item 6: nothing outside the shard is ever read ----------------------------------------------------------
def test_hostile_shard_was_consistently_resigned(hostile, secret):
    """The attack is real: raw h5py returns the secret (or another array) and every checksum matches."""
    root, row, _ = hostile
    with h5py.File(root / row.shard, "r") as h5:
        data = h5[row.vis_path][()]
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False).set_index("sample_id")
    assert hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest() == m.loc[row.sample_id, "sha256_vis"]
    card = json.loads((root / "dataset.json").read_text())
    assert card["content_hash"] == card_content_hash(read_manifest(root / "manifest.csv"), card)


def test_reader_refuses_hostile_shard(hostile, secret):
    root, row, problem = hostile
    with open_dataset(root) as ds:
        with pytest.raises(ShardError) as err:
            ds.read(row.sample_id)
        assert row.shard in str(err.value) and problem in str(err.value)
        # the whole shard is refused, not only the crafted array, and windows too
        others = ds.manifest[ds.manifest["shard"] == row.shard]["sample_id"]
        for sid in others:
            with pytest.raises(ShardError, match=re.escape(problem)):
                ds.read(sid, arrays=("ir",), window=(0, 0, 8, 8))


@pytest.mark.parametrize("quick", [False, True])
def test_verify_refuses_hostile_shard(hostile, quick):
    root, row, problem = hostile
    report = verify_dataset(root, quick=quick)
    assert not report.ok
    assert any(p.shard == row.shard and problem in p.message for p in report.problems), report.problems
    r = run_cli(["verify", "--quick", str(root)] if quick else ["verify", str(root)], ok=False)
    assert r.exit_code == 1 and row.shard in r.output and problem in r.output


def test_torch_dataset_refuses_hostile_shard(hostile):
    from demmi_rf.torch import DeMMIDataset  # noqa: PLC0415

    root, row, problem = hostile
    ds = DeMMIDataset(root, split=None, settings="clean")
    index = next(i for i in range(len(ds)) if ds.info(i).sample_id == row.sample_id)
    with pytest.raises(ShardError, match=re.escape(problem)):
        ds[index]


def test_baseline_refuses_hostile_shard(hostile, tmp_path, secret):
    from demmi_rf.baselines.run import run_baseline  # noqa: PLC0415

    root, row, problem = hostile
    out = tmp_path / "fused"
    with pytest.raises(ShardError, match=re.escape(problem)):
        run_baseline("max", root, out, split=str(row.split), settings=["clean"], workers=1)
    r = run_cli(["baseline", "max", "--dataset", str(root), "--out", str(tmp_path / "fused2"), "--split",
                 str(row.split), "--degradations", "clean", "--workers", "1"], ok=False)
    assert r.exit_code != 0 and problem in r.output and "Traceback" not in r.output
    for png in list(out.glob("*.png")) + list((tmp_path / "fused2").glob("*.png")):
        assert secret.tobytes()[:4096] not in png.read_bytes()


def test_fresh_shard_passes_the_gate(small_dataset):  # noqa: F811
    """What a build writes (deflate tiles, raw contiguous arrays, /meta/result) is accepted."""
    from demmi_rf.store.safe import open_shard  # noqa: PLC0415

    for rel in sorted(p.name for p in (small_dataset / "shards").iterdir()):
        open_shard(f"shards/{rel}", root=small_dataset).close()


# ---- a root 'format' attribute that is not a string -------------------------------------------------------
@pytest.mark.parametrize("value", [np.array([b"demmi-rf-shard", b"x"]), np.array([1, 2]), 7])
def test_format_attribute_of_another_type_is_a_clear_error(tmp_path, small_dataset, value):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    row = _target(root)
    with h5py.File(root / row.shard, "r+") as h5:
        h5.attrs["format"] = value
    _resign(root)
    with open_dataset(root) as ds, pytest.raises(ShardError, match=f"shard {row.shard}: .*'format' is"):
        ds.read(row.sample_id)
    for quick in (True, False):
        report = verify_dataset(root, quick=quick)
        assert any(p.shard == row.shard and "root attribute 'format' is" in p.message for p in report.problems)


# ---- item 9: a consistently re-signed card ----------------------------------------------------------------
def test_card_recipe_body_must_hash_to_recipe_hash(tmp_path, small_dataset):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")

    def edit(card):  # another seed, the old hash kept: content hash stays valid
        card["recipe"]["seed"] = card["recipe"]["seed"] + 1

    _resign(root, edit)
    report = verify_dataset(root, quick=True)
    assert any("recipe_hash" in p.message and "not the hash of the card's recipe" in p.message
               for p in report.problems), report.problems
    with pytest.raises(DatasetError, match="not the hash of the card's recipe"):
        open_dataset(root)


def _point_first_shard_at(root: Path, rel: str) -> None:
    """Make the card and manifest name the first test shard ``rel`` (re-signed)."""
    old = "shards/test-00000.h5"
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    m.loc[m.shard == old, "shard"] = rel
    m.to_csv(root / "manifest.csv", index=False, lineterminator="\n")

    def edit(card):
        for shard in card["shards"]:
            if shard["file"] == old:
                shard["file"] = rel

    _resign(root, edit)


@pytest.mark.parametrize("where", ["parent", "absolute", "dotdot-inside"])
def test_shard_path_outside_the_dataset_is_refused(tmp_path, small_dataset, where):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    outside = tmp_path / "elsewhere.h5"
    shutil.move(root / "shards/test-00000.h5", outside)
    rel = {"parent": "../elsewhere.h5", "absolute": str(outside),
           "dotdot-inside": "shards/../../elsewhere.h5"}[where]
    _point_first_shard_at(root, rel)
    with pytest.raises(DatasetError, match=r"dataset\.json: field shards\[0\]\.file"):
        open_dataset(root)
    report = verify_dataset(root)
    assert not report.ok and any("shards[0].file" in p.message for p in report.problems)
    r = run_cli(["verify", str(root)], ok=False)
    assert r.exit_code == 1 and "shards[0].file" in r.output


def test_shard_symlink_resolving_outside_is_refused(tmp_path, small_dataset):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    rel = "shards/test-00000.h5"
    outside = tmp_path / "elsewhere.h5"
    shutil.move(root / rel, outside)
    os.symlink(outside, root / rel)  # same bytes: every checksum still matches
    sid = pd.read_csv(root / "manifest.csv").query("shard == @rel").sample_id.iloc[0]
    with open_dataset(root) as ds, pytest.raises(ShardError, match="outside the dataset folder"):
        ds.read(sid)
    for quick in (True, False):
        report = verify_dataset(root, quick=quick)
        assert any(p.shard == rel and "outside the dataset folder" in p.message for p in report.problems)
    from demmi_rf.torch import DeMMIDataset  # noqa: PLC0415

    with pytest.raises(ShardError, match="outside the dataset folder"):
        DeMMIDataset(root, split="test")


def test_manifest_size_must_match_the_stored_array(tmp_path, small_dataset):  # noqa: F811
    """A manifest (re-signed) that gives a sample another height: the stored array no longer matches it."""
    root = _copy(small_dataset, tmp_path / "ds")
    row = _target(root)
    m = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    m.loc[m.sample_id == row.sample_id, "height"] = str(int(row.height) - 1)
    m.to_csv(root / "manifest.csv", index=False, lineterminator="\n")
    _resign(root)
    report = verify_dataset(root)
    shape_problems = [p for p in report.problems if "differs from the manifest's" in p.message]
    assert shape_problems and {p.sample for p in shape_problems} == {row.sample_id}
    with open_dataset(root) as ds, pytest.raises(ShardError, match=r"stored shape \(480, 640, 3\) differs"):
        ds.read(row.sample_id, arrays=("vis",))


# ---- malformed card fields and deep JSON -----------------------------------------------------------------
def _set(path: list, value):
    def edit(card):
        target = card
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return edit


MALFORMED = {
    "format_version string": (_set(["format_version"], "1"), "field format_version must be an integer"),
    "shards not a list": (_set(["shards"], {"file": "shards/test-00000.h5"}), "field shards must be an array"),
    "shard without sha256": (_set(["shards", 0, "sha256"], KeyError), r"field shards\[0\]\.sha256 is missing"),
    "manifest as a string": (_set(["manifest"], "manifest.csv"), "field manifest must be an object"),
    "empty counts": (_set(["counts"], {}), "field counts.by_split is missing"),
    "counts of a split not a number": (_set(["counts", "by_split", "test", "samples"], "20"),
                                       "field counts.by_split.test.samples must be a non-negative integer"),
    "shard listed twice": (lambda c: c["shards"].append(dict(c["shards"][0])), "a second time"),
    "recipe invalid": (_set(["recipe", "settings"], 3), "field recipe: invalid recipe"),
    "sources roots not strings": (_set(["sources", "roots"], [1]), r"field sources.roots\[0\] must be a string"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_card_fields_name_file_and_field(tmp_path, small_dataset, case):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    edit, message = MALFORMED[case]
    card = json.loads((root / "dataset.json").read_text())
    edit(card)
    (root / "dataset.json").write_bytes(card_bytes(card))
    for load in (load_card, read_card, open_dataset):
        with pytest.raises(DatasetError, match=message) as err:
            load(root)
        assert str(root / "dataset.json") in str(err.value)
    report = verify_dataset(root)
    assert not report.ok and any(re.search(message, p.message) for p in report.problems), report.problems
    for args in (["info", str(root)], ["info", "--json", str(root)], ["verify", "--quick", str(root)]):
        r = run_cli(args, ok=False)
        assert r.exit_code == 1 and "dataset.json" in r.output and "Traceback" not in r.output


def test_card_with_zero_samples_is_shown_by_info(tmp_path, small_dataset):  # noqa: F811
    """Well-formed but empty counts (a build where every pair was skipped) print, rather than fail."""
    root = _copy(small_dataset, tmp_path / "ds")
    card = json.loads((root / "dataset.json").read_text())
    card["counts"] = {"samples": 0, "pairs": 0, "by_split": {}}
    (root / "dataset.json").write_bytes(card_bytes(card))
    assert load_card(root).counts.by_split == {}
    r = run_cli(["info", str(root)])
    assert "samples" in r.output
    assert any("counts differ" in p.message for p in verify_dataset(root, quick=True).problems)


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_card_is_a_clear_error(tmp_path, small_dataset, depth):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    raw = (root / "dataset.json").read_bytes().rstrip()
    assert raw.endswith(b"}")
    (root / "dataset.json").write_bytes(raw[:-1] + b', "zz": ' + b"[" * depth + b"]" * depth + b"}\n")
    with pytest.raises(DatasetError, match="nested"):
        open_dataset(root)
    report = verify_dataset(root)
    assert [p.message for p in report.problems if "nested" in p.message]
    r = run_cli(["info", str(root)], ok=False)
    assert r.exit_code == 1 and "nested" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("text", [b'{"format": NaN}', b'{"a": 1, "a": 2}', b"[" + b"1" * 5000 + b"]",
                                  b"\xff\xfe", b"{"])
def test_card_json_oddities_are_clear_errors(tmp_path, small_dataset, text):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    (root / "dataset.json").write_bytes(text)
    with pytest.raises(DatasetError, match=r"dataset\.json: not"):
        load_card(root)


def test_card_symlink_out_of_the_folder_is_refused(tmp_path, small_dataset):  # noqa: F811
    root = _copy(small_dataset, tmp_path / "ds")
    shutil.move(root / "dataset.json", tmp_path / "card.json")
    os.symlink(tmp_path / "card.json", root / "dataset.json")
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        open_dataset(root)
