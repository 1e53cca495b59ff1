"""Scoring fused images against a dataset's references, one sample at a time, in-process or in a pool.

References (benchmark spec section 7):

* ``clean`` (default): the clean IR and the clean VIS (converted to gray with MATLAB ``rgb2gray`` by the
  metrics). This is the benchmark's protocol: how close the fused image is to what a fusion of the *undegraded*
  scene should carry; degradations left in the output cost points.
* ``degraded``: the degraded IR and VIS the method received. This is the classical fusion-paper convention
  (score against the inputs); on degraded data it rewards copying noise, haze and stripes, so it measures
  fidelity to the inputs, not restoration. Results of the two are never mixed by the leaderboard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..parallel import map_in_workers

REFERENCES: dict[str, tuple[str, str]] = {"clean": ("ir_clean", "vis_clean"), "degraded": ("ir", "vis")}


@dataclass(frozen=True)
class SampleScore:
    """Scores of one sample: metric values (profile order) and the reasons of NaN values."""

    sample_id: str
    values: dict[str, float]
    reasons: dict[str, str]
    fused_channels: int


def score_arrays(fused: Any, ir: Any, vis: Any, profile: str) -> tuple[dict[str, float], dict[str, str]]:
    """``(values, reasons)`` of :func:`demmi_rf.metrics.evaluate` on one triple."""
    from ..metrics import evaluate  # noqa: PLC0415

    reasons: dict[str, str] = {}
    values = evaluate(fused, ir, vis, profile, reasons=reasons)
    return values, dict(reasons)


_STATE: dict[str, Any] = {}


def _init(root: str, profile: str, reference: str, threads: int | None, max_pixels: int | None = None) -> None:
    from ..store import open_dataset  # noqa: PLC0415

    if threads is not None:
        import cv2  # noqa: PLC0415

        cv2.setNumThreads(threads)
    _STATE.update(ds=open_dataset(root), profile=profile, arrays=REFERENCES[reference], max_pixels=max_pixels)


def _score(job: tuple[str, str]) -> SampleScore:
    from .fused import read_fused  # noqa: PLC0415

    sample_id, path = job
    fused = read_fused(path, max_pixels=_STATE["max_pixels"]) if _STATE.get("max_pixels") else read_fused(path)
    ir_name, vis_name = _STATE["arrays"]
    refs = _STATE["ds"].read(sample_id, arrays=(ir_name, vis_name))
    values, reasons = score_arrays(fused, refs[ir_name], refs[vis_name], _STATE["profile"])
    return SampleScore(sample_id, values, reasons, 1 if fused.ndim == 2 else fused.shape[2])


def _release() -> None:
    """Close this process's dataset and forget the worker state."""
    _STATE.pop("ds").close()
    _STATE.clear()


def score_samples(root: str, jobs: Sequence[tuple[str, str]], profile: str, reference: str, workers: int = 1,
                  progress: Callable[[int], None] | None = None,
                  max_pixels: int | None = None) -> list[SampleScore]:
    """Scores of ``jobs`` (``(sample id, fused png path)``), in the order given. ``workers > 1`` runs a
    process pool (one OpenCV thread each); scores do not depend on the worker count. ``max_pixels`` bounds the
    fused images decoded (default: :data:`~demmi_rf.sources.images.DEFAULT_MAX_PIXELS`)."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    return map_in_workers(
        _score, jobs, workers=int(workers), initializer=_init, initargs=(root, profile, reference, 1, max_pixels),
        serial_initargs=(root, profile, reference, None, max_pixels), release=_release,
        preload=["demmi_rf.evaluation.score"],
        progress=progress,
    )
