"""Every third-party package the installed code imports is declared in pyproject.toml.

A clean install once crashed in ``demmi train``/``demmi fuse`` on ``import tqdm``: a package our machines happened
to have but no requirement named. This test reads every module of the installed packages (``demmi_rf``,
``tgecnet_ref``, ``cli``, ``manifests``), collects the top-level names of all their imports (function-level ones
included) and checks each against the standard library, our own packages, and the requirements of the core and
of the extras. It does not depend on what this machine has installed.
"""

from __future__ import annotations

import ast
import re
import sys

from .conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FIRST_PARTY = {"demmi_rf", "tgecnet_ref", "demmi_cli", "demmi_manifests"}
# import name -> distribution name, where they differ
DISTRIBUTION_OF = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml", "skimage": "scikit-image",
                   "distributed": "dask", "sklearn": "scikit-learn", "pyarrow": "pyarrow"}
CODE_ROOTS = ("demmi_rf", "tgecnet_ref", "cli", "manifests")


def _declared() -> dict[str, set[str]]:
    """Distribution names (lower case, ``_`` as ``-``) declared by the core and by each extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        out = set()
        for req in reqs:
            m = re.match(r"\s*([A-Za-z0-9_.\-]+)", req)
            if m and m.group(1) != "demmi-rf":
                out.add(m.group(1).lower().replace("_", "-"))
        return out

    groups = {"core": names(project["dependencies"])}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        groups[extra] = names(reqs)
    return groups


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level third-party import name -> files importing it."""
    seen: dict[str, list[str]] = {}
    for root in CODE_ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            for name in _imports(path):
                if name in sys.stdlib_module_names or name in FIRST_PARTY or name == "__future__":
                    continue
                seen.setdefault(name, []).append(str(path.relative_to(REPO)))
    return seen


def test_every_imported_package_is_declared():
    declared = set().union(*_declared().values())
    missing = {name: files for name, files in _third_party_imports().items()
               if DISTRIBUTION_OF.get(name, name).lower().replace("_", "-") not in declared}
    assert not missing, f"imported but declared in no requirement of pyproject.toml: {missing}"


def test_all_extra_covers_every_other_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    all_spec = " ".join(extras["all"])
    m = re.search(r"demmi-rf\[([^\]]*)\]", all_spec)
    included = {e.strip() for e in m.group(1).split(",")} if m else set()
    assert set(extras) - {"all", "dev"} <= included, "the `all` extra must include every feature extra"


def test_the_checker_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The test above has power: a module importing an undeclared package is reported."""
    bad = tmp_path / "demmi_rf"
    bad.mkdir()
    (bad / "m.py").write_text("def f():\n    from tqdm.auto import tqdm\n    return tqdm\n")
    assert _imports(bad / "m.py") == {"tqdm"}
    assert "tqdm" not in set().union(*_declared().values())
