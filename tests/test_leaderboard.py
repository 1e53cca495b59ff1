"""``demmi leaderboard``: one table across methods; refuses to mix datasets, profiles, references, splits."""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from demmi_rf.errors import DemmiError
from demmi_rf.evaluation import check_compatible, read_results, render_leaderboard
from demmi_rf.evaluation.results import decode_float, encode_float

from .conftest import run_cli as run


@pytest.fixture(scope="module")
def results_files(tmp_path_factory, samples_dir) -> dict[str, Path]:
    """Results of three baselines (paper profile) on a one-pair (TNO 07, gray) two-setting build."""
    from demmi_rf.builder import build_dataset

    tmp = tmp_path_factory.mktemp("lb")
    src = tmp / "src"
    for rel in ("TNO/ir/07.png", "TNO/vi/07.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples_dir / rel, src / rel)
    ds = tmp / "ds"
    build_dataset(ds, [src / "TNO"], settings=["clean", "noise25"], workers=1)
    out = {}
    for name in ("average", "max", "oracle-clean"):
        fused = tmp / "fused" / name
        run(["baseline", name, "--dataset", str(ds), "--out", str(fused), "--workers", "1", "--no-progress"])
        out[name] = tmp / "results" / f"{name}.json"
        run(["eval", "--dataset", str(ds), "--fused", str(fused), "--method", name, "--profile", "paper",
             "--out", str(out[name]), "--workers", "1", "--no-progress"])
    return out


def mutated(src: Path, dst: Path, change) -> Path:
    data = json.loads(src.read_text())
    change(data)
    dst.write_text(json.dumps(data))
    return dst


def test_markdown_table_has_every_method_with_its_mean_row(results_files):
    files = [str(p) for p in results_files.values()]
    out = run(["leaderboard", *files]).output
    lines = out.splitlines()
    res = read_results(results_files["max"])
    assert lines[0].startswith(f"Dataset {res['dataset']['name']} (content {res['dataset']['content_hash'][:12]})")
    assert "profile paper, reference clean; mean over 2 settings" in lines[0]
    assert lines[2] == "| method | CC ↑ | MSE ↓ | PSNR_paper ↑ | Nabf ↓ | MS_SSIM ↑ |"
    body = [ln for ln in lines[4:] if ln.startswith("| ")]
    assert [ln.split("|")[1].strip() for ln in body] == ["average", "max", "oracle-clean"]
    mean_cc = next(r for r in res["table"] if r["setting"] == "mean")["values"]["CC"]
    assert f"{mean_cc:.4f}" in body[1]


def test_csv_has_full_precision_values_of_a_chosen_row(results_files):
    files = [str(p) for p in results_files.values()]
    text = run(["leaderboard", *files, "--format", "csv", "--setting", "noise25"]).output
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["method"] for r in rows] == ["average", "max", "oracle-clean"]
    for r, path in zip(rows, results_files.values()):
        res = read_results(path)
        want = next(t for t in res["table"] if t["setting"] == "noise25")["values"]
        assert float(r["MSE"]) == decode_float(want["MSE"])  # repr round-trips exactly
        assert r["setting"] == "noise25" and r["content_hash"] == res["dataset"]["content_hash"]


def test_sort_orders_by_the_metric_direction(results_files):
    loaded = [read_results(p) for p in results_files.values()]
    labels = [str(p) for p in results_files.values()]
    by_mse = render_leaderboard(loaded, labels, fmt="csv", sort="MSE")  # lower is better
    mses = [float(r["MSE"]) for r in csv.DictReader(io.StringIO(by_mse))]
    assert mses == sorted(mses)
    by_cc = render_leaderboard(loaded, labels, fmt="csv", sort="CC")  # higher is better
    ccs = [float(r["CC"]) for r in csv.DictReader(io.StringIO(by_cc))]
    assert ccs == sorted(ccs, reverse=True)
    with pytest.raises(DemmiError, match="cannot sort by 'EN'"):
        render_leaderboard(loaded, labels, sort="EN")
    with pytest.raises(DemmiError, match="no row 'haze'"):
        render_leaderboard(loaded, labels, setting="haze")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["dataset"].update(content_hash="0" * 64, name="other"), "different datasets"),
        (lambda d: d.update(profile="tang"), "different metric profile"),
        (lambda d: d.update(reference="degraded"), "different reference"),
        (lambda d: d.update(split="train"), "different split"),
        (lambda d: d.update(settings=["clean"], table=[t for t in d["table"] if t["setting"] != "noise25"]),
         "different settings scored"),
        (lambda d: d.update(method="average"), "method 'average' appears twice"),
    ],
)
def test_refuses_to_mix_incompatible_results(results_files, tmp_path, change, message):
    bad = mutated(results_files["max"], tmp_path / "bad.json", change)
    result = run(["leaderboard", str(results_files["average"]), str(bad)], ok=False)
    assert result.exit_code != 0
    assert message in result.output
    assert "bad.json" in result.output  # the message names the offending file


