"""Running a baseline over a built dataset: read each sample, fuse, write ``<safe sample id>.png`` atomically.

This is the I/O layer behind ``demmi baseline``; the fusion itself is the pure function of the registry.
Output images are PNG (lossless, deterministic bytes for a given OpenCV build), written to a hidden temporary
name and renamed, so an interrupted run never leaves a half-written image under a final name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DemmiError
from ..ids import safe_name
from ..parallel import default_workers as default_workers  # the toolkit's one default (re-exported for the CLI)
from ..parallel import map_in_workers
from . import BaselineInput, get

FUSED_SUFFIX = ".png"


def fused_name(sample_id: str) -> str:
    """File name of a sample's fused image: ``<safe sample id>.png`` (``/`` -> ``__``, benchmark spec §7)."""
    return safe_name(sample_id) + FUSED_SUFFIX


def check_fused_names(sample_ids: Iterable[str]) -> None:
    """:class:`DemmiError` before any work when a sample's fused file name (plus the temporary-file affixes of an
    atomic write) would exceed the file-name limit of common file systems (255 bytes). ``demmi scan`` and
    ``demmi build`` already refuse pair ids this long, so only a dataset built otherwise can hold one."""
    from ..sources.discover import ATOMIC_AFFIXES, NAME_MAX  # noqa: PLC0415

    limit = NAME_MAX - ATOMIC_AFFIXES
    too_long = [s for s in sample_ids if len(fused_name(s).encode("utf-8")) > limit]
    if too_long:
        first = fused_name(too_long[0])
        raise DemmiError(f"{len(too_long)} sample id(s) too long for a fused file name (at most {limit} bytes with "
                         f"the .png suffix), e.g. {first[:60]}... ({len(first.encode('utf-8'))} bytes); rename the "
                         "pair and rebuild the dataset")


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 gray (HxW) or RGB (HxWx3) image (OpenCV encoder, default compression)."""
    import cv2  # noqa: PLC0415

    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"a fused image must be uint8 HxW or HxWx3, got {img.dtype} {img.shape}")
    data = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data))
    if not ok:  # pragma: no cover - OpenCV failure
        raise DemmiError("OpenCV could not encode a PNG image")
    return buf.tobytes()


def write_png_atomic(path: str | Path, img: np.ndarray) -> None:
    """Write ``img`` as PNG to ``path`` through a temporary file and a rename; DemmiError naming the file when
    the system refuses (disk full, name too long, permission)."""
    from ..store.atomic import write_bytes_atomic  # noqa: PLC0415

    data = encode_png(img)
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise DemmiError(f"cannot write the fused image {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class BaselineRun:
    """What :func:`run_baseline` did: the baseline, the output folder and the sample ids written."""

    name: str
    out: Path
    written: tuple[str, ...]


# --- worker side ------------------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init_worker(root: str, name: str, threads: int | None) -> None:
    from ..store import open_dataset  # noqa: PLC0415

    if threads is not None:
        import cv2  # noqa: PLC0415

        cv2.setNumThreads(threads)
    ds = open_dataset(root)
    _STATE.update(ds=ds, baseline=get(name), ranges=ds.card.get("recipe", {}).get("degradations"))


def _setting_ranges(setting: str, table: Any) -> Any:
    """The ranges a setting's atoms were drawn from (a severity level laid over the recipe's table, so the
    cascade assumes e.g. ``noise50.s2``'s σ 15, not the recipe's 50); the recipe table when it has no levels."""
    from ..settings import parse_setting  # noqa: PLC0415

    parsed = parse_setting(setting)
    if not parsed.has_levels or not isinstance(table, dict):
        return table
    return {**table, **parsed.ranges(table)}


def _fuse_one(job: tuple[str, tuple[str, ...], str, str]) -> str:
    sample_id, atoms, out, setting = job
    ds, baseline = _STATE["ds"], _STATE["baseline"]
    arrays = ds.read(sample_id, arrays=baseline.arrays)
    ranges = _setting_ranges(setting, _STATE["ranges"])
    fused = baseline.run(BaselineInput(atoms=atoms, ranges=ranges, **arrays))
    write_png_atomic(Path(out) / fused_name(sample_id), fused)
    return sample_id


def _atoms(setting: str) -> tuple[str, ...]:
    from ..settings import parse_setting  # noqa: PLC0415

    return parse_setting(setting).atoms


def _release() -> None:
    """Close this process's dataset and forget the worker state."""
    _STATE.pop("ds").close()
    _STATE.clear()


def run_baseline(name: str, dataset: str | Path, out: str | Path, split: str | None = "test",
                 settings: Iterable[str] | None = None, workers: int = 1,
                 progress: Callable[[int], None] | None = None) -> BaselineRun:
    """Fuse every sample of ``split`` (and ``settings``, None = all) of ``dataset`` with baseline ``name`` and
    write ``<out>/<safe sample id>.png``. ``workers > 1`` uses a process pool (one OpenCV thread per worker);
    the images do not depend on the worker count. ``progress(n)`` is called as samples finish."""
    from ..store import open_dataset  # noqa: PLC0415

    get(name)  # unknown names fail before any work
    ds = open_dataset(dataset)
    rows = ds.samples(split=split, settings=list(settings) if settings is not None else None)
    out_dir = Path(out)
    try:
        check_fused_names(rows["sample_id"])
        root = Path(ds.root).resolve()
        if out_dir.resolve() == root or root in out_dir.resolve().parents:
            raise DemmiError(f"--out {out_dir}: inside the dataset folder {ds.root}; write fused images elsewhere")
    except DemmiError:
        ds.close()
        raise
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(sid, _atoms(setting), str(out_dir), setting) for sid, setting in zip(rows["sample_id"], rows["setting"])]
    done = map_in_workers(
        _fuse_one, jobs, workers=int(workers), initializer=_init_worker, initargs=(str(ds.root), name, 1),
        serial_initargs=(str(ds.root), name, None), release=_release, preload=["demmi_rf.baselines.run"],
        progress=progress,
    )
    ds.close()
    return BaselineRun(name, out_dir, tuple(done))

