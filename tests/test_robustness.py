"""The robustness protocol (issue 14 section 4): rCE / mrCE on hand-made results (directions, undefined
normalisation, refusals), the renderings, ``demmi robustness`` on the published files (every baseline on every
setting, both profiles; the cascade's v1 samples unchanged), and a regeneration of a subset of the published
numbers from the embedded samples."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from demmi_rf.errors import DemmiError
from demmi_rf.evaluation.results import ResultsDataset, ResultsRecord, ResultsRow, ResultsSamples
from demmi_rf.evaluation.robustness import (
    degradation,
    relative_ce,
    render_robustness,
    robustness,
    severity_levels,
)
from demmi_rf.evaluation.table import format_value

from .conftest import run_cli

PUBLISHED = Path(__file__).resolve().parents[1] / "manifests" / "baselines" / "robustness"


def record(method: str, rows: dict[str, dict[str, float]], content: str = "a" * 64,
           hib: dict[str, bool] | None = None) -> ResultsRecord:
    """A results record with the table ``rows`` (setting -> metric -> mean); metrics from the first row."""
    metrics = tuple(next(iter(rows.values())))
    hib = hib or {"Q": True, "MSE": False}
    return ResultsRecord(
        source=f"{method}.json", method=method, profile="tang", reference="clean", split="test",
        dataset=ResultsDataset("toy", content, None, None, "1", "0"), toolkit_version="0",
        metrics=metrics, higher_is_better={m: hib[m] for m in metrics}, settings=tuple(rows),
        table=tuple(ResultsRow(s, 1, v) for s, v in rows.items()),
        samples=ResultsSamples(len(rows), len(rows), True, (), (), ()))


def both(q: float, mse: float) -> dict[str, float]:
    return {"Q": q, "MSE": mse}


# method "m": Q (higher is better) falls 10 -> 9 -> 8 on haze, MSE (lower is better) rises 1 -> 2 -> 3;
# reference "average" degrades twice as much on haze; on stripe the reference does not degrade at all
M = record("m", {"clean": both(10, 1), "haze.s1": both(9, 2), "haze.s2": both(8, 3),
                 "stripe.s1": both(10, 1), "stripe.s2": both(9, 1.5), "noise50+haze": both(0, 9)})
REF = record("average", {"clean": both(10, 1), "haze.s1": both(8, 3), "haze.s2": both(6, 5),
                         "stripe.s1": both(10, 1), "stripe.s2": both(11, 0.5), "noise50+haze": both(0, 9)})


def test_degradation_is_positive_when_worse_in_either_direction():
    assert degradation(10.0, 8.0, higher_is_better=True) == 2.0
    assert degradation(1.0, 3.0, higher_is_better=False) == 2.0
    assert degradation(1.0, 0.5, higher_is_better=False) == -0.5  # better than clean: negative


def test_relative_ce_by_hand_for_both_directions():
    # higher is better: (1 + 2) / (2 + 4) = 50 %
    assert relative_ce([9, 8], 10, [8, 6], 10, higher_is_better=True) == 50.0
    # lower is better: (1 + 2) / (2 + 4) = 50 %; with the sign of a higher-is-better metric both sums are negative
    # and the normalisation undefined, so a sign error cannot pass unnoticed
    assert relative_ce([2, 3], 1, [3, 5], 1, higher_is_better=False) == 50.0
    assert math.isnan(relative_ce([2, 3], 1, [3, 5], 1, higher_is_better=True))


def test_a_sign_error_for_lower_is_better_would_flip_the_ranking():
    # a method that doubles MSE is worse than one that adds 10 %: its rCE must be larger
    bad = relative_ce([2.0], 1.0, [1.5], 1.0, higher_is_better=False)
    good = relative_ce([1.1], 1.0, [1.5], 1.0, higher_is_better=False)
    assert bad == pytest.approx(200.0) and good == pytest.approx(20.0) and bad > good


def test_undefined_normalisation_is_nan_and_checked_inputs():
    assert math.isnan(relative_ce([9], 10, [10], 10, True))  # the reference does not degrade
    assert math.isnan(relative_ce([9], 10, [11], 10, True))  # the reference improves
    assert math.isnan(relative_ce([float("nan")], 10, [8], 10, True))
    with pytest.raises(ValueError, match="as many values"):
        relative_ce([1, 2], 3, [1], 3, True)
    with pytest.raises(ValueError, match="as many values"):
        relative_ce([], 3, [], 3, True)


def test_severity_levels_reads_single_atom_levels_and_ignores_mixtures():
    levels, ignored = severity_levels(["clean", "haze.s2", "haze.s1", "stripe.s3", "noise50+haze", "haze",
                                       "noise50.s1+stripe.s2"])
    assert levels == {"haze": (1, 2), "stripe": (3,)}
    assert ignored == ("noise50+haze", "haze", "noise50.s1+stripe.s2")


def test_report_on_hand_made_results():
    rep = robustness([M, REF], ["m.json", "average.json"])
    assert rep.atoms == ("haze", "stripe") and rep.ignored == ("noise50+haze",)
    m, ref = rep.methods
    scores = {(s.atom, s.metric): s for s in m.atoms}
    assert scores["haze", "Q"].rce == 50.0 and scores["haze", "MSE"].rce == 50.0
    assert scores["haze", "Q"].mean_degradation == 1.5 and scores["haze", "MSE"].mean_degradation == 1.5
    # stripe: the reference improves (Q 10 -> 11, MSE 1 -> 0.5), so the normalisation is undefined
    assert math.isnan(scores["stripe", "Q"].rce) and math.isnan(scores["stripe", "MSE"].rce)
    assert scores["stripe", "Q"].mean_degradation == 0.5 and scores["stripe", "MSE"].mean_degradation == 0.25
    assert m.mrce == {"Q": 50.0, "MSE": 50.0} and m.n_atoms == {"Q": 1, "MSE": 1}
    assert m.mean_degradation == {"Q": (1.5 + 0.5) / 2, "MSE": (1.5 + 0.25) / 2}
    assert ref.mrce == {"Q": 100.0, "MSE": 100.0}  # the reference scores 100 where defined
    curve = next(c for c in m.curves if (c.atom, c.metric) == ("haze", "MSE"))
    assert curve.levels == (0, 1, 2) and curve.values == (1, 2, 3)


def test_mrce_averages_the_atoms():
    m = record("m", {"clean": {"Q": 10}, "a.s1": {"Q": 9}, "b.s1": {"Q": 7}})
    r = record("average", {"clean": {"Q": 10}, "a.s1": {"Q": 8}, "b.s1": {"Q": 7}})
    rep = robustness([m, r], ["m", "r"])
    assert rep.methods[0].mrce["Q"] == (50.0 + 100.0) / 2 and rep.methods[0].n_atoms["Q"] == 2


def test_refusals():
    other = record("x", {"clean": both(10, 1), "haze.s1": both(9, 2), "haze.s2": both(8, 3),
                         "stripe.s1": both(10, 1), "stripe.s2": both(9, 1.5), "noise50+haze": both(0, 9)},
                   content="b" * 64)
    with pytest.raises(DemmiError, match="cannot mix results of different datasets"):
        robustness([REF, other], ["average.json", "x.json"])
    with pytest.raises(DemmiError, match="reference method 'laplacian' is not among the results"):
        robustness([M, REF], ["m", "a"], reference="laplacian")
    with pytest.raises(DemmiError, match="appears twice"):
        robustness([REF, REF], ["a", "b"])
    no_clean = record("average", {"haze.s1": both(9, 2)})
    with pytest.raises(DemmiError, match="no 'clean' setting"):
        robustness([no_clean], ["a"])
    no_levels = record("average", {"clean": both(9, 2), "haze": both(8, 3)})
    with pytest.raises(DemmiError, match="no severity setting"):
        robustness([no_levels], ["a"])


def test_renderings():
    rep = robustness([M, REF], ["m.json", "average.json"])
    md = render_robustness(rep, "md")
    assert "| m | 50.0 (1 atoms) | 50.0 (1 atoms) |" in md and "| average | 100.0 (1 atoms) | 100.0 (1 atoms) |" in md
    assert "## Curve: haze (level 0 = clean)" in md and "| m | MSE ↓ | 1.0000 | 2.0000 | 3.0000 |" in md
    rows = list(csv.DictReader(io.StringIO(render_robustness(rep, "csv"))))
    mrce = [r for r in rows if r["kind"] == "mrce" and r["method"] == "m" and r["metric"] == "MSE"]
    assert len(mrce) == 1 and float(mrce[0]["value"]) == 50.0 and mrce[0]["n_atoms"] == "1"
    doc = json.loads(render_robustness(rep, "json"))
    assert doc["methods"][0]["atoms"]["stripe"]["Q"]["rce"] is None  # NaN is null
    assert doc["methods"][0]["curves"]["haze"]["Q"] == [10, 9, 8]
    with pytest.raises(DemmiError, match="unknown robustness format"):
        render_robustness(rep, "html")


# --- the published reports -------------------------------------------------------------------------------------------
METHODS = ("average", "max", "laplacian", "cascade", "oracle-clean")
TABLES = {"tang": METHODS, "paper": METHODS}
V1_TABLES = PUBLISHED.parent  # manifests/baselines/<profile>/: the v1 recipe's tables


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("fmt", ["md", "csv", "json"])
def test_demmi_robustness_reproduces_the_published_reports_from_their_results(table, fmt, tmp_path):
    files = [str(PUBLISHED / table / f"{m}.json") for m in TABLES[table]]
    out = tmp_path / f"robustness.{fmt}"
    run_cli(["robustness", *files, "--reference", "average", "--format", fmt, "--out", str(out)])
    published = (PUBLISHED / table / f"robustness.{fmt}").read_text(encoding="utf-8")
    if fmt == "json":  # the file paths differ with the checkout; every number must not
        a, b = json.loads(out.read_text(encoding="utf-8")), json.loads(published)
        for doc in (a, b):
            for m in doc["methods"]:
                m.pop("file")
        assert a == b
    else:
        assert out.read_text(encoding="utf-8") == published


@pytest.mark.parametrize("table", TABLES)
def test_the_published_tables_cover_every_baseline_on_every_setting(table):
    """One table per profile: the five baselines on all 70 settings of demmi-rf-c (the same dataset), and
    oracle-clean, which reads the clean sources, at the protocol's ceiling (no degradation: mrCE 0)."""
    from demmi_rf.evaluation.results import load_results
    from demmi_rf.recipe import load_recipe

    settings = load_recipe("demmi-rf-c").settings
    records = [load_results(PUBLISHED / table / f"{m}.json") for m in TABLES[table]]
    assert len(settings) == 70
    for r in records:
        assert r.settings == tuple(settings) and r.profile == table and r.split == "test", r.method
        assert r.dataset.content_hash.startswith("f4432cf7c936"), r.method
    report = json.loads((PUBLISHED / table / "robustness.json").read_text(encoding="utf-8"))
    assert [m["method"] for m in report["methods"]] == list(METHODS)
    oracle = next(m for m in report["methods"] if m["method"] == "oracle-clean")
    assert all(v == 0 for v in oracle["mrce"].values()) and all(v == 0 for v in oracle["mean_degradation"].values())


