"""The published baseline tables in ``manifests/baselines/``: consistent, and reproducible from a fresh build.

The slow test rebuilds the embedded-sample dataset, reruns the cheapest baseline (``average``) and its ``tang``
evaluation, and checks what the project promises on any machine (docs/benchmark.md section 5):

1. the same pixels: the dataset's content hash;
2. the same printed tables: the leaderboard row and every cell of the per-setting table, at the 4 decimals they
   are printed with;
3. every number of the results file and of the per-sample CSV within a relative :data:`REL_TOL` (1e-9: the
   metrics' sensitivity to a change of rounding, measured when their filters changed order, is 3.5e-10);
4. bit for bit (every field but ``provenance`` and ``dataset.card_hash``, every CSV byte) when numpy, SciPy and
   OpenCV have the versions recorded in the committed file's ``provenance``: the metrics use only correctly
   rounded operations in a fixed order, so on those versions no CPU code path changes a bit
   (``tests/test_metrics_portability.py``). Other versions may change the last bits; then the other fields must
   still be equal.

If it fails after a deliberate change to the build, the degradations or the metrics, regenerate the tables with
``bash manifests/baselines/regenerate.sh``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from demmi_cli.main import cli
from demmi_rf import baselines
from demmi_rf.evaluation import comparable, read_results, render_leaderboard
from demmi_rf.evaluation.results import table_values
from demmi_rf.evaluation.table import TableRow, render_text

TABLES = Path(__file__).resolve().parents[1] / "manifests" / "baselines"
PROFILES = ("tang", "paper")
#: Relative tolerance within which every published number reproduces on any machine and library version.
REL_TOL = 1e-9
#: The libraries whose versions, when equal to the committed provenance, make the numbers reproduce bit for bit.
BIT_EXACT_LIBRARIES = ("numpy", "scipy", "opencv")


def run(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_every_baseline_and_profile_is_published_on_one_dataset():
    hashes = set()
    for profile in PROFILES:
        for name in baselines.names():
            res = read_results(TABLES / profile / f"{name}.json")
            assert res["method"] == name and res["profile"] == profile and res["reference"] == "clean"
            assert res["dataset"]["name"] == "demmi-rf-v1" and res["split"] == "test"
            assert res["samples"]["complete"] and res["samples"]["scored"] == res["samples"]["expected"]
            assert len(res["settings"]) == 16
            assert (TABLES / profile / res["per_sample"]["file"]).is_file()
            hashes.add((res["dataset"]["content_hash"], res["dataset"]["card_hash"]))
    assert len(hashes) == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_leaderboards_render_the_committed_results(profile):
    files = [TABLES / profile / f"{n}.json" for n in baselines.names()]
    text = render_leaderboard([read_results(f) for f in files], [str(f) for f in files])
    assert (TABLES / profile / "leaderboard.md").read_text(encoding="utf-8") == text


@pytest.mark.parametrize("profile", PROFILES)
def test_docs_show_the_committed_tables(profile):
    docs = (TABLES.parents[1] / "docs" / "benchmark.md").read_text(encoding="utf-8")
    table = [ln for ln in (TABLES / profile / "leaderboard.md").read_text(encoding="utf-8").splitlines()
             if ln.startswith("|")]
    missing = [ln for ln in table if ln not in docs]
    assert not missing, f"docs/benchmark.md does not show the regenerated {profile} table: {missing[:2]}"


def test_readme_names_the_regeneration_command():
    readme = (TABLES / "README.md").read_text(encoding="utf-8")
    assert "bash manifests/baselines/regenerate.sh" in readme
    assert (TABLES / "regenerate.sh").is_file()


def _printed_table(results: dict) -> str:
    """The per-setting table as ``demmi eval`` prints it (4 decimals)."""
    rows = [TableRow(r["setting"], r["n"], table_values(results, r["setting"])) for r in results["table"]]
    return render_text(rows, results["metrics"], results["higher_is_better"])


def test_docs_show_the_committed_cascade_paper_table():
    """docs/benchmark.md section 3 shows what ``demmi eval`` prints for ``cascade`` under ``--profile paper``:
    the committed results must render to exactly those lines."""
    docs = (TABLES.parents[1] / "docs" / "benchmark.md").read_text(encoding="utf-8")
    table = _printed_table(read_results(TABLES / "paper" / "cascade.json"))
    assert table in docs, f"docs/benchmark.md section 3 does not show the committed cascade table:\n{table}"


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-300)


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def assert_reproduces(fresh: dict, fresh_csv: bytes, committed: dict, committed_csv: bytes,
                      leaderboard: list[str]) -> None:
    """Points 2-4 of the module docstring: ``fresh`` (a new evaluation) against the ``committed`` results."""
    # 2. the printed tables: the leaderboard row and the per-setting table, at their 4 decimals
    row = [ln for ln in render_leaderboard([fresh], ["fresh"]).splitlines() if ln.startswith(f"| {fresh['method']} |")]
    assert len(row) == 1 and row[0] in leaderboard
    assert _printed_table(fresh) == _printed_table(committed)
    # 3. every number within REL_TOL: the table, then every per-sample value (ids and other columns exactly)
    assert [r["setting"] for r in fresh["table"]] == [r["setting"] for r in committed["table"]]
    for r in committed["table"]:
        want, got = table_values(committed, r["setting"]), table_values(fresh, r["setting"])
        bad = [k for k in want if not _close(got[k], want[k])]
        assert not bad, f"{r['setting']}: {[(k, got[k], want[k]) for k in bad]}"
    rows_f, rows_c = _csv_rows(fresh_csv), _csv_rows(committed_csv)
    assert len(rows_f) == len(rows_c) == committed["samples"]["scored"]
    for rf, rc in zip(rows_f, rows_c):
        assert rf.keys() == rc.keys()
        for k in rc:
            if k in committed["metrics"]:
                assert _close(float(rf[k] or "nan"), float(rc[k] or "nan")), (rc["sample_id"], k, rf[k], rc[k])
            else:
                assert rf[k] == rc[k], (rc["sample_id"], k)
    # 4. bit for bit where guaranteed: on the committed numpy/SciPy/OpenCV versions (any CPU)
    same_libraries = all(fresh["provenance"].get(lib) == committed["provenance"].get(lib)
                         for lib in BIT_EXACT_LIBRARIES)
    if same_libraries:
        assert fresh["table"] == committed["table"]
        assert fresh_csv == committed_csv
        assert comparable(fresh) == comparable(committed)
    else:  # other library versions: the last bits may move, every other field may not
        def strip(res: dict) -> dict:
            c = comparable(res)
            c.pop("table")
            c["per_sample"] = {k: v for k, v in c["per_sample"].items() if k != "sha256"}
            return c

        assert strip(fresh) == strip(committed)


def test_the_reproduction_check_catches_what_it_promises_to():
    """The committed ``average`` results pass against themselves; a value moved by 1e-12 relative passes the
    printed and the 1e-9 checks but fails bit for bit (same library versions); moved by 1e-7 it fails even with
    other library versions."""
    import copy
    import json

    committed = read_results(TABLES / "tang" / "average.json")
    committed_csv = (TABLES / "tang" / "average.csv").read_bytes()
    leaderboard = (TABLES / "tang" / "leaderboard.md").read_text(encoding="utf-8").splitlines()
    assert_reproduces(copy.deepcopy(committed), committed_csv, committed, committed_csv, leaderboard)

    def moved(rel: float) -> dict:
        res = json.loads(json.dumps(committed))
        cell = res["table"][0]["values"]
        key = next(k for k, v in cell.items() if isinstance(v, float) and v > 0.1)
        cell[key] = cell[key] * (1 + rel)
        return res

    with pytest.raises(AssertionError):
        assert_reproduces(moved(1e-12), committed_csv, committed, committed_csv, leaderboard)
    other_versions = moved(1e-12)
    other_versions["provenance"] = {**other_versions["provenance"], "numpy": "0.0.0"}
    assert_reproduces(other_versions, committed_csv, committed, committed_csv, leaderboard)
    other_versions = moved(1e-7)
    other_versions["provenance"] = {**other_versions["provenance"], "numpy": "0.0.0"}
    with pytest.raises(AssertionError):
        assert_reproduces(other_versions, committed_csv, committed, committed_csv, leaderboard)


@pytest.mark.slow
def test_average_baseline_regenerates(tmp_path):
    from demmi_rf.builder import build_dataset

    ds = tmp_path / "dataset"
    build_dataset(ds, [], workers=2)  # the embedded samples, default recipe: what regenerate.sh builds
    fused = tmp_path / "fused"
    run(["baseline", "average", "--dataset", str(ds), "--out", str(fused), "--workers", "2", "--no-progress"])
    out = tmp_path / "average.json"
    run(["eval", "--dataset", str(ds), "--fused", str(fused), "--method", "average", "--profile", "tang",
         "--out", str(out), "--workers", "2", "--no-progress"])
    committed = read_results(TABLES / "tang" / "average.json")
    fresh = read_results(out)
    # 1. the same pixels: same recipe, samples and pixel arrays (the card hash, which also covers the HDF5 file
    # bytes of this machine's h5py/HDF5/zlib build, is provenance and may differ)
    assert fresh["dataset"]["content_hash"] == committed["dataset"]["content_hash"], (
        "the embedded-sample build gives different content (recipe, samples or pixels); regenerate "
        "manifests/baselines")
    assert "card_hash" not in comparable(fresh)["dataset"] and fresh["dataset"]["card_hash"]
    fresh_csv = out.with_suffix(".csv").read_bytes()
    leaderboard = (TABLES / "tang" / "leaderboard.md").read_text(encoding="utf-8").splitlines()
    assert_reproduces(fresh, fresh_csv, committed, (TABLES / "tang" / "average.csv").read_bytes(), leaderboard)
