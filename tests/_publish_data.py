"""One small built dataset (and, on demand, fused images and results) shared by the publishing tests
(test_card_readme, test_export, test_report), built once per test session under pytest's base temp folder."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_cli

#: 4 of the 16 v1 settings (clean, a VIS-only, an IR-only and a three-atom mixture): 9 pairs x 4 = 36 samples
SETTINGS = "clean,haze,stripe,noise50+haze+stripe"
METHODS = ("average", "max")


def built_dataset(tmp_path_factory) -> Path:
    """``demmi build`` of the embedded samples with :data:`SETTINGS` (built on first use in the session)."""
    out = tmp_path_factory.getbasetemp() / "publish-shared" / "ds"
    if not (out / "dataset.json").is_file():
        run_cli(["build", "--out", str(out), "--degradations", SETTINGS, "--workers", "2", "--no-progress"])
    return out


def fused_and_results(tmp_path_factory, profile: str = "paper") -> tuple[dict[str, Path], list[Path]]:
    """Fused folders of :data:`METHODS` on the test split and their ``demmi eval`` results (``profile``)."""
    ds = built_dataset(tmp_path_factory)
    base = ds.parent
    fused, results = {}, []
    for m in METHODS:
        folder = base / "fused" / m
        if not folder.is_dir():
            run_cli(["baseline", m, "--dataset", str(ds), "--out", str(folder), "--workers", "2", "--no-progress"])
        fused[m] = folder
        res = base / "results" / profile / f"{m}.json"
        if not res.is_file():
            run_cli(["eval", "--dataset", str(ds), "--fused", str(folder), "--method", m, "--profile", profile,
                     "--out", str(res), "--workers", "2", "--no-progress"])
        results.append(res)
    return fused, results
