"""Unit tests of demmi_rf.torch on in-memory arrays: atoms, pairing of crops/flips, seeding, collate.

A tiny in-memory store (same ``samples``/``read`` contract as :func:`demmi_rf.store.open_dataset`) whose pixels
encode their own coordinates lets the pairing tests recover, from every output array, which source pixel each
output pixel came from.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from demmi_rf.errors import SettingError
from demmi_rf.torch import (
    ATOM_ORDER,
    DeMMIDataset,
    SizeBucketBatchSampler,
    atoms_vector,
    pad_collate,
    unpad,
)
from demmi_rf.torch.augment import apply_dihedral, crop_window, draw_choices, rgb_to_gray_bt601
from demmi_rf.torch.seeding import SharedEpoch, item_generator

# --- a coordinate-encoding in-memory store -----------------------------------------------------------------


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    return y.astype(np.uint8), x.astype(np.uint8)


def _mix(a: np.ndarray, b: np.ndarray, p: int, q: int) -> np.ndarray:
    return ((p * a.astype(int) + q * b.astype(int)) % 251).astype(np.uint8)


def coord_arrays(h: int, w: int, vis_channels: int, setting: str) -> dict[str, np.ndarray]:
    """Whole arrays of a CoordStore sample: functions of the pixel coordinates (sides < 256), so that any
    shift or flip changes them: vis = (y, x, 7), vis_clean = (x, y, 9) (gray VIS: 5y+2x, 2y+5x mod 251),
    ir = 3y+x, ir_clean = y+3x (mod 251). As the store contract says, a modality the setting leaves unchanged
    is its clean array."""
    from demmi_rf.settings import parse_setting

    y, x = _coords(h, w)
    if vis_channels == 3:
        vis, vis_clean = np.dstack([y, x, np.full_like(y, 7)]), np.dstack([x, y, np.full_like(y, 9)])
    else:
        vis, vis_clean = _mix(y, x, 5, 2), _mix(y, x, 2, 5)
    ir, ir_clean = _mix(y, x, 3, 1), _mix(y, x, 1, 3)
    st = parse_setting(setting)
    return {"vis": vis if st.changes_vis else vis_clean, "ir": ir if st.changes_ir else ir_clean,
            "vis_clean": vis_clean, "ir_clean": ir_clean}


class CoordStore:
    """In-memory store with the ``samples``/``read`` contract of :func:`demmi_rf.store.open_dataset`."""

    def __init__(self, pairs: dict[str, tuple[int, int, int]], settings: list[str], split: str = "train"):
        rows = []
        for pair, (h, w, c) in pairs.items():
            for s in settings:
                rows.append(dict(sample_id=f"{pair}@{s}", split=split, pair_id=pair, source=pair.split("/")[0],
                                 setting=s, atoms=s, height=h, width=w, vis_channels=c, shard="x.h5"))
        self.manifest = pd.DataFrame(rows)
        self.reads: list[tuple[str, tuple[str, ...], object]] = []

    def samples(self, split=None, settings=None):
        m = self.manifest
        if split is not None:
            m = m[m["split"] == split]
        if settings is not None:
            m = m[m["setting"].isin(list(settings))]
        return m.reset_index(drop=True)

    def whole(self, sample_id: str) -> dict[str, np.ndarray]:
        row = self.manifest[self.manifest["sample_id"] == sample_id].iloc[0]
        return coord_arrays(int(row.height), int(row.width), int(row.vis_channels), row.setting)

    def read(self, sample_id, arrays=("vis", "ir", "vis_clean", "ir_clean"), window=None):
        self.reads.append((sample_id, tuple(arrays), window))
        full = self.whole(sample_id)
        out = {}
        for name in arrays:
            a = full[name]
            if window is not None:
                y0, x0, h, w = window
                a = a[y0 : y0 + h, x0 : x0 + w]
            out[name] = np.ascontiguousarray(a)
        return out


def expected_tensor(array: np.ndarray, window, k: int, vis: bool = False) -> torch.Tensor:
    """Independent reference: crop, numpy rot90/fliplr, HWC->CHW, /255 (gray VIS repeated to 3 channels)."""
    if window is not None:
        y0, x0, h, w = window
        array = array[y0 : y0 + h, x0 : x0 + w]
    array = np.rot90(array, k % 4)
    if k >= 4:
        array = np.fliplr(array)
    chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if vis and chw.shape[0] == 1:
        chw = np.repeat(chw, 3, axis=0)
    return torch.from_numpy(chw.astype(np.float32) / np.float32(255))


STORE_PAIRS = {"a/p1": (60, 80, 3), "b/p2": (50, 70, 3), "c/gray": (64, 64, 1)}
SETTINGS = ["clean", "noise50", "stripe", "noise50+haze+stripe"]


@pytest.fixture
def store() -> CoordStore:
    return CoordStore(STORE_PAIRS, SETTINGS)


# --- atoms -------------------------------------------------------------------------------------------------


def test_atom_order_is_tgecnet_label_order():
    # the first six entries are TG-ECNet's label order whatever else is registered (label_index of the specs)
    assert ATOM_ORDER[:6] == ("noise15", "noise25", "noise50", "haze", "defocus", "stripe")
    n = len(ATOM_ORDER)
    assert atoms_vector("clean").tolist() == [0] * n
    assert atoms_vector("noise50+haze+stripe").tolist()[:6] == [0, 0, 1, 1, 0, 1]
    assert atoms_vector("noise15+defocus").tolist() == [1, 0, 0, 0, 1, 0] + [0] * (n - 6)
    assert atoms_vector(["defocus", "haze"]).dtype == np.float32
    with pytest.raises(SettingError, match="blur"):
        atoms_vector("noise15+blur")


# --- geometry ----------------------------------------------------------------------------------------------


def test_dihedral_transforms_are_the_eight_symmetries():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    outs = [apply_dihedral(a, k) for k in range(8)]
    assert np.array_equal(outs[0], a)
    assert np.array_equal(outs[1], np.rot90(a))
    assert np.array_equal(outs[4], a[:, ::-1])
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    rgb = np.random.default_rng(0).integers(0, 255, (5, 6, 3), dtype=np.uint8)
    for k in range(8):  # channels untouched: each channel transforms like a 2-D array
        out = apply_dihedral(rgb, k)
        for c in range(3):
            assert np.array_equal(out[..., c], apply_dihedral(rgb[..., c], k))
    with pytest.raises(ValueError):
        apply_dihedral(a, 8)


def test_crop_window_bounds_and_too_small():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(300):
        y0, x0, h, w = crop_window(rng, 10, 12, (4, 5))
        assert (h, w) == (4, 5) and 0 <= y0 <= 6 and 0 <= x0 <= 7
        seen.add((y0, x0))
    assert len(seen) == 7 * 8  # every position reachable
    with pytest.raises(ValueError, match="does not fit"):
        crop_window(rng, 10, 12, (11, 5))


def test_odd_rotation_draws_transposed_window():
    for seed in range(40):
        window, k = draw_choices(np.random.default_rng(seed), 100, 90, (16, 32), augment=True)
        assert window[2:] == ((16, 32) if k % 2 == 0 else (32, 16))


def test_bt601_gray_matches_matlab_rgb2gray():
    # MATLAB: rgb2gray(uint8([255 0 0])) = 76, green 150, blue 29, white 255, (10,20,30) -> 18
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30]]], dtype=np.uint8)
    assert rgb_to_gray_bt601(rgb).tolist() == [[76, 150, 29, 255, 18]]


# --- seeding -----------------------------------------------------------------------------------------------


def test_item_generator_depends_on_seed_epoch_key_only():
    def draw(seed, epoch, key):
        return item_generator(seed, epoch, key).integers(0, 2**31, 4).tolist()

    base = draw(0, 0, "a/p1@clean")
    np.random.seed(123)
    torch.manual_seed(99)
    assert draw(0, 0, "a/p1@clean") == base
    assert draw(1, 0, "a/p1@clean") != base
    assert draw(0, 1, "a/p1@clean") != base
    assert draw(0, 0, "a/p1@noise50") != base
    with pytest.raises(ValueError):
        item_generator(0, -1, "x")


def test_shared_epoch_plain_pickle_is_an_independent_copy():
    e = SharedEpoch(3)
    copy = pickle.loads(pickle.dumps(e))
    assert copy.value == 3
    e.value = 5
    assert copy.value == 3


# --- the dataset on the coordinate store --------------------------------------------------------------------


def test_length_order_and_fields_follow_manifest(store):
    ds = DeMMIDataset(store, split="train")
    assert len(ds) == len(store.manifest)
    assert [ds.info(i).sample_id for i in range(len(ds))] == store.manifest["sample_id"].tolist()
    item = ds[1]
    assert item["sample_id"] == "a/p1@noise50" and item["pair_id"] == "a/p1" and item["setting"] == "noise50"
    assert item["atoms"].tolist() == atoms_vector("noise50").tolist()
    for key in ("vis", "ir", "vis_clean", "ir_clean"):
        t = item[key]
        assert t.dtype == torch.float32 and t.dim() == 3 and 0 <= t.min() and t.max() <= 1
    assert item["vis"].shape == (3, 60, 80) and item["ir"].shape == (1, 60, 80)
    # whole image, no augmentation: exact pixels / 255
    whole = store.whole("a/p1@noise50")
    for key in ("vis", "ir", "vis_clean", "ir_clean"):
        assert torch.equal(item[key], expected_tensor(whole[key], None, 0))
    assert ds[-1]["sample_id"] == ds.info(len(ds) - 1).sample_id
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_settings_filter_by_names(store):
    ds = DeMMIDataset(store, settings=["stripe", "clean"])
    assert {ds.info(i).setting for i in range(len(ds))} == {"stripe", "clean"}
    assert len(ds) == 2 * len(STORE_PAIRS)
    assert len(DeMMIDataset(store, settings="noise50")) == len(STORE_PAIRS)
    from demmi_rf.settings import parse_setting

    assert len(DeMMIDataset(store, settings=parse_setting("stripe"))) == len(STORE_PAIRS)
    assert len(DeMMIDataset(store, settings=[parse_setting("stripe"), "clean"])) == 2 * len(STORE_PAIRS)


def test_pairing_same_window_and_transform_for_every_array(store):
    ds = DeMMIDataset(store, crop=(24, 40), augment=True, seed=5)
    ks = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            window, k = ds.choices(i)
            ks.add(k)
            whole = store.whole(item["sample_id"])
            for name in ("vis", "ir", "vis_clean", "ir_clean"):
                assert item[name].shape[-2:] == (24, 40)  # crop shape after any rotation
                # every array is T_k of the same window of its whole array
                assert torch.equal(item[name], expected_tensor(whole[name], window, k, vis=name.startswith("vis")))
    assert ks == set(range(8))


def test_crop_reads_only_its_window(store):
    ds = DeMMIDataset(store, crop=16, seed=1)
    store.reads.clear()
    ds[0]
    (sid, arrays, window), = store.reads
    assert sid.endswith("@clean") and window is not None and window[2:] == (16, 16)
    assert arrays == ("vis_clean", "ir_clean")  # clean: the degraded arrays are the clean ones, read once
    store.reads.clear()
    ds[1]  # noise50: IR unchanged
    assert sorted(store.reads[0][1]) == ["ir_clean", "vis", "vis_clean"]


def test_reproducible_and_differs_across_items_and_epochs(store):
    ds = DeMMIDataset(store, crop=16, augment=True, seed=3)
    first = [ds.choices(i) for i in range(len(ds))]
    assert len(set(first)) > len(ds) // 2  # items differ
    again = DeMMIDataset(store, crop=16, augment=True, seed=3)
    assert [again.choices(i) for i in range(len(ds))] == first
    ds.set_epoch(1)
    assert [ds.choices(i) for i in range(len(ds))] != first
    other = DeMMIDataset(store, crop=16, augment=True, seed=4)
    assert [other.choices(i) for i in range(len(ds))] != first


def test_gray_vis_is_repeated_or_converted(store):
    ds = DeMMIDataset(store, settings=["noise50"])
    gray = next(i for i in range(len(ds)) if ds.info(i).pair_id == "c/gray")
    item = ds[gray]
    assert item["vis"].shape == (3, 64, 64)
    assert torch.equal(item["vis"], expected_tensor(store.whole("c/gray@noise50")["vis"], None, 0, vis=True))
    g = DeMMIDataset(store, settings=["noise50"], to_gray_vis=True)
    rgb_item = g[0]
    assert rgb_item["vis"].shape == (1, 60, 80) and rgb_item["vis_clean"].shape == (1, 60, 80)
    expected = rgb_to_gray_bt601(store.whole("a/p1@noise50")["vis"]) / 255.0
    assert torch.allclose(rgb_item["vis"][0], torch.from_numpy(expected).float())
    assert g[gray]["vis"].shape == (1, 64, 64)
    assert torch.equal(g[gray]["vis"], expected_tensor(store.whole("c/gray@noise50")["vis"], None, 0))


def test_crop_larger_than_images_is_a_clear_error(store):
    with pytest.raises(ValueError, match=r"c/gray@clean \(64x64\)"):
        DeMMIDataset(store, crop=(55, 70), settings=["clean"])
    DeMMIDataset(store, crop=(40, 64), settings=["clean"])  # fits every image unrotated
    with pytest.raises(ValueError, match="with rotations"):
        DeMMIDataset(store, crop=(40, 64), augment=True, settings=["clean"])


def test_bad_arguments(store):
    with pytest.raises(ValueError, match="task"):
        DeMMIDataset(store, task="denoise")
    with pytest.raises(ValueError, match="crop"):
        DeMMIDataset(store, crop=(1, 2, 3))
    with pytest.raises(ValueError, match="seed"):
        DeMMIDataset(store, seed=-1)
    with pytest.raises(TypeError, match="root"):
        DeMMIDataset(object())
    ds = DeMMIDataset(store)
    with pytest.raises(ValueError, match="epoch"):
        ds.set_epoch(-2)


def _loader_items(ds, **kw):
    loader = DataLoader(ds, batch_size=3, shuffle=False, **kw)
    out = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        out.append([b for b in loader])
    return out


def _reference(ds, epoch):
    ds.set_epoch(epoch)
    return [ds[i] for i in range(len(ds))]


def test_two_worker_persistent_loader_sees_set_epoch(store):
    ds = DeMMIDataset(store, crop=16, augment=True, seed=11, settings=SETTINGS[:2])
    epochs = _loader_items(ds, num_workers=2, persistent_workers=True, multiprocessing_context="fork")
    for epoch, batches in enumerate(epochs):
        ref = _reference(ds, epoch)
        got_vis = torch.cat([b["vis"] for b in batches])
        assert torch.equal(got_vis, torch.stack([r["vis"] for r in ref]))
        assert sum((b["sample_id"] for b in batches), []) == [r["sample_id"] for r in ref]
    assert not torch.equal(torch.cat([b["vis"] for b in epochs[0]]), torch.cat([b["vis"] for b in epochs[1]]))


# --- collate and bucketing ---------------------------------------------------------------------------------


def test_pad_collate_and_unpad():
    a = {"vis": torch.rand(3, 5, 7), "ir": torch.rand(1, 5, 7), "atoms": torch.zeros(6), "sample_id": "s/a@clean"}
    b = {"vis": torch.rand(3, 9, 4), "ir": torch.rand(1, 9, 4), "atoms": torch.ones(6), "sample_id": "s/b@clean"}
    batch = pad_collate([a, b], multiple=8)
    assert batch["vis"].shape == (2, 3, 16, 8) and batch["ir"].shape == (2, 1, 16, 8)
    assert batch["size"].tolist() == [[5, 7], [9, 4]]
    assert batch["sample_id"] == ["s/a@clean", "s/b@clean"] and batch["atoms"].shape == (2, 6)
    assert batch["vis"][0, :, 5:, :].abs().sum() == 0 and batch["vis"][0, :, :, 7:].abs().sum() == 0
    back = unpad(batch["vis"], batch["size"])
    assert torch.equal(back[0], a["vis"]) and torch.equal(back[1], b["vis"])
    refl = pad_collate([a, b], mode="reflect")
    assert torch.equal(refl["ir"][0, :, 5, :7], a["ir"][:, 3, :])  # reflect: row 5 mirrors row 3
    with pytest.raises(ValueError, match="differ in size"):
        pad_collate([{"vis": torch.rand(3, 5, 7), "ir": torch.rand(1, 6, 7)}])


def test_size_buckets_group_same_sizes(store):
    ds = DeMMIDataset(store, settings=["clean", "noise50"])
    sampler = SizeBucketBatchSampler(ds.sizes, batch_size=4)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    for b in batches:
        assert len({ds.sizes[i] for i in b}) == 1
    loader = DataLoader(ds, batch_sampler=sampler)
    for batch in loader:  # default collate works: same size inside a batch
        assert batch["vis"].shape[0] <= 4
    shuffled = SizeBucketBatchSampler(ds.sizes, batch_size=1, shuffle=True, seed=2)
    e0 = list(shuffled)
    assert list(shuffled) == e0
    shuffled.set_epoch(1)
    assert list(shuffled) != e0 and sorted(e0) == sorted(list(shuffled))


# --- restoration task and predicates -----------------------------------------------------------------------


def test_restoration_items_follow_the_degraded_modality(store):
    ds = DeMMIDataset(store, task="restoration")
    infos = [ds.info(i) for i in range(len(ds))]
    # clean gives no item; VIS-only -> vis; stripe -> ir; a setting degrading both -> vis then ir
    assert all(info.setting != "clean" for info in infos)
    by_setting: dict[str, list[str]] = {}
    for info in infos:
        if info.pair_id == "a/p1":
            by_setting.setdefault(info.setting, []).append(info.modality)
    assert by_setting == {"noise50": ["vis"], "stripe": ["ir"], "noise50+haze+stripe": ["vis", "ir"]}
    assert len(ds) == len(STORE_PAIRS) * 4
    i_ir = next(i for i, info in enumerate(infos) if info.setting == "stripe" and info.pair_id == "a/p1")
    item = ds[i_ir]
    assert set(item) == {"input", "target", "modality", "setting", "atoms", "sample_id", "pair_id"}
    assert item["modality"] == "ir" and item["input"].shape == (1, 60, 80) and item["target"].shape == (1, 60, 80)
    arrays = store.whole("a/p1@stripe")
    assert torch.equal(item["input"], expected_tensor(arrays["ir"], None, 0))
    assert torch.equal(item["target"], expected_tensor(arrays["ir_clean"], None, 0))
    store.reads.clear()
    vis_item = ds[infos.index(next(f for f in infos if f.setting == "noise50" and f.pair_id == "a/p1"))]
    assert vis_item["modality"] == "vis" and vis_item["input"].shape == (3, 60, 80)
    assert store.reads[-1][1] == ("vis", "vis_clean")  # reads only the two arrays it returns
    gray = DeMMIDataset(store, task="restoration", to_gray_vis=True, settings=["noise50"])
    assert gray[0]["input"].shape == (1, 60, 80) and gray[0]["target"].shape == (1, 60, 80)


def test_restoration_items_differ_per_modality_and_pair_crops(store):
    ds = DeMMIDataset(store, task="restoration", settings=["noise50+haze+stripe"], crop=16, augment=True)
    assert ds.info(0).key != ds.info(1).key and ds.info(0).sample_id == ds.info(1).sample_id
    assert ds.choices(0) != ds.choices(1)
    for i in range(len(ds)):
        item = ds[i]
        window, k = ds.choices(i)
        whole = store.whole(item["sample_id"])
        m = item["modality"]
        assert torch.equal(item["input"], expected_tensor(whole[m], window, k, vis=m == "vis"))
        assert torch.equal(item["target"], expected_tensor(whole[f"{m}_clean"], window, k, vis=m == "vis"))


def test_restoration_on_clean_only_is_an_error(store):
    with pytest.raises(Exception, match="no restoration items"):
        DeMMIDataset(store, task="restoration", settings=["clean"])


def test_settings_predicate_gets_parsed_setting(store):
    ds = DeMMIDataset(store, settings=lambda s: "stripe" in s.atoms)
    assert {ds.info(i).setting for i in range(len(ds))} == {"stripe", "noise50+haze+stripe"}
    vis_only = DeMMIDataset(store, settings=lambda s: s.changes_vis and not s.changes_ir)
    assert {vis_only.info(i).setting for i in range(len(vis_only))} == {"noise50"}
    with pytest.raises(Exception, match="no fusion items"):
        DeMMIDataset(store, settings=lambda s: "defocus" in s.atoms)
