"""Hardening of demmi build (issue 12): full disk, changed sources, bit-rot in shard metadata, orphaned workers,
concurrent builds and the build lock, --strict, hostile shard headers, huge seeds.

The full-disk test writes on a real, small tmpfs when it can mount one (root with mount permission), else it
makes h5py's flush fail with the error HDF5 gives on a full disk (``RuntimeError``, errno 28); the test prints
which route it took, and neither route is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from demmi_rf.builder import BuildError, build_dataset
from demmi_rf.builder.errors import BuildLockedError, StrictBuildError
from demmi_rf.builder.outdir import locked
from demmi_rf.errors import RecipeError
from demmi_rf.samples import sample_root
from demmi_rf.store import shard as shard_module
from demmi_rf.store import verify_dataset
from demmi_rf.store.layout import LOCK

from .test_build import write_test_recipe

SETTINGS = ["haze", "stripe"]
CLI = [sys.executable, "-m", "demmi_cli.main"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_test_recipe(tmp_path_factory.mktemp("rh"), pairs_per_shard=1)  # 9 shards of one pair


@pytest.fixture(scope="module")
def reference(tmp_path_factory, recipe) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ds"
    build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    return out


def _build_cmd(out: Path, recipe: Path, workers: int = 1, *extra: str) -> list[str]:
    return [*CLI, "build", "--out", str(out), "--recipe", str(recipe), "--degradations", ",".join(SETTINGS),
            "--workers", str(workers), "--no-progress", *extra]


def _same_dataset(a: Path, b: Path) -> None:
    for name in ("manifest.csv", "dataset.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for path in sorted((b / "shards").glob("*.h5")):
        assert (a / "shards" / path.name).read_bytes() == path.read_bytes(), path.name


def _shard_files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "shards").iterdir()) if (out / "shards").is_dir() else []


# ---- 1. disk full -------------------------------------------------------------------------------------------
def _mount_tmpfs(where: Path, size: str) -> bool:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0) or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    return done.returncode == 0


def test_disk_full_during_an_hdf5_flush_gives_the_message_and_resumes_identically(tmp_path, recipe, reference,
                                                                                monkeypatch):
    """A real full disk (tmpfs of 1.2 MiB: the 3rd-4th shard does not fit) in a subprocess, serial and with a
    pool; the old code segfaulted on close (exit 139) or reported a dead worker."""
    mount = tmp_path / "small"
    if _mount_tmpfs(mount, "1200k"):
        print("route: real tmpfs of 1200 KiB")
        try:
            for workers in (1, 2):
                out = mount / f"ds{workers}"
                full = subprocess.run(_build_cmd(out, recipe, workers), capture_output=True, text=True,
                                      timeout=300)
                assert full.returncode == 1, (full.returncode, full.stderr)
                assert "the disk is full" in full.stderr and "cannot write shard" in full.stderr, full.stderr
                assert "re-run the same command to resume" in full.stderr
                assert "Traceback" not in full.stderr and "worker process died" not in full.stderr
                assert not (out / "dataset.json").exists()
                assert [n for n in _shard_files(out) if n.startswith(".")] == []  # no temporary file left
                finished = [n for n in _shard_files(out) if n.endswith(".h5")]
                assert len(finished) < 9
                subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
                again = subprocess.run(_build_cmd(out, recipe, workers), capture_output=True, text=True,
                                       timeout=300)
                assert again.returncode == 0, again.stderr
                assert f"{len(finished)} reused" in again.stdout
                assert verify_dataset(out).ok
                _same_dataset(out, reference)
                shutil.rmtree(out)
                subprocess.run(["mount", "-o", "remount,size=1200k", str(mount)], check=True)
        finally:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        return
    print("route: h5py flush raises HDF5's disk-full RuntimeError (no tmpfs can be mounted here)")
    original = h5py.Dataset.flush
    calls = {"n": 0}

    def flush(self):
        calls["n"] += 1
        if calls["n"] == 10:  # inside the 3rd one-pair shard
            raise RuntimeError("Unable to flush dataset (file write failed: time = Mon Nov 30, filename = 'x', "
                               "file descriptor = 4, errno = 28, error message = 'No space left on device')")
        return original(self)

    monkeypatch.setattr(h5py.Dataset, "flush", flush)
    out = tmp_path / "ds"
    with pytest.raises(BuildError, match="cannot write shard .*the disk is full.*re-run the same command"):
        build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert not (out / "dataset.json").exists() and [n for n in _shard_files(out) if n.startswith(".")] == []
    monkeypatch.undo()
    report = build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert len(report.reused) == 2 and verify_dataset(out).ok
    _same_dataset(out, reference)


def test_discarded_shard_closes_cleanly_after_a_write_error(tmp_path, monkeypatch):
    """The writer's abort never leaves HDF5 holding a file it cannot close (that crashed the interpreter at
    exit): after a failed flush the file object is closed and the temporary file is gone."""
    original = h5py.Dataset.flush

    def flush(self):
        raise RuntimeError("Unable to flush dataset (file write failed: errno = 28, error message = 'No space')")

    monkeypatch.setattr(h5py.Dataset, "flush", flush)
    writer = shard_module.ShardWriter(tmp_path / "s.h5", {"split": "train"})
    with pytest.raises(OSError) as err, writer:
        writer.write_array("/pairs/a/b/vis", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(h5py.Dataset, "flush", original)
    assert err.value.errno == 28
    assert writer._h5 is None and list(tmp_path.iterdir()) == []
    # the interpreter exits normally with no open HDF5 file behind (a subprocess shows the exit status)
    code = ("import h5py, numpy as np, sys\n"
            "from demmi_rf.store.shard import ShardWriter\n"
            "h5py.Dataset.flush = lambda self: (_ for _ in ()).throw(RuntimeError('errno = 28, x'))\n"
            "w = ShardWriter(sys.argv[1] + '/t.h5', {})\n"
            "try:\n    with w:\n        w.write_array('/a', np.zeros((40, 40), np.uint8))\n"
            "except OSError as e:\n    print('errno', e.errno)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "errno 28" in done.stdout, (done.returncode, done.stderr)


def test_a_shard_file_that_hdf5_fails_to_create_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A full disk while HDF5 writes a new file's superblock: HDF5 has created the file, then fails; the writer
    removes it (the flaky case of the real-disk test above, made deterministic)."""
    real_file = h5py.File

    def failing_file(name, mode="r", **kwargs):
        real_file(name, mode, **kwargs).close()  # the file exists on disk, as HDF5 leaves it
        raise OSError(28, "Unable to create file (file write failed: errno = 28, error message = 'No space')")

    monkeypatch.setattr(shard_module.h5py, "File", failing_file)
    writer = shard_module.ShardWriter(tmp_path / "s.h5", {"split": "train"})
    with pytest.raises(OSError) as err, writer:
        pass
    assert err.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_a_failed_build_leaves_no_temporary_shard_file(tmp_path, recipe, monkeypatch):
    """Whatever a failing shard leaves behind (here a temporary file as a killed worker would), the driver removes
    the build's temporary shard files before it reports the failure; the finished shards stay for the resume."""
    from demmi_rf.builder import driver
    from demmi_rf.store.atomic import temp_path

    def failing_run_tasks(tasks, fn, **kwargs):
        shard = Path(tasks[0].out_dir) / tasks[0].file
        shard.parent.mkdir(parents=True, exist_ok=True)
        temp_path(shard).write_bytes(b"half a shard")
        raise BuildError(f"cannot write shard {tasks[0].file}: the disk is full")

    monkeypatch.setattr(driver, "run_tasks", failing_run_tasks)
    out = tmp_path / "ds"
    with pytest.raises(BuildError, match="the disk is full"):
        build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert [n for n in _shard_files(out) if n.startswith(".")] == []


