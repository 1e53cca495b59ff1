"""Reliability of demmi build: kills at several points then resume, disk full, permission errors.

The kill tests run ``demmi build`` in a subprocess (its own process group) with the test hook
``DEMMI_BUILD_TEST_PAUSE`` (seconds slept after each pair is written), wait until the output folder shows the
wanted state (a temporary shard, or N finished shards), kill the group, re-run the same command and compare
with an uninterrupted build.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from demmi_rf.builder import BuildError, build_dataset
from demmi_rf.builder.plan import plan_shards
from demmi_rf.builder.task import existing_result
from demmi_rf.recipe import load_recipe
from demmi_rf.samples import sample_root
from demmi_rf.sources import discover
from demmi_rf.store import shard as shard_module
from demmi_rf.store import verify_dataset

from .test_build import write_test_recipe

SETTINGS = ["haze", "stripe"]


@pytest.fixture(scope="module")
def one_pair_recipe(tmp_path_factory) -> Path:
    return write_test_recipe(tmp_path_factory.mktemp("r1"), pairs_per_shard=1)  # 9 shards


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_pair_recipe) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ds"
    build_dataset(out, recipe=one_pair_recipe, settings=SETTINGS, workers=1)
    return out


def _cmd(out: Path, recipe: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "demmi_cli.main", "build", "--out", str(out), "--recipe", str(recipe),
            "--degradations", ",".join(SETTINGS), "--workers", str(workers), "--no-progress"]


def _finished(out: Path) -> list[Path]:
    return sorted((out / "shards").glob("*.h5")) if (out / "shards").is_dir() else []


def _temps(out: Path) -> list[Path]:
    return sorted((out / "shards").glob(".*.tmp")) if (out / "shards").is_dir() else []


def _run_until(out: Path, recipe: Path, workers: int, ready, sig: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEMMI_BUILD_TEST_PAUSE": "0.5"}
    proc = subprocess.Popen(_cmd(out, recipe, workers), env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while not ready(out):
            assert proc.poll() is None, f"build ended before the kill point: {proc.communicate()}"
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.02)
        if sig == signal.SIGINT:
            os.kill(proc.pid, sig)  # Ctrl-C reaches the driver; workers follow
        else:
            os.killpg(proc.pid, sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize(
    "label, workers, ready, sig",
    [
        ("mid-first-shard", 1, lambda out: bool(_temps(out)), signal.SIGKILL),
        ("after-1-shard", 1, lambda out: len(_finished(out)) >= 1, signal.SIGKILL),
        ("after-3-shards", 1, lambda out: len(_finished(out)) >= 3, signal.SIGKILL),
        ("2-workers-after-2", 2, lambda out: len(_finished(out)) >= 2, signal.SIGKILL),
        ("ctrl-c-after-2", 1, lambda out: len(_finished(out)) >= 2, signal.SIGINT),
    ],
)
def test_killed_build_resumes_to_the_uninterrupted_result(tmp_path, one_pair_recipe, reference, label, workers,
                                                          ready, sig):
    out = tmp_path / "ds"
    killed = _run_until(out, one_pair_recipe, workers, ready, sig)
    assert not (out / "dataset.json").exists(), "an interrupted build must not look complete"
    assert len(_finished(out)) < 9
    if sig == signal.SIGINT:
        assert killed.returncode == 130 and "re-run the same command to resume" in killed.stderr
    tasks = {t.file: t for t in plan_shards(discover(sample_root()).pairs,
                                            load_recipe(one_pair_recipe).with_overrides(settings=SETTINGS), str(out),
                                            source_roots=(str(sample_root()),))}
    for path in _finished(out):  # every shard under its final name is complete and valid
        assert existing_result(tasks[f"shards/{path.name}"]) is not None, path

    rerun = subprocess.run(_cmd(out, one_pair_recipe, workers), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "reused" in rerun.stdout
    assert verify_dataset(out).ok
    assert _temps(out) == []
    for name in ("manifest.csv", "dataset.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    for path in _finished(reference):
        assert (out / "shards" / path.name).read_bytes() == path.read_bytes(), path.name


def _fail_on_call(monkeypatch, n: int, exc: OSError) -> None:
    original = shard_module.ShardWriter.write_array
    calls = {"n": 0}

    def write_array(self, path, array):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return original(self, path, array)

    monkeypatch.setattr(shard_module.ShardWriter, "write_array", write_array)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        # what h5py raises when HDF5 hits a full disk: no errno attribute, the code is in the text
        OSError("Can't synchronously write data (file write failed: time = Thu Nov 26, filename = 'x', "
                "file descriptor = 7, errno = 28, error message = 'No space left on device')"),
    ],
)
def test_disk_full_stops_with_a_clear_message_and_no_complete_looking_shard(tmp_path, monkeypatch, reference,
                                                                          one_pair_recipe, exc):
    out = tmp_path / "ds"
    _fail_on_call(monkeypatch, 14, exc)  # in the 4th shard (4 arrays per one-pair shard)
    with pytest.raises(BuildError) as err:
        build_dataset(out, recipe=one_pair_recipe, settings=SETTINGS, workers=1)
    assert "the disk is full" in str(err.value) and "cannot write shard" in str(err.value)
    assert not (out / "dataset.json").exists() and _temps(out) == []
    assert len(_finished(out)) == 3
    monkeypatch.undo()
    report = build_dataset(out, recipe=one_pair_recipe, settings=SETTINGS, workers=1)
    assert len(report.reused) == 3 and len(report.built) == 6
    assert (out / "manifest.csv").read_bytes() == (reference / "manifest.csv").read_bytes()


def test_permission_error_while_writing_a_shard(tmp_path, monkeypatch, one_pair_recipe):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(args[0]))

    monkeypatch.setattr(shard_module.h5py, "File", refuse)
    out = tmp_path / "ds"
    with pytest.raises(BuildError, match="cannot write shard .*permission denied"):
        build_dataset(out, recipe=one_pair_recipe, settings=SETTINGS, workers=1)
    assert _finished(out) == [] and _temps(out) == [] and not (out / "dataset.json").exists()


def test_output_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BuildError, match="cannot write to the output folder"):
        build_dataset(blocker / "ds", settings=["haze"], workers=1)


# ---- a real read-only output folder ------------------------------------------------------------------------
# Root ignores mode bits (CAP_DAC_OVERRIDE), so under root (as in CI) the build runs in a subprocess that cannot
# bypass them: as the unprivileged user nobody (65534) when it can run this interpreter and import the project,
# else as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH (dropped from the bounding set before exec, so
# the exec'd interpreter never regains them). Each route is probed first: import the project, and be refused
# when creating a file in the read-only folder. The test is skipped only when no route works, with the reasons.
_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2
_PROBE = """
import sys
import demmi_cli.main, demmi_rf.builder
try:
    open(sys.argv[1] + "/probe", "w").close()
