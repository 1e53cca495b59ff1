"""``demmi robustness``: metric-against-severity curves and relative corruption errors (mrCE) from several results
files of a severity recipe (docs/benchmark.md, "Robustness protocol")."""

from __future__ import annotations

from pathlib import Path

import click

from .common import json_option


@click.command("robustness")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reference", "reference_method", default="average", show_default=True, metavar="METHOD",
              help="Method whose degradation normalises the others (ImageNet-C's AlexNet); one of the RESULTS.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file instead of stdout.")
@json_option
def robustness(results: tuple[Path, ...], reference_method: str, fmt: str, out: Path | None, as_json: bool) -> None:
    """Robustness of the methods of RESULTS (demmi eval --out on a severity recipe such as demmi-rf-c): per atom
    the metric against severity level, its relative corruption error rCE (the degradation from clean, summed over
    the levels, as a percentage of the reference method's) and the mean over atoms, mrCE. Refuses results of
    different datasets (content hash), profiles, references, splits or settings, as demmi leaderboard does.
    --json is --format json."""
    from demmi_rf.evaluation import read_results  # noqa: PLC0415
    from demmi_rf.evaluation.robustness import render_robustness  # noqa: PLC0415
    from demmi_rf.evaluation.robustness import robustness as compute  # noqa: PLC0415

    from .common import check_name  # noqa: PLC0415

    loaded = [read_results(p) for p in results]
    labels = [str(p) for p in results]
    methods = [d.get("method") for d in loaded if isinstance(d.get("method"), str)]
    if methods:
        check_name(reference_method, methods, "reference method", "--reference")
    report = compute(loaded, labels, reference=reference_method)
    text = render_robustness(report, "json" if as_json else fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        from demmi_rf.evaluation.leaderboard import check_table_path  # noqa: PLC0415
        from demmi_rf.store.atomic import write_bytes_atomic  # noqa: PLC0415

        write_bytes_atomic(check_table_path(out, results), text.encode("utf-8"))
        click.echo(f"robustness ({len(loaded)} method(s), {len(report.atoms)} atom(s)) -> {out}", err=True)