# ---- 2. changed sources -------------------------------------------------------------------------------------
def _copy_samples(dest: Path) -> Path:
    shutil.copytree(sample_root(), dest)
    return dest


def test_an_edited_source_image_rebuilds_its_shard_and_the_manifest_names_what_was_read(tmp_path, recipe):
    import hashlib

    from PIL import Image

    from demmi_rf.store import read_manifest

    src = _copy_samples(tmp_path / "src")
    out = tmp_path / "ds"
    first = build_dataset(out, [src], recipe=recipe, settings=SETTINGS, workers=1)
    row = read_manifest(out / "manifest.csv").iloc[0]
    vis_path = src / row["vis_file"]
    before = hashlib.sha256(vis_path.read_bytes()).hexdigest()
    with Image.open(vis_path) as im:  # edit one source image (same size, other pixels)
        edited = np.asarray(im).copy()
    edited[:8] = 255 - edited[:8]
    Image.fromarray(edited).save(vis_path)
    after_edit = hashlib.sha256(vis_path.read_bytes()).hexdigest()
    second = build_dataset(out, [src], recipe=recipe, settings=SETTINGS, workers=1)
    assert second.built == [row["shard"]] and len(second.reused) == 8
    new_row = read_manifest(out / "manifest.csv").set_index("sample_id").loc[row["sample_id"]]
    assert new_row["sha256_vis_clean"] != row["sha256_vis_clean"]  # the stored pixels are the new image
    assert second.card["content_hash"] != first.card["content_hash"]
    assert verify_dataset(out).ok
    # the manifest and the card name the sources as they were read
    assert row["vis_file_sha256"] == before and new_row["vis_file_sha256"] == after_edit
    assert row["ir_file_sha256"] == new_row["ir_file_sha256"] == hashlib.sha256(
        (src / row["ir_file"]).read_bytes()).hexdigest()
    assert first.card["sources"]["files_sha256"] != second.card["sources"]["files_sha256"]


