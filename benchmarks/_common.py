"""Helpers shared by the benchmark scripts (imported as a sibling module: run the scripts as files)."""

from __future__ import annotations

import os


def pin_one_core() -> str:
    """One OpenCV thread and, where the OS allows, this process pinned to one CPU; returns a description."""
    import cv2

    cv2.setNumThreads(1)
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"one core (cv2.setNumThreads(1), affinity cpu {cpu})"
    except (AttributeError, OSError):
        return "one OpenCV thread (cv2.setNumThreads(1); CPU affinity not available)"


def cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (DataLoader workers once the loader is gone)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def loader_throughput(ds, epochs: int, batch: int, workers: int, seed: int) -> tuple[float, int, float, float]:
    """(samples/s, items, wall seconds, CPU ms per item) of a shuffled DataLoader over ``epochs`` epochs with
    fresh persistent workers. CPU time counts the main process and the workers (reaped when the loader is
    deleted), so it is a load-independent cost per sample, printed beside the wall-clock rate."""
    import gc
    import time

    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(seed)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, generator=g,
                        persistent_workers=workers > 0)
    n = 0
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for b in loader:
            n += b["vis"].shape[0]
    dt = time.perf_counter() - t0
    del loader, b
    gc.collect()  # shuts the persistent workers down and reaps them
    return n / dt, n, dt, (cpu_seconds() - cpu0) / n * 1e3
