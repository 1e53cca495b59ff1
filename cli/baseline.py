"""``demmi baseline``: run a built-in classical fusion baseline over a built dataset's split."""

from __future__ import annotations

from pathlib import Path

import click

from demmi_cli.progress import progress_bar
from demmi_rf.baselines import names as baseline_names


@click.command("baseline")
@click.argument("name", type=click.Choice(baseline_names()))
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A built DeMMI-RF dataset folder (demmi build --out).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the fused images <safe sample id>.png (created; existing images are replaced).")
@click.option("--split", default="test", show_default=True, help="Split to fuse.")
@click.option("--degradations", default=None, metavar="LIST",
              help="Comma-separated settings to fuse (default: every setting of the split).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes. Default: CPU count.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def baseline(name: str, dataset: Path, out: Path, split: str, degradations: str | None, workers: int | None,
             progress: bool | None) -> None:
    """Fuse every sample of a split with the built-in baseline NAME; writes one PNG per sample.

    \b
    average       (Y + IR) / 2 of the degraded inputs (VIS chroma kept)
    max           max(Y, IR) of the degraded inputs
    laplacian     Laplacian-pyramid fusion of the degraded inputs
    cascade       restoration chosen by the sample's atoms (NLM, Richardson-Lucy, dark channel prior,
                  column destriping), then Laplacian-pyramid fusion
    oracle-clean  Laplacian-pyramid fusion of the CLEAN sources: a ceiling, not a method
    See docs/benchmark.md.
    """
    from demmi_rf.baselines.run import default_workers, run_baseline  # noqa: PLC0415
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.store import open_dataset  # noqa: PLC0415

    settings = [s.strip() for s in degradations.split(",") if s.strip()] if degradations else None
    try:
        with open_dataset(dataset) as ds:
            total = len(ds.samples(split=split, settings=settings))
        with progress_bar(total, f"{name}", progress) as advance:
            run = run_baseline(name, dataset, out, split=split, settings=settings,
                               workers=workers or default_workers(), progress=advance)
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}: {len(run.written)} fused image(s) -> {run.out}")