except PermissionError:
    sys.exit(0)
sys.exit("the read-only folder accepted a new file")
"""


def _drop_dac_capabilities() -> None:  # runs in the child between fork and exec
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap}) refused")


def _unprivileged_routes() -> list[tuple[str, dict]]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"}
    return [
        ("as user nobody (65534)", {"user": 65534, "group": 65534, "extra_groups": [], "env": env}),
        ("as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH", {"preexec_fn": _drop_dac_capabilities}),
    ]


def _unprivileged_route(folder: Path) -> tuple[str, dict]:
    """The first route under which a subprocess imports the project and is refused writing to ``folder``."""
    reasons = []
    for label, kwargs in _unprivileged_routes():
        try:
            probe = subprocess.run([sys.executable, "-c", _PROBE, str(folder)], cwd="/", capture_output=True,
                                   text=True, timeout=120, **kwargs)
        except OSError as exc:  # e.g. nobody cannot execute an interpreter under /root
            reasons.append(f"{label}: {exc}")
            continue
        if probe.returncode == 0:
            return label, kwargs
        reasons.append(f"{label}: " + (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1])
    reason = "root ignores folder permissions and no unprivileged route works here: " + "; ".join(reasons)
    print(reason)
    pytest.skip(reason)


def test_read_only_output_folder(tmp_path):
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o555)
        try:
            with pytest.raises(BuildError, match="cannot write"):
                build_dataset(out, settings=["haze"], workers=1)
        finally:
            out.chmod(0o755)
        return
    base = Path(tempfile.mkdtemp(prefix="demmi-ro-"))  # not under pytest's 0700 root-only folders
    try:
        base.chmod(0o755)
        out = base / "ro"
        out.mkdir()
        out.chmod(0o555)  # owned by root: read-only to nobody and to root without the DAC capabilities
        label, kwargs = _unprivileged_route(out)
        cmd = [sys.executable, "-m", "demmi_cli.main", "build", "--out", str(out), "--degradations", "haze",
               "--workers", "1", "--no-progress"]
        proc = subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=300, **kwargs)
        assert proc.returncode != 0, f"build {label} succeeded in a read-only folder: {proc.stdout}"
        assert f"cannot write to the output folder {out}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and list(out.iterdir()) == []
    finally:
        if (base / "ro").exists():
            (base / "ro").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
