"""DeMMIDataset on a real built dataset (embedded samples, four settings): items, pairing, workers
(fork and spawn, persistent), lazy HDF5, window reads, bad input, the PNG baseline and the docs example."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import h5py
import pytest
import torch
from torch.utils.data import DataLoader

from demmi_rf.builder import build_dataset
from demmi_rf.errors import DatasetError, ShardError
from demmi_rf.store import open_dataset
from demmi_rf.torch import (
    DeMMIDataset,
    PNGFolderDataset,
    SizeBucketBatchSampler,
    atoms_vector,
    export_png_folder,
    pad_collate,
    unpad,
)

from .test_torch_dataset_units import expected_tensor

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ["clean", "noise50", "stripe", "noise50+haze+stripe"]
ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torchds") / "demmi-mini"
    build_dataset(out, settings=SETTINGS, workers=2)
    return out


def test_items_follow_the_manifest_and_equal_stored_pixels(root):
    store = open_dataset(root)
    for split in ("train", "test"):
        ds = DeMMIDataset(root, split=split)
        rows = store.samples(split=split)
        assert len(ds) == len(rows)
        assert [ds.info(i).sample_id for i in range(len(ds))] == rows["sample_id"].tolist()
    ds = DeMMIDataset(root, split="test")
    for i in (0, 1, 2, 3, len(ds) - 1):
        item = ds[i]
        whole = store.read(item["sample_id"])
        for name in ARRAYS:
            assert item[name].dtype == torch.float32
            assert torch.equal(item[name], expected_tensor(whole[name], None, 0, vis=name.startswith("vis")))
        assert item["vis"].shape[0] == 3 and item["ir"].shape[0] == 1
        assert item["atoms"].tolist() == atoms_vector(item["setting"]).tolist()
        assert item["pair_id"] == item["sample_id"].split("@")[0]


def test_pairing_on_real_shards(root):
    store = open_dataset(root)
    ds = DeMMIDataset(root, split="test", crop=(96, 128), augment=True, seed=7)
    ks = set()
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(0, len(ds), 3):
            item = ds[i]
            window, k = ds.choices(i)
            ks.add(k)
            whole = store.read(item["sample_id"])
            for name in ARRAYS:
                assert item[name].shape[-2:] == (96, 128)
                assert torch.equal(item[name], expected_tensor(whole[name], window, k, vis=name.startswith("vis")))
    assert len(ks) >= 5


def test_restoration_and_gray_on_real_shards(root):
    store = open_dataset(root)
    ds = DeMMIDataset(root, split="test", task="restoration", crop=64, augment=True, to_gray_vis=True)
    settings = {ds.info(i).setting for i in range(len(ds))}
    assert "clean" not in settings and settings == set(SETTINGS) - {"clean"}
    for i in range(0, len(ds), 5):
        item, (window, k) = ds[i], ds.choices(i)
        whole = store.read(item["sample_id"])
        m = item["modality"]
        assert m == ("ir" if item["setting"] == "stripe" else m)
        assert item["input"].shape == item["target"].shape == (1, 64, 64)
        if m == "ir":
            assert torch.equal(item["input"], expected_tensor(whole["ir"], window, k))
            assert torch.equal(item["target"], expected_tensor(whole["ir_clean"], window, k))
        assert not torch.equal(item["input"], item["target"])  # the degraded modality really differs


def test_settings_selection_and_unknown_setting(root):
    ds = DeMMIDataset(root, split="train", settings=["stripe"])
    assert {ds.info(i).setting for i in range(len(ds))} == {"stripe"}
    pred = DeMMIDataset(root, split="train", settings=lambda s: s.changes_ir)
    assert {pred.info(i).setting for i in range(len(pred))} == {"stripe", "noise50+haze+stripe"}
    with pytest.raises(DatasetError, match=r"defocus.*not in this dataset.*available: clean, noise50"):
        DeMMIDataset(root, settings=["defocus"])
    with pytest.raises(DatasetError, match="split 'val'"):
        DeMMIDataset(root, split="val")


def test_not_a_dataset_and_missing_or_truncated_shards(root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "something.txt").write_text("x")
    with pytest.raises(DatasetError, match="dataset.json"):
        DeMMIDataset(empty)
    with pytest.raises(DatasetError, match="not a directory"):
        DeMMIDataset(tmp_path / "nowhere")

    shard = sorted((root / "shards").glob("train-*.h5"))[0].name
    missing = tmp_path / "missing"
    shutil.copytree(root, missing)
    (missing / "shards" / shard).unlink()
    with pytest.raises(ShardError, match=rf"shards/{shard}: file is missing"):
        DeMMIDataset(missing, split="train")
    DeMMIDataset(missing, split="test")  # the test split does not need that shard

    truncated = tmp_path / "truncated"
    shutil.copytree(root, truncated)
    path = truncated / "shards" / shard
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=rf"shards/{shard}: .*truncated"):
        DeMMIDataset(truncated, split="train")

    corrupt = tmp_path / "corrupt"  # same size, damaged chunks: found when read, named
    shutil.copytree(root, corrupt)
    path = corrupt / "shards" / shard
    data = bytearray(path.read_bytes())
    start = len(data) // 4
    data[start : start + len(data) // 2] = bytes(len(data) // 2)
    path.write_bytes(bytes(data))
    ds = DeMMIDataset(corrupt, split="train")
    with pytest.raises(ShardError, match=rf"shards/{shard}"):
        for i in range(len(ds)):
            ds[i]


def test_construction_opens_no_hdf5_file_and_crop_reads_few_chunks(root):
    before = h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)
    whole = DeMMIDataset(root, split="test", settings=["noise50+haze+stripe"])
    crop = DeMMIDataset(root, split="test", settings=["noise50+haze+stripe"], crop=128, seed=3)
    assert h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE) == before
    i = next(i for i in range(len(whole)) if whole.info(i).height >= 480)  # a 640x480 MSRS image

    def bytes_read(fn) -> int:
        def rchar() -> int:
            with open("/proc/self/io") as f:
                return int(next(line for line in f if line.startswith("rchar")).split()[1])

        start = rchar()
        fn()
        return rchar() - start

    whole[i], crop[i]  # open the shard and its metadata first
    full = bytes_read(lambda: whole[i])
    part = bytes_read(lambda: crop[i])
    # 640x480 in 64x64 chunks: 80 per array (10 x 8); a 128 crop touches at most 9 (3 x 3)
    assert part < 0.35 * full, (part, full)


def _epochs(ds, n_epochs=2, **kw):
    loader = DataLoader(ds, batch_size=4, shuffle=False, **kw)
    out = []
    for epoch in range(n_epochs):
        ds.set_epoch(epoch)
        out.append([b for b in loader])
    return out


def _check_against_main_process(ds, epochs):
    for epoch, batches in enumerate(epochs):
        ds.set_epoch(epoch)
        ref = [ds[i] for i in range(len(ds))]
        assert sum((b["sample_id"] for b in batches), []) == [r["sample_id"] for r in ref]
        for name in ARRAYS:
            assert torch.equal(torch.cat([b[name] for b in batches]), torch.stack([r[name] for r in ref]))
    assert not torch.equal(epochs[0][0]["vis"], epochs[1][0]["vis"])  # set_epoch reached the workers


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [0, 2, 4])
def test_fork_workers_persistent_two_epochs(root, workers):
    ds = DeMMIDataset(root, split="train", crop=64, augment=True, seed=1)
    ds[0]  # opens a shard in the parent before the workers fork
    kw = dict(num_workers=workers)
    if workers:
        kw.update(persistent_workers=True, multiprocessing_context="fork")
    _check_against_main_process(ds, _epochs(ds, **kw))


def test_spawn_workers_persistent_two_epochs(root):
    ds = DeMMIDataset(root, split="train", settings=["noise50", "stripe"], crop=64, augment=True, seed=2)
    epochs = _epochs(ds, num_workers=2, persistent_workers=True, multiprocessing_context="spawn")
    _check_against_main_process(ds, epochs)


def test_whole_images_of_different_sizes_at_test_time(root):
    ds = DeMMIDataset(root, split="test", settings=["noise50"])
    sizes = set(ds.sizes)
    assert len(sizes) > 1
    loader = DataLoader(ds, batch_size=3, collate_fn=partial(pad_collate, multiple=8))
    seen = 0
    for batch in loader:
        assert batch["vis"].shape[-2] % 8 == 0 and batch["vis"].shape[-1] % 8 == 0
        for j, t in enumerate(unpad(batch["ir"], batch["size"])):
            assert torch.equal(t, ds[seen + j]["ir"])
        seen += len(batch["sample_id"])
    assert seen == len(ds)
    bucketed = DataLoader(ds, batch_sampler=SizeBucketBatchSampler(ds.sizes, batch_size=2))
    assert sum(b["vis"].shape[0] for b in bucketed) == len(ds)


def test_png_baseline_gives_identical_items(root, tmp_path):
    ds = DeMMIDataset(root, split="train", crop=64, augment=True, seed=4)
    ids = [ds.info(i).sample_id for i in range(len(ds))][:6]
    export_png_folder(ds.store, tmp_path / "png", ids)
    png = PNGFolderDataset(tmp_path / "png", crop=64, augment=True, seed=4)
    assert len(png) == 6
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        png.set_epoch(epoch)
        for i in range(6):
            a, b = ds[i], png[i]
            assert a["sample_id"] == b["sample_id"] and a["setting"] == b["setting"]
            for name in ARRAYS:
                assert torch.equal(a[name], b[name])
    (tmp_path / "png" / "ir" / f"{ids[0].replace('/', '__')}.png").unlink()
    with pytest.raises(FileNotFoundError, match="missing or unreadable"):
        png[0]


def test_docs_example_runs(root):
    example = REPO / "docs" / "examples" / "train_minimal.py"
    doc = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    assert example.read_text(encoding="utf-8").strip() in doc  # the page shows the tested script verbatim
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(example), str(root), "--epochs", "2", "--workers", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1:" in proc.stdout and "test noise50" in proc.stdout