@pytest.mark.parametrize("profile", TABLES)
def test_the_cascade_on_the_shared_v1_samples_equals_the_v1_table(profile):
    """demmi-rf-c's clean and mixture samples are the v1 build's (same seed, tables and pairs), so the cascade's
    published scores on them must equal those of the v1 table manifests/baselines/<profile>/cascade.json: the
    restorers added for the atoms beyond v1 changed no v1 byte."""
    old = json.loads((V1_TABLES / profile / "cascade.json").read_text(encoding="utf-8"))
    new = json.loads((PUBLISHED / profile / "cascade.json").read_text(encoding="utf-8"))
    v1_rows = {r["setting"]: r for r in old["table"]}
    shared = [r for r in new["table"] if r["setting"] in v1_rows and r["setting"] != "mean"]
    assert len(shared) == 10  # clean and the nine mixtures
    for r in shared:
        assert r == v1_rows[r["setting"]], r["setting"]


def test_demmi_robustness_cli_errors(tmp_path):
    files = [str(PUBLISHED / "tang" / f"{m}.json") for m in TABLES["tang"]]
    r = run_cli(["robustness", *files, "--reference", "avrage"], ok=False)
    assert r.exit_code == 2 and "did you mean 'average'" in r.output
    r = run_cli(["robustness", files[1], str(PUBLISHED / "paper" / "average.json")], ok=False)
    assert r.exit_code == 1 and "profile" in r.output
    r = run_cli(["robustness", files[1], str(V1_TABLES / "tang" / "average.json")], ok=False)
    assert r.exit_code == 1 and "different datasets" in r.output


