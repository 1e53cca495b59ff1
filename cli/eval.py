"""``demmi eval``: score a folder of fused images against a built dataset's references."""

from __future__ import annotations

from pathlib import Path

import click

from demmi_cli.progress import progress_bar


@click.command("eval")
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A built DeMMI-RF dataset folder.")
@click.option("--fused", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of fused images, one <safe sample id>.png per sample ('/' written '__').")
@click.option("--method", required=True, help="Method name stamped into the results.")
@click.option("--split", default="test", show_default=True, help="Split to score.")
@click.option("--profile", default="tang", show_default=True,
              help="Metric profile: tang, vifb, vifb_rgb, cddfuse, paper, std (docs/metrics.md).")
@click.option("--reference", type=click.Choice(["clean", "degraded"]), default="clean", show_default=True,
              help="Score against the clean sources (the benchmark) or the degraded inputs (fidelity to inputs).")
@click.option("--degradations", default=None, metavar="LIST",
              help="Comma-separated settings to score (default: every setting of the split).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results.json"),
              show_default=True, help="Results file (JSON); the per-sample rows go to the same name with .csv.")
@click.option("--allow-missing", is_flag=True, help="Score the images present when some are missing or unusable.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes. Default: CPU count.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def eval_cmd(dataset: Path, fused: Path, method: str, split: str, profile: str, reference: str,
             degradations: str | None, out: Path, allow_missing: bool, workers: int | None,
             progress: bool | None) -> None:
    """Score the fused images of every sample of a split and print the per-setting table.

    Writes OUT (results JSON stamped with the method, profile, reference, dataset card hash and toolkit
    version) and OUT with .csv (one row per sample). Missing or unusable fused images make it refuse unless
    --allow-missing; extra files are reported and ignored.
    """
    import contextlib  # noqa: PLC0415

    from demmi_rf.baselines.run import default_workers  # noqa: PLC0415
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.evaluation import (  # noqa: PLC0415
        FusedScan,
        evaluate_fused,
        problems_message,
        render_text,
        write_results,
    )

    settings = [s.strip() for s in degradations.split(",") if s.strip()] if degradations else None
    stack = contextlib.ExitStack()
    bar: dict = {}

    def on_scan(scan) -> None:  # size the bar once the folder is sorted
        if scan.extra:
            click.echo(problems_message(FusedScan(scan.folder, extra=scan.extra)), err=True)
        if not scan.complete and allow_missing:
            click.echo(problems_message(scan, extra=False) + "\n--allow-missing: scoring the images present",
                       err=True)
        bar["advance"] = stack.enter_context(progress_bar(len(scan.found), f"eval {method}", progress))

    try:
        with stack:
            ev = evaluate_fused(dataset, fused, method, split=split, profile=profile, reference=reference,
                                settings=settings, allow_missing=allow_missing,
                                workers=workers or default_workers(), per_sample_file=out.with_suffix(".csv").name,
                                progress=lambda n=1: bar["advance"](n), on_scan=on_scan)
        json_path, csv_path = write_results(out, ev.results, ev.csv)
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    r = ev.results
    click.echo(f"{method} on {r['dataset']['name']} (content {r['dataset']['content_hash'][:12]}), split {split}, "
               f"profile {r['profile']}, reference {reference}: {r['samples']['scored']}/{r['samples']['expected']} "
               "samples scored")
    click.echo(render_text(ev.table, r["metrics"], r["higher_is_better"]))
    if r["nan"]:
        click.echo(f"{len(r['nan'])} undefined (NaN) value(s), left out of the means; reasons in {csv_path}",
                   err=True)
    click.echo(f"results -> {json_path}; per-sample rows -> {csv_path}")