# ---- 3. bit-rot in shard metadata ---------------------------------------------------------------------------
def _flip_digit_in_result(path: Path) -> None:
    """Change one digit of a drawn parameter in /meta/result in place (same length: the file stays valid)."""
    with h5py.File(path, "r+") as h5:
        raw = h5["meta/result"][()].tobytes()
        text = raw.decode()
        at = text.index('"beta":') + len('"beta":') + 2  # a digit of haze.beta
        digit = text[at]
        assert digit.isdigit()
        new = text[:at] + str((int(digit) + 1) % 10) + text[at + 1 :]
        h5["meta/result"][...] = np.frombuffer(new.encode(), np.uint8)


def test_a_resume_rebuilds_a_shard_whose_drawn_parameters_rotted(tmp_path, recipe, reference):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    victim = next(p for p in sorted((out / "shards").glob("*.h5")))
    _flip_digit_in_result(victim)
    assert not verify_dataset(out).ok
    with h5py.File(victim, "r") as h5:
        with pytest.raises(Exception, match="does not match its integrity hash"):
            shard_module.read_result(h5, victim.name)
    report = build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert report.built == [f"shards/{victim.name}"] and len(report.reused) == 8
    assert verify_dataset(out).ok
    _same_dataset(out, reference)


def test_a_resume_rebuilds_a_shard_whose_sample_attributes_disagree_with_its_rows(tmp_path, recipe, reference):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    victim = sorted((out / "shards").glob("*.h5"))[1]
    with h5py.File(victim, "r+") as h5:
        name = next(n for n in h5["samples"].keys())
        group = h5["samples"][name]
        sub = group[next(iter(group.keys()))] if "setting" not in group.attrs else group
        params = json.loads(sub.attrs["params"])
        params[next(iter(params))] = {"tampered": 1}
        sub.attrs["params"] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    report = build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert report.built == [f"shards/{victim.name}"]
    _same_dataset(out, reference)