def test_same_dataset_means_same_content_hash_whatever_the_card_hash(results_files, tmp_path):
    a = read_results(results_files["average"])
    # the same pixels in shards written by another HDF5 build: another card hash, the same content hash
    b = copy.deepcopy(read_results(results_files["max"]))
    b["dataset"]["card_hash"] = "f" * 64
    check_compatible([a, b], ["a.json", "b.json"])
    assert "| max |" in render_leaderboard([a, b], ["a.json", "b.json"])
    # other content with the same card hash (a card cannot vouch for pixels): refused, both hashes named
    c = copy.deepcopy(read_results(results_files["max"]))
    c["dataset"]["content_hash"] = "e" * 64
    with pytest.raises(DemmiError) as err:
        check_compatible([a, c], ["a.json", "c.json"])
    text = str(err.value)
    assert a["dataset"]["content_hash"] in text and "e" * 64 in text
    assert "a.json" in text and "c.json" in text and "different datasets" in text


def test_results_without_content_hash_are_rejected(results_files, tmp_path):
    old = mutated(results_files["max"], tmp_path / "old.json", lambda d: d["dataset"].pop("content_hash"))
    result = run(["leaderboard", str(results_files["average"]), str(old)], ok=False)
    assert result.exit_code != 0 and "lacks dataset.content_hash" in result.output and "old.json" in result.output


def test_incomplete_results_and_mixed_versions_are_flagged(results_files):
    a = read_results(results_files["average"])
    b = copy.deepcopy(read_results(results_files["max"]))
    b["samples"].update(complete=False, scored=1, expected=2)
    b["toolkit_version"] = "9.9.9"
    text = render_leaderboard([a, b], ["a.json", "b.json"])
    assert "| max (1/2 samples) |" in text
    assert "different toolkit versions" in text
    check_compatible([a, b], ["a.json", "b.json"])  # allowed: same dataset, profile, reference, split


def test_non_results_files_are_rejected(tmp_path, results_files):
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({"hello": 1}))
    result = run(["leaderboard", str(junk)], ok=False)
    assert result.exit_code != 0 and "not a DeMMI-RF results file" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert "not a readable JSON" in run(["leaderboard", str(broken)], ok=False).output


def test_leaderboard_out_file(results_files, tmp_path):
    out = tmp_path / "table.md"
    run(["leaderboard", *map(str, results_files.values()), "--out", str(out)])
    assert out.read_text().count("\n| ") == 4  # header + 3 methods


def test_float_encoding_round_trips():
    for v in (0.1, 1e-300, 123.456, float("inf"), float("-inf")):
        assert decode_float(json.loads(json.dumps(encode_float(v)))) == v
    assert encode_float(float("nan")) is None and decode_float(None) != decode_float(None)


# --- hostile results files (issue 12) ------------------------------------------------------------------------------
def _mean_row(d: dict) -> dict:
    return next(t for t in d["table"] if t["setting"] == "mean")


WRONG_TYPES = [
    (lambda d: d.update(method=42), "field method must be a string, not an integer 42"),
    (lambda d: d.update(metrics="CC"), "field metrics must be an array, not a string"),
    (lambda d: d.update(table={"mean": 1}), "field table must be an array, not an object"),
    (lambda d: _mean_row(d)["values"].update(CC="0.9"), "field table[2].values.CC must be a number or null, not a str"),
    (lambda d: _mean_row(d)["values"].update(CC=[0.9]), "values.CC must be a number or null, not an arr"),
    (lambda d: _mean_row(d)["values"].update(CC=True), "field table[2].values.CC must be a number or null, not a bool"),
    (lambda d: _mean_row(d).update(n=2.5), "field table[2].n must be a non-negative integer, not a number 2.5"),
    (lambda d: d["samples"].update(scored="1"), "field samples.scored must be a non-negative integer, not a string"),
    (lambda d: d["samples"].update(complete="yes"), "field samples.complete must be true or false, not a string"),
    (lambda d: d["higher_is_better"].update(CC=1), "field higher_is_better.CC must be true or false, not an integer"),
    (lambda d: d.update(dataset=["x"]), "field dataset must be an object, not an array"),
    (lambda d: d["settings"].__setitem__(0, 7), "field settings[0] must be a string, not an integer 7"),
    (lambda d: d["dataset"].update(content_hash=None), "field dataset.content_hash must be a string, not null"),
    (lambda d: d["dataset"].update(name={"a": 1}), "field dataset.name must be a string, not an object"),
    (lambda d: d.update(format_version=True), "results format version True"),
    (lambda d: d["samples"].update(invalid=["x"]), "field samples.invalid[0] must be an object, not a string"),
    (lambda d: d["samples"].update(scored=3, expected=2), "field samples.scored is 3, more than samples.expected"),
    (lambda d: d["dataset"].update(content_hash="g" * 64), "field dataset.content_hash must be 64 lower-case hex"),
    (lambda d: d["per_sample"].update(file="../../etc/passwd.csv"), "field per_sample.file must be a plain .csv"),
    (lambda d: d.update(nan=[{"sample_id": 1}]), "field nan[0].sample_id must be a string, not an integer 1"),
    (lambda d: d["provenance"].update(python=["3"]), "field provenance.python must be a string, not an array"),
]