def test_regenerating_the_stripe_gain_levels_reproduces_the_published_numbers(tmp_path, samples_dir):
    """Build demmi-rf-c's clean and stripe_gain levels from the embedded samples, fuse with average and cascade
    (destriping, then NLM), score with tang: the stripe_gain curves, rCE and mean degradations equal the
    published ones at printed precision."""
    from demmi_rf.evaluation import read_results

    settings = ",".join(["clean", *(f"stripe_gain.s{k}" for k in range(1, 6))])
    ds = tmp_path / "ds"
    run_cli(["build", "--recipe", "demmi-rf-c", "--out", str(ds), "--degradations", settings, "--workers", "1",
             "--no-progress"])
    files = []
    for method in ("average", "cascade"):
        fused = tmp_path / method
        run_cli(["baseline", method, "--dataset", str(ds), "--out", str(fused), "--workers", "1", "--no-progress"])
        files.append(tmp_path / f"{method}.json")
        run_cli(["eval", "--dataset", str(ds), "--fused", str(fused), "--method", method, "--profile", "tang",
                 "--out", str(files[-1]), "--workers", "1", "--no-progress"])
    new = robustness([read_results(f) for f in files], [str(f) for f in files])
    published = json.loads((PUBLISHED / "tang" / "robustness.json").read_text(encoding="utf-8"))
    old = {m["method"]: m for m in published["methods"]}
    assert published["levels"]["stripe_gain"] == [1, 2, 3, 4, 5]
    checked = 0
    for m in new.methods:
        for c in (c for c in m.curves if c.atom == "stripe_gain"):
            values = old[m.method]["curves"]["stripe_gain"][c.metric]
            want = [format_value(math.nan if v is None else float(v)) for v in values]
            assert [format_value(v) for v in c.values] == want, (m.method, c.metric)
            checked += 1
        for s in (s for s in m.atoms if s.atom == "stripe_gain"):
            cell = old[m.method]["atoms"]["stripe_gain"][s.metric]
            assert format_value(s.mean_degradation) == format_value(float(cell["mean_degradation"]))
            want_rce = "nan" if cell["rce"] is None else f"{float(cell['rce']):.1f}"
            assert ("nan" if math.isnan(s.rce) else f"{s.rce:.1f}") == want_rce, (m.method, s.metric)
    assert checked == 2 * 14  # both methods, every tang metric
