"""Virtual datasets (``demmi build --virtual``, the store's array seam, ``demmi materialize``) and fresh draws for
training (``DeMMIDataset(..., resample="epoch")``), issue 16 sections 1 and 2."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from demmi_cli.main import cli
from demmi_rf.builder import build_dataset
from demmi_rf.errors import DatasetError, ShardError
from demmi_rf.rng import generator, resample_parts, stable_words
from demmi_rf.store import array_sha256, open_dataset, verify_dataset
from demmi_rf.store.arrays import ADAPTER_FOR_FORMAT, HDF5ArrayStore, VirtualArrayStore
from demmi_rf.store.materialize import materialize
from demmi_rf.torch import DeMMIDataset

from .test_build import SMALL_SETTINGS, small_dataset, small_recipe  # noqa: F401 - fixtures

ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")


@pytest.fixture(scope="module")
def virtual_dataset(tmp_path_factory, small_recipe) -> Path:  # noqa: F811
    """The same recipe and settings as ``small_dataset``, built virtual."""
    out = tmp_path_factory.mktemp("virtual") / "ds"
    build_dataset(out, recipe=small_recipe, settings=SMALL_SETTINGS, workers=1, virtual=True)
    return out


def _copy(src: Path, tmp_path: Path, name: str = "copy") -> Path:
    out = tmp_path / name
    shutil.copytree(src, out)
    return out


# ---- section 1: virtual datasets ---------------------------------------------------------------------------


def test_virtual_and_materialized_builds_have_the_same_content_and_arrays(small_dataset, virtual_dataset):  # noqa: F811
    with open_dataset(small_dataset) as mat, open_dataset(virtual_dataset) as vir:
        assert mat.array_format == "hdf5" and vir.array_format == "virtual"
        assert isinstance(mat.array_store, HDF5ArrayStore) and isinstance(vir.array_store, VirtualArrayStore)
        assert vir.card["storage"]["array_format"] == "virtual" and "array_format" not in mat.card["storage"]
        assert vir.content_hash == mat.content_hash == vir.card["content_hash"]
        assert (virtual_dataset / "manifest.csv").read_bytes() == (small_dataset / "manifest.csv").read_bytes()
        assert set(vir.manifest["setting"]) == set(SMALL_SETTINGS)
        for sid in mat.manifest["sample_id"]:
            a, b = mat.read(sid), vir.read(sid)
            for name in ARRAYS:
                assert a[name].dtype == b[name].dtype == np.uint8
                assert np.array_equal(a[name], b[name]), (sid, name)
                assert array_sha256(b[name]) == vir.row(sid)[f"sha256_{name}"]
        assert vir.card["bytes"] < mat.card["bytes"] / 2


def test_virtual_shards_hold_no_degraded_array(virtual_dataset):
    with open_dataset(virtual_dataset) as ds:
        row = ds.samples(settings="noise50+haze+stripe").iloc[0]
        with h5py.File(virtual_dataset / row.shard, "r") as h5:
            assert row.vis_path not in h5 and row.ir_path not in h5
            assert row.vis_clean_path in h5 and json.loads(h5[f"/samples/{row.sample_id}"].attrs["params"])


def test_crops_synthesise_each_image_once_and_the_cache_is_bounded(virtual_dataset):
    with open_dataset(virtual_dataset) as ds:
        row = ds.samples(settings="noise50+haze+stripe").iloc[0]
        sid, store = row.sample_id, ds.array_store
        whole = ds.read(sid)
        for y0, x0 in ((0, 0), (32, 16), (row.height - 64, row.width - 64)):
            crop = ds.read(sid, arrays=("vis", "ir"), window=(y0, x0, 64, 64))
            assert np.array_equal(crop["vis"], whole["vis"][y0 : y0 + 64, x0 : x0 + 64])
            assert np.array_equal(crop["ir"], whole["ir"][y0 : y0 + 64, x0 : x0 + 64])
        assert store.syntheses == 1  # VIS and IR, whole and four windows: one synthesis
        crop["vis"][:] = 0  # callers get copies: the cache is not modified through them
        assert np.array_equal(ds.read(sid, arrays="vis")["vis"], whole["vis"])
        ds.read(sid, arrays="vis_clean")
        assert store.syntheses == 1  # clean arrays are read, never synthesised
    with open_dataset(virtual_dataset, cache_bytes=0) as ds:
        ds.read(sid, arrays="vis")
        ds.read(sid, arrays="vis")
        assert ds.array_store.syntheses == 2 and not ds.array_store._cache
        both = ds.read(sid, arrays=("vis", "ir", "ir_clean"), window=(8, 8, 32, 32))
        assert ds.array_store.syntheses == 3  # VIS and IR of one read: one synthesis, even without a cache
        assert np.array_equal(both["ir"], whole["ir"][8:40, 8:40])
    with open_dataset(virtual_dataset, cache_bytes=whole["vis"].nbytes + whole["ir"].nbytes) as ds:
        ids = ds.samples(settings="haze")["sample_id"].tolist()[:3]
        for s in ids:
            ds.read(s, arrays="vis")
        store = ds.array_store
        assert store._cached <= store.cache_bytes and list(store._cache)[-1] == ids[-1]


def test_a_synthesis_that_differs_from_the_manifest_is_refused(virtual_dataset):
    with open_dataset(virtual_dataset) as ds:
        sid = ds.samples(settings="haze")["sample_id"].iloc[0]
        ref = ds._locate(sid)
        ds._index[sid] = type(ref)(**{**ref.__dict__, "sha256": {**ref.sha256, "vis": "0" * 64}})
        with pytest.raises(ShardError, match=rf"sample {sid}, array .*differs from the manifest's sha256"):
            ds.read(sid, arrays="vis")
        ds._index[sid] = type(ref)(**{**ref.__dict__, "params": '{"haze": {"beta": 0.5}}'})
        with pytest.raises(ShardError, match=rf"sample {sid}: re-synthesised drawn parameters differ"):
            ds.read(sid, arrays="vis")
        cache = ds.array_store._cache  # nothing unchecked was kept (only the clean pair the syntheses decoded)
        assert sid not in cache and all(isinstance(k, tuple) and k[1].startswith("/pairs/") for k in cache)


def test_unknown_array_format_is_a_clear_error(virtual_dataset, tmp_path):
    copy = _copy(virtual_dataset, tmp_path)
    card = json.loads((copy / "dataset.json").read_text())
    card["storage"]["array_format"] = "zarr"
    (copy / "dataset.json").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match=r"array_format 'zarr' is not a known array format \(known: hdf5, virtual"):
        open_dataset(copy)
    assert sorted(ADAPTER_FOR_FORMAT) == ["hdf5", "virtual"]
    report = verify_dataset(copy)
    assert not report.ok and any("zarr" in p.message for p in report.problems)


def test_verify_resynthesises_every_degraded_array(virtual_dataset, small_dataset, tmp_path):  # noqa: F811
    report = verify_dataset(virtual_dataset)
    assert report.ok, report.problems
    with open_dataset(virtual_dataset) as ds:
        degraded = int(ds.manifest["changes_vis"].sum() + ds.manifest["changes_ir"].sum())
        clean = ds.manifest["pair_id"].nunique() * 2
    assert report.arrays_checked == degraded + clean
    assert report.content_hash == verify_dataset(small_dataset, quick=True).content_hash
    # a clean array edited in place: its own sha256 and every synthesis from it are reported
    copy = _copy(virtual_dataset, tmp_path)
    with open_dataset(copy) as ds:
        row = ds.samples(settings="stripe").iloc[0]
    with h5py.File(copy / row.shard, "r+") as h5:
        arr = h5[row.ir_clean_path]
        arr[0, 0] = np.uint8(arr[0, 0] ^ 0xFF)
    bad = verify_dataset(copy)
    texts = [str(p) for p in bad.problems]
    assert any(f"sample {row.sample_id}: array ir: re-synthesised array differs" in t for t in texts), texts
    assert any("array ir_clean: sha256 differs from the manifest" in t for t in texts), texts


def test_rerunning_a_virtual_build_reuses_its_shards(virtual_dataset, small_recipe, tmp_path):  # noqa: F811
    copy = _copy(virtual_dataset, tmp_path)
    report = build_dataset(copy, recipe=small_recipe, settings=SMALL_SETTINGS, workers=1, virtual=True)
    assert report.built == [] and report.reused
    assert report.card["content_hash"] == json.loads((virtual_dataset / "dataset.json").read_text())["content_hash"]


def test_materialize_gives_the_materialized_build(virtual_dataset, small_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "mat"
    report = materialize(virtual_dataset, out)
    assert verify_dataset(out).ok
    with open_dataset(out) as got, open_dataset(small_dataset) as built:
        assert got.array_format == "hdf5" and got.content_hash == built.content_hash == report.content_hash
        for sid in built.manifest["sample_id"]:
            a, b = built.read(sid), got.read(sid)
            assert all(a[n].tobytes() == b[n].tobytes() for n in ARRAYS), sid
        # the shards are written as a materialized build writes them: same bytes, same card
        assert [s["sha256"] for s in got.card["shards"]] == [s["sha256"] for s in built.card["shards"]]
        assert got.card_hash == built.card_hash == report.card_hash
    with pytest.raises(DatasetError, match="already materialized"):
        materialize(out, tmp_path / "again")
    with pytest.raises(DatasetError, match="exists and is not an empty folder"):
        materialize(virtual_dataset, out)


def test_materialize_cli(virtual_dataset, tmp_path):
    out = tmp_path / "m"
    result = CliRunner().invoke(cli, ["materialize", str(virtual_dataset), str(out), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["command"] == "materialize" and doc["arrays_synthesised"] > 0
    assert doc["content_hash"] == json.loads((virtual_dataset / "dataset.json").read_text())["content_hash"]
    again = CliRunner().invoke(cli, ["materialize", str(virtual_dataset), str(out), "--no-progress"])
    assert again.exit_code == 1 and "exists and is not an empty folder" in again.output
    assert "Traceback" not in again.output


def test_torch_dataset_reads_a_virtual_dataset(small_dataset, virtual_dataset):  # noqa: F811
    a = DeMMIDataset(small_dataset, split="train", crop=64, augment=True, seed=5)
    b = DeMMIDataset(virtual_dataset, split="train", crop=64, augment=True, seed=5)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert all(torch.equal(x[n], y[n]) for n in ARRAYS)


def test_a_synthesis_decodes_the_clean_pair_once_per_process(virtual_dataset, small_dataset):  # noqa: F811
    with open_dataset(virtual_dataset) as ds, open_dataset(small_dataset) as mat:
        pair = ds.samples(settings="haze")["pair_id"].iloc[0]
        rows = ds.samples()
        rows = rows[(rows.pair_id == pair) & (rows.setting != "clean")]
        store, reads = ds.array_store, []
        real = store.clean.read
        store.clean.read = lambda ref, name, window=None: reads.append((name, window)) or real(ref, name, window)
        for row in rows.itertuples(index=False):
            got = ds.read(row.sample_id, window=(8, 16, 64, 32))
            want = mat.read(row.sample_id, window=(8, 16, 64, 32))
            assert all(np.array_equal(got[n], want[n]) for n in ARRAYS), row.sample_id
        # every setting of the pair synthesised from one decoded clean pair; the clean windows cut from it
        assert sorted(reads) == [("ir_clean", None), ("vis_clean", None)] and store.syntheses == len(rows)


def _child_reads(ds, sid, queue):
    try:
        got = ds.read(sid, arrays=("vis", "ir"))
        queue.put((ds.array_store.syntheses, {n: array_sha256(a) for n, a in got.items()}))
    except BaseException as exc:  # report instead of hanging the parent
        queue.put(repr(exc))


def test_forked_readers_share_each_synthesis(virtual_dataset):
    with open_dataset(virtual_dataset) as ds:
        ids = ds.samples(settings="noise50+haze+stripe")["sample_id"].tolist()
        assert ds.prepare_workers(ids) == len(ids)
        store = ds.array_store
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child_reads, args=(ds, ids[0], queue))
        proc.start()
        result = queue.get(timeout=60)
        proc.join(timeout=60)
        assert proc.exitcode == 0, result
        child_syntheses, child_hashes = result
        expected = {n: ds.row(ids[0])[f"sha256_{n}"] for n in ("vis", "ir")}
        assert child_syntheses == 1 and child_hashes == expected
        got = ds.read(ids[0], arrays=("vis", "ir"))  # the child's synthesis, from the shared slot
        assert store.syntheses == 0 and {n: array_sha256(a) for n, a in got.items()} == expected
        got["vis"][:] = 0  # callers get copies: the slot is not modified through them
        assert array_sha256(ds.read(ids[0], arrays="vis")["vis"]) == expected["vis"]
        clone = pickle.loads(pickle.dumps(ds))  # shared memory reaches forked processes only
        assert clone.array_store._shared is None and array_sha256(clone.read(ids[0], arrays="vis")["vis"]) == \
            expected["vis"]
        assert clone.array_store.syntheses == 1
        clone.close()


def test_a_shared_slot_that_fails_the_check_is_synthesised_again(virtual_dataset):
    with open_dataset(virtual_dataset) as ds:
        sid = ds.samples(settings="haze")["sample_id"].iloc[0]
        ds.prepare_workers([sid])
        store = ds.array_store
        shared = store._shared
        index, offset, layout = shared._slots[sid]
        shared._map[offset:offset + 64] = bytes(range(64))  # as if another process were writing it right now
        shared._state[index] = 1
        got = ds.read(sid, arrays="vis")["vis"]
        assert store.syntheses == 1 and array_sha256(got) == ds.row(sid)["sha256_vis"]
        shared._verified.clear()  # the slot was rewritten with the checked synthesis
        ds.read(sid, arrays="vis")
        assert store.syntheses == 1
        with pytest.raises(ShardError, match="differs from the manifest's sha256"):  # a slot never bypasses the check
            ref = ds._locate(sid)
            ds._index[sid] = type(ref)(**{**ref.__dict__, "sha256": {**ref.sha256, "vis": "0" * 64}})
            shared._verified.clear()
            ds.read(sid, arrays="vis")


def test_dataloader_workers_fill_the_shared_slots_once(small_dataset, virtual_dataset):  # noqa: F811
    kw = dict(split="train", crop=64, augment=True, seed=3)
    a, b = DeMMIDataset(small_dataset, **kw), DeMMIDataset(virtual_dataset, **kw)
    ctx = multiprocessing.get_context("fork")
    for epoch in range(2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        want = list(DataLoader(a, batch_size=4, num_workers=0))
        got = list(DataLoader(b, batch_size=4, num_workers=2, multiprocessing_context=ctx))
        for x, y in zip(want, got, strict=True):
            assert all(torch.equal(x[n], y[n]) for n in ARRAYS)
    store = b.store.array_store
    degraded = {b.info(i).sample_id for i in range(len(b)) if b.info(i).setting != "clean"}
    assert len(store._shared) == len(degraded) and store._shared._state.all()  # written by the workers
    for i in range(len(b)):
        b[i]
    assert store.syntheses == 0  # this process synthesised nothing: every image came from a worker's slot


# ---- section 2: fresh draws -----------------------------------------------------------------------------------


def test_resample_key_is_the_v1_key_plus_three_parts():
    assert resample_parts(3, 7) == ("resample", 3, 7)
    w = generator(11, "msrs/x", "haze", "vis", *resample_parts(3, 7)).bit_generator.random_raw(4)
    seq = np.random.SeedSequence(stable_words(11, "msrs/x", "haze", "vis", "resample", 3, 7))
    assert np.array_equal(w, np.random.Generator(np.random.PCG64(seq)).bit_generator.random_raw(4))
    v1 = np.random.SeedSequence(stable_words(11, "msrs/x", "haze", "vis"))
    assert np.array_equal(generator(11, "msrs/x", "haze", "vis").bit_generator.random_raw(4),
                          np.random.Generator(np.random.PCG64(v1)).bit_generator.random_raw(4))
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError):
            resample_parts(bad, 0)


def test_resample_is_refused_outside_the_train_split(small_dataset):  # noqa: F811
    for split in ("test", None):
        with pytest.raises(DatasetError, match="train split only"):
            DeMMIDataset(small_dataset, split=split, resample="epoch")
    with pytest.raises(ValueError, match="resample must be one of"):
        DeMMIDataset(small_dataset, split="train", resample="always")


def test_fresh_draws_are_new_per_epoch_and_deterministic(small_dataset, virtual_dataset):  # noqa: F811
    stored = DeMMIDataset(small_dataset, split="train", settings=["haze", "noise50+haze+stripe"])
    fresh = DeMMIDataset(small_dataset, split="train", settings=["haze", "noise50+haze+stripe"], resample="epoch",
                         seed=1)
    fresh_v = DeMMIDataset(virtual_dataset, split="train", settings=["haze", "noise50+haze+stripe"],
                           resample="epoch", seed=1)
    other_seed = DeMMIDataset(small_dataset, split="train", settings=["haze"], resample="epoch", seed=2)
    for i in range(len(fresh)):
        s, f0 = stored[i], fresh[i]
        assert torch.equal(f0["vis_clean"], s["vis_clean"]) and torch.equal(f0["ir_clean"], s["ir_clean"])
        assert not torch.equal(f0["vis"], s["vis"])  # epoch 0 is a fresh draw too, not the stored benchmark
        assert all(torch.equal(f0[n], fresh[i][n]) for n in ARRAYS)  # deterministic
        assert all(torch.equal(f0[n], fresh_v[i][n]) for n in ARRAYS)  # any array format
        if fresh.info(i).setting == "haze":
            assert torch.equal(f0["ir"], s["ir"])  # a modality the setting leaves clean stays clean
            j = next(k for k in range(len(other_seed)) if other_seed.info(k).sample_id == fresh.info(i).sample_id)
            assert not torch.equal(other_seed[j]["vis"], f0["vis"])
    first = [fresh[i]["vis"] for i in range(len(fresh))]
    fresh.set_epoch(1)
    assert all(not torch.equal(fresh[i]["vis"], first[i]) for i in range(len(fresh)))
    fresh.set_epoch(0)
    assert all(torch.equal(fresh[i]["vis"], first[i]) for i in range(len(fresh)))


def test_fresh_draws_follow_the_documented_key(small_dataset):  # noqa: F811
    from demmi_rf import degrade

    with open_dataset(small_dataset) as store:
        row = store.samples(split="train", settings="noise50+haze+stripe").iloc[0]
        clean = store.read(row.sample_id, arrays=("vis_clean", "ir_clean"))
        got = store.read_fresh(row.sample_id, 4, 2)
    recipe = json.loads((small_dataset / "dataset.json").read_text())["recipe"]
    out = degrade(clean["vis_clean"], clean["ir_clean"], row.setting, int(row.seed), pair_id=row.pair_id,
                  ranges=recipe["degradations"], stream_extra=("resample", 4, 2))
    assert np.array_equal(got["vis"], out.vis) and np.array_equal(got["ir"], out.ir)
    assert out.params != json.loads(row.params)


def _collect(ds, workers: int, epochs=(0, 1)) -> list[dict[str, torch.Tensor]]:
    kw = dict(num_workers=workers)
    if workers:
        kw.update(persistent_workers=True, multiprocessing_context="fork")
    loader = DataLoader(ds, batch_size=3, shuffle=False, **kw)
    out = []
    for epoch in epochs:
        ds.set_epoch(epoch)
        out.append({name: torch.cat([b[name] for b in loader]) for name in ARRAYS})
    return out


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_fresh_draws_do_not_depend_on_the_worker_count(small_dataset):  # noqa: F811
    def make():
        return DeMMIDataset(small_dataset, split="train", settings=["haze", "stripe"], crop=64, augment=True,
                            resample="epoch", seed=9)

    zero, two = _collect(make(), 0), _collect(make(), 2)
    for a, b in zip(zero, two):
        assert all(torch.equal(a[n], b[n]) for n in ARRAYS)
    assert not torch.equal(zero[0]["vis"], zero[1]["vis"])  # set_epoch reached the persistent workers


def test_train_config_resample_value_is_checked():
    from tgecnet_ref.config import config_from_dict, load_config

    assert load_config("tiny").stage1.resample == ""
    cfg = config_from_dict({"name": "x", "stage1": {"resample": "epoch"}})
    assert cfg.stage1.resample == "epoch"
    with pytest.raises(ValueError, match="resample must be"):
        config_from_dict({"name": "x", "stage1": {"resample": "sometimes"}})


@pytest.mark.usefixtures("torch_one_thread")
def test_train_cli_resample_epoch_runs_and_is_recorded(virtual_dataset, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", str(virtual_dataset), "--stage", "1", "--config", "tiny", "--out", str(out),
            "--max-steps", "2", "--workers", "0", "--resample", "epoch", "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["stage1"]["resample"] == "epoch" and config["stage2"]["resample"] == ""
    bad = CliRunner().invoke(cli, [*args[:-3], "--resample", "always"])
    assert bad.exit_code == 2 and "always" in bad.output


def test_cli_build_virtual_flag(tmp_path):
    out = tmp_path / "v"
    res = CliRunner().invoke(cli, ["build", "--out", str(out), "--degradations", "clean,stripe", "--workers", "1",
                                   "--virtual", "--json", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "dataset.json").read_text())["storage"]["array_format"] == "virtual"
    assert verify_dataset(out).ok
