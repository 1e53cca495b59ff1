"""Shared fixtures: the embedded sample pairs and, when present, the project's 38 real pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demmi_rf.samples import sample_root

REPO = Path(__file__).resolve().parents[1]
REALPAIRS = REPO.parent / "shared" / "data" / "realpairs"
SHARED_GOLDEN = REPO.parent / "shared" / "docs" / "metrics-golden"
GOLDEN = REPO / "tests" / "data" / "metrics-golden"  # a copy of SHARED_GOLDEN that ships with the tests


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Embedded sample pairs (always present: they ship inside the package)."""
    return sample_root()


@pytest.fixture(scope="session")
def realpairs_dir(samples_dir: Path) -> Path:
    """The 38 real pairs of ../shared when present, else the embedded samples (same kind of data)."""
    return REALPAIRS if REALPAIRS.is_dir() else samples_dir


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB" if im.mode in ("RGB", "RGBA", "P") else "L"))


@pytest.fixture(scope="session")
def msrs_pair(samples_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vis RGB HxWx3, ir HxW) of one real 640x480 MSRS pair."""
    d = samples_dir / "MSRS" / "test"
    return _read(d / "vi" / "00004N.png"), _read(d / "ir" / "00004N.png")


@pytest.fixture(scope="session")
def tno_pair(samples_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vis gray HxW, ir HxW) of one real TNO pair."""
    d = samples_dir / "TNO"
    return _read(d / "vi" / "07.png"), _read(d / "ir" / "07.png")


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's torch work on one thread (tiny models on a shared 2-core machine run far faster)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(args: list[str], ok: bool = True):
    """Invoke ``demmi ARGS`` in-process; with ``ok`` assert it exited 0 (showing its output otherwise)."""
    from click.testing import CliRunner

    from demmi_cli.main import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def compiled_or_skip(loader):
    """``loader()`` (a probed routine or module of the optional compiled kernel), or a skip of the calling test
    when it is None: the kernel was not built here, and the numpy path it would replace is what runs (and is
    tested) on this machine."""
    import pytest

    found = loader()
    if found is None:
        pytest.skip("the compiled kernel is not built here (the numpy path is what runs)")
    return found


def kernel_swapped_is_refused(monkeypatch, replacement: object, probe) -> None:
    """Put ``replacement`` in the place of the compiled kernel ``demmi_rf._zigfast`` and check that ``probe`` (an
    ``lru_cache``-d loader that probes a routine against its numpy twin) refuses it (returns None), then that the
    real kernel is accepted again once the swap is undone."""
    import sys

    import demmi_rf

    monkeypatch.setitem(sys.modules, "demmi_rf._zigfast", replacement)
    monkeypatch.setattr(demmi_rf, "_zigfast", replacement)  # what ``from . import _zigfast`` finds first
    probe.cache_clear()
    try:
        assert probe() is None
    finally:
        monkeypatch.undo()
        probe.cache_clear()
    assert probe() is not None