@pytest.mark.parametrize(("change", "message"), WRONG_TYPES)
def test_wrong_types_in_a_results_file_are_refused_naming_file_and_field(results_files, tmp_path, change, message):
    bad = mutated(results_files["max"], tmp_path / "bad.json", change)
    result = run(["leaderboard", str(results_files["average"]), str(bad)], ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in result.output and "bad.json" in result.output
    with pytest.raises(DemmiError, match="bad.json"):
        read_results(bad)
    with pytest.raises(DemmiError, match="bad.json"):  # dicts handed to the library are checked the same way
        render_leaderboard([read_results(results_files["average"]), json.loads(bad.read_text())],
                           ["a.json", str(bad)])


@pytest.mark.parametrize(("raw", "message"), [
    ('"inf"', "is 'inf', but CC cannot be infinite"),
    ('"-inf"', "is '-inf', but CC cannot be infinite"),
    ('"nan"', "must be a number or null, not a string 'nan'"),
    ("NaN", "non-finite number NaN"),
    ("Infinity", "non-finite number Infinity"),
    ("1e999", "overflows to infinity"),
])
def test_non_finite_metric_values_are_refused(results_files, tmp_path, raw, message):
    text = results_files["max"].read_text()
    data = json.loads(text)
    cc = _mean_row(data)["values"]["CC"]
    bad = tmp_path / "bad.json"
    bad.write_text(text.replace(f'"CC": {json.dumps(cc)}', f'"CC": {raw}', 1)
                   .replace(f'"CC": {cc!r}', f'"CC": {raw}', 1))
    assert bad.read_text() != text
    result = run(["leaderboard", str(results_files["average"]), str(bad)], ok=False)
    assert result.exit_code != 0 and message in result.output and "bad.json" in result.output


def test_infinite_psnr_is_legitimate(results_files, tmp_path):
    """PSNR is +inf when the fused image equals both sources (docs/metrics.md): such files stay readable."""
    def change(d):
        key = next(k for k in d["metrics"] if k.startswith("PSNR"))
        _mean_row(d)["values"][key] = "inf"
    ok = mutated(results_files["max"], tmp_path / "ok.json", change)
    text = run(["leaderboard", str(results_files["average"]), str(ok)]).output
    assert "| max | " in text and "| inf |" in text


def test_deeply_nested_results_are_refused(results_files, tmp_path):
    data = json.loads(results_files["max"].read_text())
    deep = tmp_path / "deep.json"
    body = json.dumps(data)[:-1] + ', "provenance2": ' + "[" * 100000 + "]" * 100000 + "}"
    deep.write_text(body)
    result = run(["leaderboard", str(results_files["average"]), str(deep)], ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "deep.json" in result.output and "nested" in result.output and "16 levels" in result.output


def test_injected_method_names_are_refused(results_files, tmp_path):
    for method in ("x | 99 |\n| evil", "=HYPERLINK(\"http://e\")", "a\rb"):
        bad = mutated(results_files["max"], tmp_path / "bad.json", lambda d, m=method: d.update(method=m))
        result = run(["leaderboard", str(results_files["average"]), str(bad)], ok=False)
        assert result.exit_code != 0 and "not a valid method name" in result.output and "bad.json" in result.output


def test_text_from_results_files_is_escaped_in_markdown_and_csv(results_files):
    a = read_results(results_files["average"])
    b = read_results(results_files["max"])
    for r in (a, b):
        r["dataset"]["name"] = '=HYPERLINK("http://e")|x\n| evil | 1 |'
        r["split"] = "test|\nrow"
    md = render_leaderboard([a, b], ["a.json", "b.json"])
    lines = md.splitlines()
    assert len(lines) == 6  # caption, blank, header, rule, two methods: nothing injected
    assert '=HYPERLINK("http://e")\\|x \\| evil \\| 1 \\|' in lines[0] and "split test\\| row" in lines[0]
    for r in (a, b):  # metric names are free text too: the CSV header is neutralised as well
        key = r["metrics"][0]
        r["metrics"][0] = "=cmd()"
        r["higher_is_better"]["=cmd()"] = r["higher_is_better"].pop(key)
        for row in r["table"]:
            row["values"]["=cmd()"] = row["values"].pop(key)
    rows = list(csv.reader(io.StringIO(render_leaderboard([a, b], ["a.json", "b.json"], fmt="csv"))))
    assert len(rows) == 3 and "'=cmd()" in rows[0] and "=cmd()" not in rows[0]
    assert rows[1][1] == "'" + a["dataset"]["name"] and rows[1][0] == "average"
    assert float(rows[1][-1]) == decode_float(_mean_row(a)["values"][a["metrics"][-1]])


def test_leaderboard_out_never_replaces_an_input(results_files):
    src = results_files["max"]
    before = src.read_bytes(), src.with_suffix(".csv").read_bytes()
    for out in (src, src.with_suffix(".csv")):
        result = run(["leaderboard", *map(str, results_files.values()), "--out", str(out)], ok=False)
        assert result.exit_code != 0 and "is one of the results files read" in result.output
    assert (src.read_bytes(), src.with_suffix(".csv").read_bytes()) == before
