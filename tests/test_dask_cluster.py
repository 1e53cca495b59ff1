"""A real dask topology on localhost: a ``dask scheduler`` and two ``dask worker`` OS processes.

The build must give the same content hash as a local build; a worker killed with SIGKILL mid-build must not change
the result (its shards are rescheduled on the other worker); a scheduler killed mid-build must stop the driver with
a clear message, and a re-run against a new scheduler resumes (finished shards reused) to the same content hash.
These tests start real processes and take some seconds each; they run in CI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demmi_rf.builder import build_dataset
from demmi_rf.builder.errors import BuildError

from .test_build import write_test_recipe

pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'demmi-rf[dask]')")

pytestmark = pytest.mark.slow
SETTINGS = ["clean", "stripe", "noise15", "haze"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``dask scheduler`` + worker processes on 127.0.0.1, each a separate OS process (no nanny, so a SIGKILL of
    a worker really removes it)."""

    def __init__(self, workdir: Path, n_workers: int = 2):
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.logs = []
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                                   "--no-dashboard", "--no-show"])
        self._wait_for_port()
        self.workers = [self._start(f"worker{i}", ["worker", self.address, "--nthreads", "1", "--no-nanny",
                                                   "--no-dashboard", "--name", f"w{i}",
                                                   "--local-directory", str(workdir / f"w{i}")])
                        for i in range(n_workers)]
        self._wait_for_workers(n_workers)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        self.logs.append(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.workdir, env=env, start_new_session=True)

    def _wait_for_port(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.scheduler.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"dask scheduler did not start: {(self.workdir / 'scheduler.log').read_text()}")

    def _wait_for_workers(self, n: int, timeout: float = 120.0) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=timeout)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.poll() is None]

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        for log in self.logs:
            log.close()


@pytest.fixture()
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def one_pair_per_shard(tmp_path_factory) -> Path:
    """The v1 recipe with one pair per shard: 9 shards from the embedded samples, enough to kill a worker mid-build."""
    return write_test_recipe(tmp_path_factory.mktemp("recipe1"), pairs_per_shard=1)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, one_pair_per_shard) -> str:
    out = tmp_path_factory.mktemp("local") / "ds"
    build_dataset(out, recipe=one_pair_per_shard, settings=SETTINGS, workers=1)
    return _content_hash(out)


def _content_hash(out: Path) -> str:
    return json.loads((out / "dataset.json").read_text())["content_hash"]


def _leftover_temp_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*.tmp"))


def test_two_worker_processes_build_what_a_local_build_builds(tmp_path, cluster, one_pair_per_shard,
                                                              local_reference):
    out = tmp_path / "ds"
    report = build_dataset(out, recipe=one_pair_per_shard, settings=SETTINGS, executor="dask",
                           scheduler=cluster.address)
    assert len(report.built) == 9
    assert _content_hash(out) == local_reference


def test_a_worker_killed_mid_build_changes_nothing(tmp_path, cluster, one_pair_per_shard, local_reference):
    out = tmp_path / "ds"
    victim = cluster.workers[0]
    events: list[str] = []

    def progress(kind: str, data: dict) -> None:
        if kind == "shard":
            events.append(data["file"])
            if len(events) == 1:
                os.kill(victim.pid, signal.SIGKILL)

    build_dataset(out, recipe=one_pair_per_shard, settings=SETTINGS, executor="dask", scheduler=cluster.address,
                  progress=progress)
    assert victim.wait(timeout=30) == -signal.SIGKILL  # the worker really died during the build
    assert len(events) == 9
    assert _content_hash(out) == local_reference
    assert _leftover_temp_files(out) == []  # the killed worker's half-written shard did not stay behind


def test_a_killed_scheduler_stops_the_driver_clearly_and_a_rerun_resumes(tmp_path, cluster, one_pair_per_shard,
                                                                          local_reference):
    out = tmp_path / "ds"
    done: list[str] = []

    def progress(kind: str, data: dict) -> None:
        if kind == "shard":
            done.append(data["file"])
            if len(done) == 2:
                os.kill(cluster.scheduler.pid, signal.SIGKILL)

    started = time.monotonic()
    with pytest.raises(BuildError, match="scheduler"):
        build_dataset(out, recipe=one_pair_per_shard, settings=SETTINGS, executor="dask",
                      scheduler=cluster.address, progress=progress)
    assert time.monotonic() - started < 120  # it stops; it does not hang
    assert not (out / "dataset.json").exists()  # no card for an unfinished build

    cluster.stop()
    again = Cluster(tmp_path / "second")
    try:
        report = build_dataset(out, recipe=one_pair_per_shard, settings=SETTINGS, executor="dask",
                               scheduler=again.address)
    finally:
        again.stop()
    assert len(report.reused) >= 2  # the shards finished before the scheduler died are kept
    assert _content_hash(out) == local_reference


class _Future:
    """A stand-in for a dask future: ``value`` is its result (or, with status "error", its task's exception);
    ``lost`` is what fetching either raises when the connection is gone (``CommClosedError`` is an ``OSError``)."""

    def __init__(self, key: str, status: str, value: object = None, lost: BaseException | None = None) -> None:
        self.key, self.status, self.value, self.lost = key, status, value, lost

    def result(self):
        if self.lost is not None:
            raise self.lost
        return self.value

    exception = result


def test_a_scheduler_lost_between_a_completion_and_its_fetch_is_the_lost_scheduler_error():
    """The race a killed scheduler can hit: the future completed, then fetching its result (or its error) finds the
    connection closed. The driver reports the lost scheduler and how to resume, not a CommClosedError traceback;
    the results taken before stay, and a task's own OSError is still that task's error."""
    from types import SimpleNamespace

    from demmi_rf.builder.executors import _collect

    class CommClosed(OSError):
        pass

    tasks = {k: SimpleNamespace(file=f"{k}.h5") for k in "abc"}
    running = SimpleNamespace(status="running")
    for broken in [_Future("b", "finished", lost=CommClosed("connection reset by peer")),
                   _Future("b", "error", lost=CommClosed("connection reset by peer")),
                   _Future("b", "error", lost=TimeoutError("timed out")),
                   _Future("b", "cancelled")]:
        results, seen = {}, []
        with pytest.raises(BuildError, match=r"lost the dask scheduler at tcp://h:1 after 1 of 3 shard\(s\) "
                                             r"finished.*re-run the same command to resume") as info:
            _collect(running, [_Future("a", "finished", {"n": 1}), broken, _Future("c", "finished", {"n": 3})],
                     tasks, "tcp://h:1", 3, results, seen.append)
        assert results == {"a.h5": {"n": 1}} and seen == [{"n": 1}]
        assert broken.status == "cancelled" or isinstance(info.value.__cause__, (OSError, TimeoutError))
    with pytest.raises(BuildError, match=r"shard b\.h5 failed: PermissionError: denied"):
        _collect(running, [_Future("b", "error", PermissionError("denied"))], tasks, None, 3, {}, lambda r: None)
