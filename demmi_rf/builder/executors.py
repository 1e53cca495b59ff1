"""Executors: run :func:`~demmi_rf.builder.task.run_shard` over the planned shards.

* ``local``: one worker runs the shards in this process; more use a process pool started with
  ``forkserver`` (``spawn`` where fork is unavailable), never plain ``fork`` (unsafe with threads and HDF5).
* ``dask``: one ``dask.distributed`` task per shard, on the scheduler at ``scheduler`` or on a
  ``LocalCluster(n_workers=workers, threads_per_worker=1)`` when none is given. Workers write shards into
  the output folder themselves, so on a cluster that folder (and the sources) must be on a file system every
  worker sees under the same path; only the small per-shard results travel back to the driver.

Shards are independent and their content depends only on the task, so the executor and the number of
workers never change a pixel. Shards run largest first, to balance the workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..parallel import die_with_parent, main_module_not_reimported, process_context
from .errors import BuildError
from .plan import ShardTask

EXECUTORS = ("local", "dask")
OnResult = Callable[[dict[str, Any]], None]


def _cost(task: ShardTask) -> int:
    """Work estimate of a shard: pixels when the scan measured them, else the pairs' file sizes."""
    total = 0
    for p in task.pairs:
        if p.height and p.width:
            total += p.height * p.width * 3
        else:
            try:
                total += Path(p.ir_path).stat().st_size + Path(p.vis_path).stat().st_size
            except OSError:
                total += 1
    return total * len(task.recipe["settings"])


def _order(tasks: Sequence[ShardTask]) -> list[ShardTask]:
    return sorted(tasks, key=lambda t: (-_cost(t), t.file))


def run_tasks(tasks: Sequence[ShardTask], fn: Callable[[ShardTask], dict[str, Any]], *, executor: str = "local",
              workers: int = 1, scheduler: str | None = None, on_result: OnResult | None = None
              ) -> list[dict[str, Any]]:
    """Run ``fn`` on every task; results in the order of ``tasks``. The first failure stops the build
    (pending shards are cancelled) and is raised."""
    if executor not in EXECUTORS:
        raise BuildError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise BuildError(f"--workers must be >= 1, got {workers}")
    if not tasks:
        return []
    on_result = on_result or (lambda r: None)
    if executor == "dask":
        results = _run_dask(tasks, fn, workers, scheduler, on_result)
    elif workers == 1 or len(tasks) == 1:
        results = {}
        for task in _order(tasks):
            results[task.file] = fn(task)
            on_result(results[task.file])
    else:
        results = _run_pool(tasks, fn, workers, on_result)
    return [results[t.file] for t in tasks]


def _run_pool(tasks: Sequence[ShardTask], fn, workers: int, on_result: OnResult) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    ctx = process_context(["demmi_rf.builder.task"])
    # workers die with this process (a driver killed with kill -9 leaves no worker running)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        with main_module_not_reimported():  # the workers start at the first submit
            pending = {pool.submit(fn, t): t for t in _order(tasks)}
        # each result is handled as its shard finishes (wait(FIRST_EXCEPTION) returned only once every shard
        # had finished: the driver held every shard's manifest rows at once and progress stalled until the end)
        for fut in as_completed(list(pending)):
            task = pending.pop(fut)
            exc = fut.exception()
            if exc is not None:
                for other in pending:
                    other.cancel()
                raise _as_build_error(exc, task)
            results[task.file] = fut.result()
            on_result(results[task.file])
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _as_build_error(exc: BaseException, task: ShardTask) -> BaseException:
    if isinstance(exc, (BuildError, KeyboardInterrupt)):
        return exc
    from ..errors import DemmiError  # noqa: PLC0415

    if isinstance(exc, DemmiError):
        return exc
    if type(exc).__name__ == "BrokenProcessPool":
        err = BuildError(f"shard {task.file}: a worker process died (killed, out of memory, or unable to start: "
                         "worker processes re-import the main script, so run builds from a file or the demmi "
                         "command, not from stdin)")
        err.__cause__ = exc
        return err
    err = BuildError(f"shard {task.file} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _run_dask(tasks: Sequence[ShardTask], fn, workers: int, scheduler: str | None,
              on_result: OnResult) -> dict[str, dict[str, Any]]:
    try:
        from distributed import Client, LocalCluster, as_completed  # noqa: PLC0415
    except ImportError as exc:
        raise BuildError("--executor dask needs dask.distributed: pip install 'demmi-rf[dask]'") from exc
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        # distributed logs every failed reconnection with a traceback; the build reports a lost scheduler itself
        stack.enter_context(_quiet_logger("distributed"))
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="30s"))
            except (OSError, TimeoutError) as exc:
                raise BuildError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from exc
        else:
            with main_module_not_reimported():
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        ordered = _order(tasks)
        futures = client.map(fn, ordered, key=[f"demmi-shard-{t.file}-{t.plan_key[:16]}" for t in ordered],
                             pure=False)
        by_key = {f.key: t for f, t in zip(futures, ordered)}
        try:
            _collect(client, as_completed(futures), by_key, scheduler, len(tasks), results, on_result)
        except BaseException:
            with contextlib.suppress(Exception):
                client.cancel(futures)
            raise
    return results


def _collect(client: Any, completed: Any, by_key: dict[str, ShardTask], scheduler: str | None, total: int,
             results: dict[str, dict[str, Any]], on_result: OnResult) -> None:
    """Take each finished dask future's result into ``results`` (and ``on_result``) as it completes. A future that
    failed raises its task's error as a :class:`BuildError`; a lost scheduler (a future cancelled or lost, or the
    connection closing while a result or an error is fetched: ``CommClosedError`` is an ``OSError``) raises the
    lost-scheduler :class:`BuildError`, which says how to resume."""
    for fut in completed:
        task = by_key[fut.key]
        if fut.status not in ("finished", "error") or (fut.status == "error" and client.status != "running"):
            raise BuildError(_lost_scheduler_message(scheduler, len(results), total))
        try:  # both fetch from the scheduler, which may have gone away since the future completed
            failure = fut.exception() if fut.status == "error" else None
            value = None if failure is not None else fut.result()
        except (OSError, TimeoutError) as exc:
            raise BuildError(_lost_scheduler_message(scheduler, len(results), total)) from exc
        if failure is not None:
            raise _as_build_error(failure, task)
        results[task.file] = value
        on_result(value)


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)


def _lost_scheduler_message(scheduler: str | None, done: int, total: int) -> str:
    """The driver lost its scheduler (killed, network gone): what happened and how to resume."""
    where = f"the dask scheduler at {scheduler}" if scheduler else "the local dask cluster's scheduler"
    return (f"lost {where} after {done} of {total} shard(s) finished; the finished shards are kept: "
            "start the scheduler again and re-run the same command to resume")
