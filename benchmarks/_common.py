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
