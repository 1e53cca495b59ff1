"""Store: shard writer (atomic, deterministic, adaptive compression), manifest round trip, reader API."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from demmi_rf.errors import DatasetError, ShardError
from demmi_rf.store import ShardWriter, array_sha256, open_dataset, read_manifest, rows_to_frame
from demmi_rf.store.checksums import file_sha256
from demmi_rf.store.manifest import BASE_COLUMNS, manifest_bytes
from demmi_rf.store.shard import deflate_estimate

from .test_build import SMALL_SETTINGS, small_dataset, small_recipe  # noqa: F401 - fixtures


def _smooth(h=200, w=300, c=3):
    y, x = np.mgrid[0:h, 0:w]
    a = ((x + y) % 256).astype(np.uint8)
    return np.repeat(a[..., None], c, axis=2) if c else a


def _noisy(h=200, w=300, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


# ---- writer ---------------------------------------------------------------------------------------------
def test_array_sha256_is_hash_of_c_contiguous_bytes():
    a = _noisy(10, 7, 3)
    assert array_sha256(a) == hashlib.sha256(a.tobytes()).hexdigest()
    view = a[:, ::-1]  # not contiguous: hashed as its C-contiguous copy
    assert array_sha256(view) == hashlib.sha256(np.ascontiguousarray(view).tobytes()).hexdigest()
    with pytest.raises(TypeError):
        array_sha256(a.astype(np.float32))


def test_writer_commits_atomically_and_round_trips(tmp_path):
    final = tmp_path / "train-00000.h5"
    vis, ir = _smooth(), _noisy(c=0)
    with ShardWriter(final, {"split": "train"}) as w:
        assert w.write_array("/pairs/a/b/vis", vis) == hashlib.sha256(vis.tobytes()).hexdigest()
        w.write_array("/pairs/a/b/ir", ir)
        w.set_group_attrs("/samples/a/b@haze", {"params": {"haze": {"beta": 1.5}}, "setting": "haze"})
        assert not final.exists(), "the final name must not exist before commit"
        assert [p.name for p in tmp_path.iterdir()][0].endswith(".tmp")
        w.commit({"rows": []})
    assert [p.name for p in tmp_path.iterdir()] == ["train-00000.h5"]
    with h5py.File(final, "r") as h5:
        np.testing.assert_array_equal(h5["/pairs/a/b/vis"][()], vis)
        np.testing.assert_array_equal(h5["/pairs/a/b/ir"][()], ir)
        assert json.loads(h5["/samples/a/b@haze"].attrs["params"]) == {"haze": {"beta": 1.5}}
        assert h5.attrs["format"] == "demmi-rf-shard" and h5.attrs["split"] == "train"


def test_writer_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "train-00000.h5"
    with pytest.raises(RuntimeError), ShardWriter(final, {}) as w:
        w.write_array("/x", _smooth())
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with ShardWriter(final, {}) as w:  # no commit: same
        w.write_array("/x", _smooth())
    assert list(tmp_path.iterdir()) == []


def test_same_content_gives_same_file_bytes(tmp_path):
    digests = []
    for k in range(2):
        final = tmp_path / f"s{k}.h5"
        with ShardWriter(final, {"plan_key": "abc", "index": 3}) as w:
            w.write_array("/pairs/p/q/vis", _smooth())
            w.write_array("/samples/p/q@noise50/vis", _noisy())
            w.set_group_attrs("/samples/p/q@noise50", {"params": {"noise50": {"sigma": 50.0}}})
            w.commit({"rows": [1, 2]})
        digests.append(file_sha256(final))
    assert digests[0] == digests[1]


def test_file_bytes_do_not_depend_on_when_dataset_objects_are_released(tmp_path, monkeypatch):
    """A profiler (dask workers run one) may keep h5py objects alive; the file must not change."""
    def write(final):
        with ShardWriter(final, {}) as w:
            for k in range(6):
                w.write_array(f"/pairs/p/q{k}/vis", _smooth(300, 200) if k % 2 else _noisy(300, 200))
                w.set_group_attrs(f"/samples/p/q{k}@haze", {"params": {"k": k}})
            w.commit({"rows": []})
        return file_sha256(final)

    plain = write(tmp_path / "a.h5")
    kept = []
    original = h5py.Group.create_dataset
    monkeypatch.setattr(h5py.Group, "create_dataset", lambda self, *a, **k: kept.append(original(self, *a, **k))
                        or kept[-1])
    assert write(tmp_path / "b.h5") == plain
    assert len(kept) == 7  # 6 arrays + /meta/result


def test_noise_dominated_arrays_are_stored_raw_and_smooth_ones_deflated(tmp_path):
    assert deflate_estimate(_noisy()) > 0.9 > 0.2 > deflate_estimate(_smooth())
    final = tmp_path / "s.h5"
    with ShardWriter(final, {}) as w:
        w.write_array("/smooth", _smooth())
        w.write_array("/noisy", _noisy())
        w.write_array("/small", _smooth(40, 50, 0))  # smooth, smaller than a tile
        w.commit({})
    with h5py.File(final, "r") as h5:
        assert h5["/smooth"].compression == "gzip" and h5["/smooth"].chunks == (64, 64, 3)
        assert h5["/noisy"].compression is None and h5["/noisy"].chunks is None
        assert h5["/small"].chunks == (40, 50)  # tile clipped to the image


def test_writer_refuses_non_uint8(tmp_path):
    with ShardWriter(tmp_path / "s.h5", {}) as w, pytest.raises(ValueError, match="uint8"):
        w.write_array("/x", np.zeros((4, 4), np.float32))


# ---- manifest -------------------------------------------------------------------------------------------
def _row(**kw):
    row = {c: "" for c in BASE_COLUMNS}
    row.update(sample_id="src/NA@haze", split="train", pair_id="src/NA", source="src", stem="NA", setting="haze",
               atoms=["haze"], changes_vis=True, changes_ir=False, height=4, width=5, vis_channels=3, seed=1,
               params={"haze": {"beta": 1.25, "A": np.float32(3.5), "focal": [1, 2]}})
    row.update(kw)
    return row


def test_manifest_round_trip_keeps_types_and_awkward_strings(tmp_path):
    rows = [_row(), _row(sample_id="src/null@clean", stem="null", pair_id="src/null", setting="clean", atoms=[],
                         changes_vis=False, params={}, seed_material_vis="demmi-rf/v1\x1f1\x1fsrc/NA")]
    path = tmp_path / "manifest.csv"
    path.write_bytes(manifest_bytes(rows_to_frame(rows)))
    m = read_manifest(path)
    assert list(m.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert m["stem"].tolist() == ["NA", "null"]  # never turned into NaN
    assert m["atoms"].tolist() == [("haze",), ()]
    assert m["changes_vis"].tolist() == [True, False] and m["height"].dtype == np.int64
    assert m.loc[0, "haze.beta"] == 1.25 and m.loc[0, "haze.A"] == 3.5 and m.loc[0, "haze.focal"] == "[1,2]"
    assert pd.isna(m.loc[1, "haze.beta"])
    assert json.loads(m.loc[0, "params"]) == {"haze": {"A": 3.5, "beta": 1.25, "focal": [1, 2]}}
    assert m.loc[1, "seed_material_vis"] == "demmi-rf/v1\x1f1\x1fsrc/NA"


def test_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="manifest is missing"):
        read_manifest(tmp_path / "manifest.csv")
    (tmp_path / "manifest.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="lacks column.*sample_id"):
        read_manifest(tmp_path / "manifest.csv")


# ---- reader ---------------------------------------------------------------------------------------------
def test_open_dataset_exposes_card_manifest_and_hash(small_dataset):  # noqa: F811
    with open_dataset(small_dataset) as ds:
        assert ds.card_hash == hashlib.sha256((small_dataset / "dataset.json").read_bytes()).hexdigest()
        assert ds.card["name"] == "demmi-rf-v1-test" and ds.card["counts"]["samples"] == len(ds.manifest) == 36
        assert ds.settings == SMALL_SETTINGS and ds.splits == ("test", "train")
        assert isinstance(ds.manifest.index, pd.RangeIndex)
        for col in ("sample_id", "split", "pair_id", "source", "setting", "atoms", "height", "width",
                    "vis_channels", "shard"):
            assert col in ds.manifest.columns


def test_samples_filters_and_unknown_names(small_dataset):  # noqa: F811
    with open_dataset(small_dataset) as ds:
        test = ds.samples(split="test")
        assert set(test["split"]) == {"test"} and len(test) == 5 * len(SMALL_SETTINGS)
        mixed = ds.samples(settings="stripe+haze+noise50")  # any atom order
        assert set(mixed["setting"]) == {"noise50+haze+stripe"} and len(mixed) == 9
        both = ds.samples(split="train", settings=["haze", "clean"])
        assert list(both.index) == list(range(len(both))) == list(range(8))
        order = ds.manifest["sample_id"].tolist()
        assert sorted(both["sample_id"], key=order.index) == both["sample_id"].tolist()
        with pytest.raises(DatasetError) as err:
            ds.samples(settings=["noise25"])
        assert "noise25" in str(err.value) and "clean, haze, stripe, noise50+haze+stripe" in str(err.value)
        with pytest.raises(DatasetError, match="no split 'val'"):
            ds.samples(split="val")
        with pytest.raises(DatasetError, match="no sample"):
            ds.read("msrs/none@clean")


def _png(path):
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[..., 0] if a.ndim == 3 and a.shape[2] == 3 and (a[..., 0] == a[..., 1]).all() and \
        (a[..., 1] == a[..., 2]).all() and "ir" in str(path) else a


def test_read_returns_clean_for_unchanged_modality_and_windows(small_dataset, samples_dir):  # noqa: F811
    with open_dataset(small_dataset) as ds:
        stripe = ds.read("msrs/00004N@stripe")
        np.testing.assert_array_equal(stripe["vis"], stripe["vis_clean"])
        assert not np.array_equal(stripe["ir"], stripe["ir_clean"])
        np.testing.assert_array_equal(stripe["vis_clean"], _png(samples_dir / "MSRS/test/vi/00004N.png"))
        np.testing.assert_array_equal(stripe["ir_clean"], _png(samples_dir / "MSRS/test/ir/00004N.png"))
        haze = ds.read("msrs/00004N@haze")
        np.testing.assert_array_equal(haze["ir"], haze["ir_clean"])
        assert haze["vis"].shape == (480, 640, 3) and haze["vis"].dtype == np.uint8
        gray = ds.read("tno/07@noise50+haze+stripe", arrays=("vis",))
        assert list(gray) == ["vis"] and gray["vis"].shape == (256, 256)
        full = ds.read("msrs/00004N@noise50+haze+stripe")
        win = ds.read("msrs/00004N@noise50+haze+stripe", window=(100, 200, 130, 70))
        for k in full:
            np.testing.assert_array_equal(win[k], full[k][100:230, 200:270])
        with pytest.raises(ValueError, match="outside"):
            ds.read("msrs/00004N@haze", window=(400, 0, 100, 10))
        with pytest.raises(ValueError, match="unknown array"):
            ds.read("msrs/00004N@haze", arrays=("depth",))


def _read_in_child(ds, sid, queue):
    queue.put(array_sha256(ds.read(sid, arrays=("vis",))["vis"]))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dataset_is_picklable_and_reads_in_child_processes(small_dataset, method):  # noqa: F811
    ds = open_dataset(small_dataset)
    sid = "msrs/00016N@haze"
    expected = ds.manifest.set_index("sample_id").loc[sid, "sha256_vis"]
    assert array_sha256(ds.read(sid, arrays=("vis",))["vis"]) == expected  # parent opened its handles
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._files == {} and array_sha256(clone.read(sid, arrays=("vis",))["vis"]) == expected
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    proc = ctx.Process(target=_read_in_child, args=(ds, sid, queue))
    proc.start()
    got = queue.get(timeout=60)
    proc.join(timeout=60)
    assert proc.exitcode == 0 and got == expected
    ds.close()
    clone.close()


def test_open_dataset_errors(tmp_path, small_dataset):  # noqa: F811
    with pytest.raises(DatasetError, match="not a directory"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="dataset card is missing"):
        open_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        open_dataset(tmp_path)


def test_edited_manifest_is_detected(tmp_path, small_dataset):  # noqa: F811
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    text = (copy / "manifest.csv").read_text()
    (copy / "manifest.csv").write_text(text.replace("msrs/00004N@haze", "msrs/00004N@hazy", 1))
    with pytest.raises(DatasetError, match="does not match the sha256 recorded in the card"):
        open_dataset(copy)


def test_missing_shard_raises_shard_error_naming_it(tmp_path, small_dataset):  # noqa: F811
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    (copy / "shards" / "train-00001.h5").unlink()
    with open_dataset(copy) as ds:
        sid = ds.samples(split="train").query("shard == 'shards/train-00001.h5'")["sample_id"].iloc[0]
        with pytest.raises(ShardError, match="shards/train-00001.h5: file is missing"):
            ds.read(sid)
        ds.read(ds.samples(split="test")["sample_id"].iloc[0])  # other shards still read


def test_open_shard_handles_are_bounded(small_dataset):  # noqa: F811
    with open_dataset(small_dataset, max_open_shards=2) as ds:
        first = {}
        for row in ds.manifest.drop_duplicates("shard").itertuples(index=False):
            first[row.shard] = ds.read(row.sample_id, arrays=("ir",))["ir"]
            assert len(ds._files) <= 2
        assert list(ds._files) == sorted(first)[-2:]
        for row in ds.manifest.drop_duplicates("shard").itertuples(index=False):  # closed ones reopen
            assert (ds.read(row.sample_id, arrays=("ir",))["ir"] == first[row.shard]).all()
