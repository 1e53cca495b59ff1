"""Reader caches: the per-process LRU of open array handles (bounded, dropped after a fork, consistent with the
shard-file LRU) and read-time errors through a cached handle."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil

import h5py
import numpy as np
import pytest

from demmi_rf.errors import ShardError
from demmi_rf.store import array_sha256, open_dataset

from .test_build import SMALL_SETTINGS, small_dataset, small_recipe  # noqa: F401 - fixtures

ARRAYS = ("vis", "ir", "vis_clean", "ir_clean")


def _expected(ds, sid: str) -> dict[str, str]:
    row = ds.row(sid)
    return {a: row[f"sha256_{a}"] for a in ARRAYS}


def _hashes(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {a: array_sha256(v) for a, v in arrays.items()}


def _assert_consistent(ds) -> None:
    """Every cached array handle is open and belongs to a file the shard LRU holds open."""
    for (rel, _path), dset in ds._arrays.items():
        assert rel in ds._files, f"cached handle of {rel}, whose file is not open"
        assert dset.id.valid and dset.file.id == ds._files[rel].id


def test_array_cache_is_bounded_and_reads_stay_identical(small_dataset):  # noqa: F811
    with open_dataset(small_dataset, max_open_arrays=3) as ds:
        sids = list(ds.manifest["sample_id"])
        for sid in sids + sids[::-1]:  # second pass in reverse: hits and evictions
            assert _hashes(ds.read(sid)) == _expected(ds, sid)
            assert 0 < len(ds._arrays) <= 3
            _assert_consistent(ds)
        sid = sids[0]
        ds.read(sid, arrays=("ir_clean",))
        key = (ds.row(sid)["shard"], ds.row(sid)["ir_clean_path"])
        handle = ds._arrays[key]
        ds.read(sid, arrays=("ir_clean",), window=(0, 0, 16, 16))
        assert ds._arrays[key] is handle and list(ds._arrays)[-1] == key  # reused, most recent
    with open_dataset(small_dataset, max_open_arrays=0) as ds:  # 0: no handle kept
        sid = sids[-1]
        assert _hashes(ds.read(sid)) == _expected(ds, sid) and len(ds._arrays) == 0


def test_evicted_shard_never_serves_stale_handles(small_dataset):  # noqa: F811
    with open_dataset(small_dataset, max_open_shards=1, max_open_arrays=64) as ds:
        first = ds.manifest.drop_duplicates("shard").reset_index(drop=True)
        assert len(first) >= 3
        a, b = first.iloc[0], first.iloc[1]
        ds.read(a.sample_id)
        old = [d for (rel, _), d in ds._arrays.items() if rel == a.shard]
        assert old and all(d.id.valid for d in old)
        ds.read(b.sample_id)  # opens shard b: shard a is closed, its handles dropped first
        assert list(ds._files) == [b.shard] and {rel for rel, _ in ds._arrays} == {b.shard}
        assert not any(d.id.valid for d in old)  # closed with their file, and no longer cached
        _assert_consistent(ds)
        for _ in range(2):  # back and forth: each shard reopens and reads the stored arrays
            for row in first.itertuples(index=False):
                assert _hashes(ds.read(row.sample_id)) == _expected(ds, row.sample_id)
                _assert_consistent(ds)
    with open_dataset(small_dataset) as ds:  # close() drops the handles before closing the files
        ds.read(first.sample_id[0])
        handles = list(ds._arrays.values())
        ds.close()
        assert len(ds._arrays) == 0 and not any(d.id.valid for d in handles)
        assert _hashes(ds.read(first.sample_id[0])) == _expected(ds, first.sample_id[0])  # reopens


def test_pid_change_drops_the_caches_and_pickles_carry_none(small_dataset):  # noqa: F811
    ds = open_dataset(small_dataset)
    sid = ds.manifest["sample_id"].iloc[0]
    ds.read(sid)
    inherited = [*ds._arrays.values(), *ds._files.values()]  # kept alive: their ids cannot be reused
    ds._pid = -1  # as seen by a forked child: the parent's handles must not be touched
    assert _hashes(ds.read(sid)) == _expected(ds, sid)
    assert ds._pid == os.getpid() and ds._arrays and ds._files
    assert not {id(h) for h in inherited} & {id(h) for h in [*ds._arrays.values(), *ds._files.values()]}
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone._arrays) == 0 and len(clone._files) == 0 and clone._index is None
    assert _hashes(clone.read(sid)) == _expected(ds, sid)
    clone.close()
    ds.close()


def _child_reads(ds, sid, queue):
    try:
        inherited = list(ds._arrays.values())  # the parent's handles, kept alive: their ids cannot be reused
        assert inherited
        got = _hashes(ds.read(sid))
        reused = any(d is h for d in ds._arrays.values() for h in inherited)
        queue.put((got, reused, ds._pid == os.getpid(), len(ds._arrays)))
    except BaseException as exc:  # report instead of hanging the parent
        queue.put(repr(exc))


def test_forked_child_opens_its_own_handles(small_dataset):  # noqa: F811
    ds = open_dataset(small_dataset)
    sid = ds.manifest["sample_id"].iloc[-1]
    ds.read(sid)  # the parent caches its file and array handles
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_reads, args=(ds, sid, queue))
    proc.start()
    result = queue.get(timeout=60)
    proc.join(timeout=60)
    assert proc.exitcode == 0, result
    got, reused, own_pid, count = result
    assert got == _expected(ds, sid) and not reused and own_pid and count == len(_paths_of(ds, sid))
    assert _hashes(ds.read(sid)) == _expected(ds, sid)  # the parent's handles still work
    ds.close()


def _paths_of(ds, sid: str) -> set[str]:
    """Distinct array paths of a sample (a modality its setting leaves unchanged is its clean array)."""
    row = ds.row(sid)
    return {row[f"{a}_path"] for a in ARRAYS}


def test_corruption_found_through_a_cached_handle_names_the_shard(tmp_path, small_dataset):  # noqa: F811
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    with open_dataset(copy) as ds:
        rows = ds.samples(settings="clean")
        row = rows[rows.height >= 128].iloc[0]
        sid, rel, path = row.sample_id, row.shard, row.vis_path
        ds.read(sid, arrays=("vis",), window=(0, 0, 64, 64))  # decodes chunk (0, 0) only; handle cached
        handle = ds._arrays[(rel, path)]
        assert handle.compression == "gzip" and handle.chunks[:2] == (64, 64)
        info = handle.id.get_chunk_info_by_coord((64, 64, 0) if handle.ndim == 3 else (64, 64))
        with open(copy / rel, "r+b") as f:  # damage a chunk not read yet, in place (same open file)
            f.seek(info.byte_offset)
            f.write(bytes(info.size))
        assert np.array_equal(ds.read(sid, arrays=("vis",), window=(0, 0, 64, 64))["vis"],
                              ds.read(sid, arrays=("vis_clean",), window=(0, 0, 64, 64))["vis_clean"])
        with pytest.raises(ShardError, match=rf"shard {rel}, sample {sid}, array {path}: data does not decode"):
            ds.read(sid, arrays=("vis",), window=(64, 64, 64, 64))
        assert (rel, path) not in ds._arrays  # a handle that failed is not kept
        with pytest.raises(ShardError, match=rf"shard {rel}, sample {sid}"):
            ds.read(sid, arrays=("vis",))
        with h5py.File(copy / rel, "r") as h5:  # the damage is real: a fresh handle fails too
            with pytest.raises(OSError):
                h5[path][64:128, 64:128]
