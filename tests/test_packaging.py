"""Packaging: every package is installed, data files ship, and `import demmi_rf` stays free of torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _package_dirs() -> dict[str, Path]:
    """Every folder with an __init__.py under the mapped package roots, by its installed dotted name."""
    cfg = _pyproject()["tool"]["setuptools"]
    roots = {"demmi_rf": REPO / "demmi_rf", "tgecnet_ref": REPO / "tgecnet_ref"}
    roots.update({name: REPO / path for name, path in cfg["package-dir"].items()})
    found = {}
    for name, root in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            found[".".join([name, *rel.parts])] = init.parent
    return found


def test_every_package_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = set(_package_dirs())
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == set(), "these listed packages have no folder with __init__.py"


def test_import_demmi_rf_does_not_import_torch():
    code = (
        "import sys, demmi_rf, demmi_rf.sources, demmi_rf.recipe, demmi_rf.rng;"
        "import demmi_cli.main;"
        "bad = [m for m in ('torch', 'albumentations', 'dask') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "demmi_cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "scan" in out.stdout


@pytest.mark.slow
def test_wheel_ships_samples_recipes_and_configs(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        check=True,
    )
    wheel = next(tmp_path.glob("demmi_rf-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "demmi_manifests/demmi-rf-v1.toml" in names
    assert "demmi_rf/samples/NOTICE.md" in names
    assert "demmi_rf/samples/MSRS/test/ir/00004N.png" in names
    assert "demmi_cli/main.py" in names
    configs = [n for n in names if n.startswith("tgecnet_ref/configs/") and n.endswith(".toml")]
    assert configs or not list((REPO / "tgecnet_ref" / "configs").glob("*.toml"))
    assert not any("__pycache__" in n for n in names)