# ---- 4. seeds beyond 64 bits --------------------------------------------------------------------------------
def test_a_seed_beyond_64_bits_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RecipeError, match=r"2\*\*63 - 1"):
        build_dataset(out, settings=["haze"], seed=2**63, workers=1)
    assert not out.exists()
    done = subprocess.run([*CLI, "build", "--out", str(out), "--degradations", "haze", "--seed", str(2**64),
                           "--no-progress"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "2**63 - 1" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    data = json.loads(json.dumps(__import__("demmi_rf.recipe", fromlist=["load_recipe"]).load_recipe().to_json()))
    data["seed"] = 2**70
    path = tmp_path / "huge-seed.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecipeError, match=f"{path}.*'seed' must be in"):
        build_dataset(out, recipe=path, workers=1)


def test_the_largest_seed_builds_verifies_and_reads(tmp_path):
    from demmi_rf.store import open_dataset

    out = tmp_path / "ds"
    build_dataset(out, settings=["noise50"], seed=2**63 - 1, workers=1)
    assert verify_dataset(out).ok
    ds = open_dataset(out)
    assert int(ds.manifest["seed"].iloc[0]) == 2**63 - 1


# ---- 5. orphaned workers ------------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(stat[1]), []).append(int(entry))
    return kids


def _descendants(pid: int) -> set[int]:
    kids, out, todo = _children(), set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
def test_workers_die_with_a_killed_driver_and_write_nothing_after(tmp_path, recipe):
    out = tmp_path / "ds"
    env = {**os.environ, "DEMMI_BUILD_TEST_PAUSE": "1.0"}
    proc = subprocess.Popen(_build_cmd(out, recipe, 2), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while not list((out / "shards").glob(".*.tmp")) if (out / "shards").is_dir() else True:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = _descendants(proc.pid)
        assert len(workers) >= 2, workers  # the forkserver and at least one worker
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a user's kill -9 would
        proc.wait()
        killed_at = time.monotonic()
        while any(_running(p) for p in workers) and time.monotonic() - killed_at < 10:
            time.sleep(0.1)
        alive = [p for p in workers if _running(p)]
        assert alive == [], f"workers still running {time.monotonic() - killed_at:.1f} s after the driver died"
        before = _shard_files(out)
        time.sleep(2.5)  # longer than a pair's pause: a surviving worker would have committed a shard by now
        assert [n for n in _shard_files(out) if n.endswith(".h5")] == [n for n in before if n.endswith(".h5")]
    finally:
        for pid in [proc.pid, *workers]:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    # the next build takes the stale lock over and completes
    done = subprocess.run(_build_cmd(out, recipe, 2), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert verify_dataset(out).ok and not (out / LOCK).exists()


def test_a_worker_does_not_commit_a_shard_once_its_build_lost_the_lock(tmp_path, recipe):
    from demmi_rf.builder.plan import plan_shards
    from demmi_rf.builder.task import run_shard
    from demmi_rf.recipe import load_recipe
    from demmi_rf.sources import discover

    out = tmp_path / "ds"
    out.mkdir()
    (out / "shards").mkdir()
    task = plan_shards(discover(sample_root()).pairs, load_recipe(recipe).with_overrides(settings=SETTINGS),
                       str(out))[0]
    import dataclasses

    with locked(out) as token:
        pass  # the build that issued the token is gone (its lock file removed)
    with pytest.raises(BuildError, match="no longer holds"):
        run_shard(dataclasses.replace(task, lock_token=token))
    with locked(out):  # another build holds the lock now, with another token
        with pytest.raises(BuildError, match="no longer holds"):
            run_shard(dataclasses.replace(task, lock_token=token))
    assert _shard_files(out) == []
    with locked(out) as mine:
        assert run_shard(dataclasses.replace(task, lock_token=mine))["reused"] is False
    assert _shard_files(out) == [Path(task.file).name]


# ---- concurrent builds and the lock file --------------------------------------------------------------------
def test_a_second_build_says_another_build_is_running(tmp_path, recipe):
    out = tmp_path / "ds"
    with locked(out):
        # what a starting build has written before the second one looks: its lock and a temporary recipe file
        (out / ".recipe.json.123-abcd.tmp").write_text("{")
        with pytest.raises(BuildLockedError, match=f"another build is running into {out} \\(process {os.getpid()}\\)"):
            build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
        done = subprocess.run(_build_cmd(out, recipe), capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "another build is running" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (out / LOCK).exists()
    build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)  # the leftover temporary file is ours
    assert not (out / ".recipe.json.123-abcd.tmp").exists() and verify_dataset(out).ok


def test_two_builds_started_at_once_one_runs_the_other_says_so(tmp_path, recipe, reference):
    out = tmp_path / "ds"
    env = {**os.environ, "DEMMI_BUILD_TEST_PAUSE": "0.2"}
    procs = [subprocess.Popen(_build_cmd(out, recipe), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[2] == 1)
    assert "another build is running" in loser[1] and "Traceback" not in loser[1], loser[1]
    assert verify_dataset(out).ok and not (out / LOCK).exists()
    _same_dataset(out, reference)


def test_the_lock_file_is_removed_at_the_end_of_every_build(tmp_path, recipe):
    out = tmp_path / "ds"
    build_dataset(out, recipe=recipe, settings=["haze"], workers=1)
    assert not (out / LOCK).exists()
    with pytest.raises(BuildError):  # a failing build removes it too
        build_dataset(out, recipe=recipe, settings=["stripe"], seed=3, workers=1)
    assert not (out / LOCK).exists()
    (out / LOCK).write_text("999999 stale\n")  # left by a killed build: means nothing
    build_dataset(out, recipe=recipe, settings=["haze"], workers=1)
    assert not (out / LOCK).exists()


# ---- --strict ----------------------------------------------------------------------------------------------
def test_strict_refuses_skipped_pairs_and_empty_splits_and_the_summary_says_it(tmp_path, recipe):
    src = _copy_samples(tmp_path / "src")
    broken = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in (".png", ".jpg"))[0]
    broken.write_bytes(b"not an image")
    out = tmp_path / "ds"
    with pytest.raises(StrictBuildError, match="--strict: 1 pair\\(s\\)/file\\(s\\) skipped"):
        build_dataset(out, [src], recipe=recipe, settings=SETTINGS, workers=1, strict=True)
    assert not (out / "dataset.json").exists() and not (out / "manifest.csv").exists()
    strict = subprocess.run([*CLI, "build", "--out", str(out), "--source", str(src), "--recipe", str(recipe),
                             "--degradations", ",".join(SETTINGS), "--workers", "1", "--no-progress", "--strict"],
                            capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1 and "--strict" in strict.stderr and "skipped" in strict.stderr, strict.stderr
    lenient = subprocess.run([*CLI, "build", "--out", str(out), "--source", str(src), "--recipe", str(recipe),
                              "--degradations", ",".join(SETTINGS), "--workers", "1", "--no-progress"],
                             capture_output=True, text=True, timeout=300)
    assert lenient.returncode == 0, lenient.stderr
    assert "warning: 1 pair(s)/file(s) skipped" in lenient.stdout and "--strict" in lenient.stdout
    # a split that comes out empty: a recipe whose test fraction (0.99, not 1: then an empty train split is by
    # design) sends every pair of the samples to test
    data = json.loads(recipe.read_text())
    data["test_fraction"] = 0.99
    all_test = tmp_path / "all-test.json"
    all_test.write_text(json.dumps(data))
    with pytest.raises(StrictBuildError, match="the train split is empty"):
        build_dataset(tmp_path / "ds2", recipe=all_test, settings=["haze"], workers=1, strict=True)


# ---- hostile shard header ------------------------------------------------------------------------------------
def test_a_shard_whose_format_attribute_is_an_array_is_rebuilt_by_a_resume(tmp_path, recipe, reference):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    victim = sorted((out / "shards").glob("*.h5"))[2]
    with h5py.File(victim, "r+") as h5:
        h5.attrs["format"] = np.array(["demmi-rf-shard", "demmi-rf-shard"], dtype=h5py.string_dtype())
    with pytest.raises(Exception) as err:
        shard_module.open_shard(victim)
    assert type(err.value).__name__ == "ShardError" and "format" in str(err.value)
    report = build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert report.built == [f"shards/{victim.name}"]
    _same_dataset(out, reference)


def _resign(out: Path) -> None:
    """Rewrite the card's shard and manifest checksums to match the files (what a careful forger does)."""
    import hashlib

    card = json.loads((out / "dataset.json").read_text())
    for entry in card["shards"]:
        data = (out / entry["file"]).read_bytes()
        entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    data = (out / "manifest.csv").read_bytes()
    card["manifest"]["sha256"], card["manifest"]["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (out / "dataset.json").write_text(json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def test_verify_checks_the_drawn_parameters_even_in_a_consistently_resigned_dataset(tmp_path, reference):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    victim = sorted((out / "shards").glob("*.h5"))[0]
    _flip_digit_in_result(victim)
    _resign(out)
    report = verify_dataset(out)
    assert any("does not match its integrity hash" in str(p) for p in report.problems), report.problems
    assert verify_dataset(out, quick=True).ok  # the quick mode reads no shard content: documented
    # the manifest's copy of the parameters is compared with the shard's
    shutil.rmtree(out)
    shutil.copytree(reference, out)
    text = (out / "manifest.csv").read_text()
    at = text.index('""beta"":') + len('""beta"":') + 2
    text = text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :]
    (out / "manifest.csv").write_text(text)
    _resign(out)
    report = verify_dataset(out)
    assert any("drawn parameters in the manifest differ from the shard's" in str(p) for p in report.problems), \
        report.problems


# ---- crafted output folders and sources ----------------------------------------------------------------------
def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path, recipe):
    out = tmp_path / "ds"
    out.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (out / LOCK).symlink_to(victim)
    with pytest.raises(BuildError, match="is a symbolic link: refused"):
        build_dataset(out, recipe=recipe, settings=["haze"], workers=1)
    assert victim.read_text() == "keep me\n"


def test_a_symbolic_link_under_a_shard_name_is_replaced_not_reused(tmp_path, recipe, reference):
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    outside = tmp_path / "outside.h5"
    first = sorted((out / "shards").glob("*.h5"))[0]
    shutil.move(first, outside)
    first.symlink_to(outside)  # the same valid bytes, but outside the dataset folder
    report = build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert report.built == [f"shards/{first.name}"] and not first.is_symlink()
    assert verify_dataset(out).ok
    _same_dataset(out, reference)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_in_place_of_a_source_image_is_skipped_not_waited_on(tmp_path, recipe):
    from demmi_rf.builder.plan import plan_shards
    from demmi_rf.builder.task import run_shard
    from demmi_rf.recipe import load_recipe
    from demmi_rf.sources import discover

    src = _copy_samples(tmp_path / "src")
    pairs = discover(src).pairs  # scanned while the file was an image
    target = pairs[0].vis_path
    target.unlink()
    os.mkfifo(target)  # replaced after the scan: reading it would block forever
    out = tmp_path / "ds"
    (out / "shards").mkdir(parents=True)
    task = next(t for t in plan_shards(pairs, load_recipe(recipe).with_overrides(settings=SETTINGS), str(out),
                                       source_roots=(str(src),)) if pairs[0] in t.pairs)
    result = run_shard(task)
    assert [s["pair_id"] for s in result["skipped"]] == [pairs[0].pair_id]
    assert "cannot be read as a regular file" in result["skipped"][0]["message"]


@pytest.mark.parametrize("name", ["recipe.json", "dataset.json", "manifest.csv"])
def test_build_files_that_are_symbolic_links_are_refused(tmp_path, recipe, name):
    out = tmp_path / "ds"
    out.mkdir()
    victim = tmp_path / "precious.json"
    victim.write_text("{}")
    (out / name).symlink_to(victim)
    with pytest.raises(BuildError, match=f"{name} is a symbolic link: refused"):
        build_dataset(out, recipe=recipe, settings=["haze"], workers=1)
    assert victim.read_text() == "{}" and sorted(p.name for p in out.iterdir()) == [name]


def test_a_full_disk_while_writing_the_card_says_so_and_a_rerun_completes(tmp_path, recipe, reference, monkeypatch):
    import errno

    from demmi_rf.builder import driver

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(driver, "write_bytes_atomic", full)
    out = tmp_path / "ds"
    with pytest.raises(BuildError, match=r"cannot write the manifest/card into .*: the disk is full \(\[Errno 28\]"):
        build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert not (out / "dataset.json").exists() and not (out / LOCK).exists()
    monkeypatch.undo()
    report = build_dataset(out, recipe=recipe, settings=SETTINGS, workers=1)
    assert len(report.reused) == 9
    _same_dataset(out, reference)
