"""``demmi eval``: score a folder of fused images against a built dataset's references."""

from __future__ import annotations

from pathlib import Path

import click

from demmi_rf.evaluation.score import REFERENCES
from demmi_rf.metrics.profiles import DEFAULT_PROFILE, profiles
from demmi_rf.sources.images import DEFAULT_MAX_PIXELS

from .common import (
    NameChoice,
    check_selection,
    degradations_option,
    echo_json,
    json_option,
    make_progress,
    progress_option,
)


@click.command("eval")
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A built DeMMI-RF dataset folder.")
@click.option("--fused", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of fused images, one <safe sample id>.png per sample ('/' written '__').")
@click.option("--method", required=True, help="Method name stamped into the results.")
@click.option("--split", default="test", show_default=True, help="Split to score.")
@click.option("--profile", type=NameChoice(profiles(), "metric profile"), default=DEFAULT_PROFILE, show_default=True,
              help="Metric profile (docs/metrics.md).")
@click.option("--reference", type=NameChoice(tuple(REFERENCES), "reference"), default="clean", show_default=True,
              help="Score against the clean sources (the benchmark) or the degraded inputs (fidelity to inputs).")
@degradations_option("Comma-separated settings to score (default: every setting of the split).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results.json"),
              show_default=True, help="Results file (JSON); the per-sample rows go to the same name with .csv.")
@click.option("--allow-missing", is_flag=True, help="Score the images present when some are missing or unusable.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes. Default: CPU count.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Largest fused image (height x width) decoded; bigger headers are refused (docs/sources.md).")
@progress_option
@json_option
def eval_cmd(dataset: Path, fused: Path, method: str, split: str, profile: str, reference: str,
             degradations: list[str] | None, out: Path, allow_missing: bool, workers: int | None,
             max_pixels: int, progress: bool | None, as_json: bool) -> None:
    """Score the fused images of every sample of a split and print the per-setting table.

    Writes OUT (results JSON stamped with the method, profile, reference, the dataset's content hash, its
    card hash and the toolkit version) and OUT with .csv (one row per sample). Results are comparable (demmi
    leaderboard) when they share the dataset *content hash*: the identity of the pixels, samples, splits and
    recipe, whatever HDF5 build wrote the shards. Missing or unusable fused images make it refuse unless
    --allow-missing; extra files are reported and ignored. With --json, stdout holds one JSON document (the
    results and the paths written; docs/cli.md).
    """
    import contextlib  # noqa: PLC0415

    from demmi_rf.baselines.run import default_workers  # noqa: PLC0415
    from demmi_rf.evaluation import (  # noqa: PLC0415
        FusedScan,
        evaluate_fused,
        problems_message,
        render_text,
        write_results,
    )

    settings = degradations
    check_selection(dataset, split, settings)
    stack = contextlib.ExitStack()
    bar: dict = {}

    def on_scan(scan) -> None:  # size the bar once the folder is sorted
        if scan.extra:
            click.echo(problems_message(FusedScan(scan.folder, extra=scan.extra)), err=True)
        if not scan.complete and allow_missing:
            click.echo(problems_message(scan, extra=False) + "\n--allow-missing: scoring the images present",
                       err=True)
        bar["advance"] = stack.enter_context(make_progress(len(scan.found), "eval", progress, unit="images")).advance

    with stack:
        ev = evaluate_fused(dataset, fused, method, split=split, profile=profile, reference=reference,
                            settings=settings, allow_missing=allow_missing,
                            workers=workers or default_workers(), per_sample_file=out.with_suffix(".csv").name,
                            progress=lambda n=1: bar["advance"](n), on_scan=on_scan, out=out,
                            max_pixels=max_pixels)
    json_path, csv_path = write_results(out, ev.results, ev.csv, inputs=(dataset, fused))
    r = ev.results
    if as_json:
        echo_json({"command": "eval", "results_file": str(json_path), "per_sample_file": str(csv_path),
                   "results": r})
        return
    click.echo(f"{method} on {r['dataset']['name']} (content {r['dataset']['content_hash'][:12]}), split {split}, "
               f"profile {r['profile']}, reference {reference}: {r['samples']['scored']}/{r['samples']['expected']} "
               "samples scored")
    click.echo(render_text(ev.table, r["metrics"], r["higher_is_better"]))
    if r["nan"]:
        click.echo(f"{len(r['nan'])} undefined (NaN) value(s), left out of the means; reasons in {csv_path}",
                   err=True)
    click.echo(f"results -> {json_path}; per-sample rows -> {csv_path}")
