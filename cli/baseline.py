"""``demmi baseline``: run a built-in classical fusion baseline over a built dataset's split."""

from __future__ import annotations

from pathlib import Path

import click

from demmi_rf.baselines import names as baseline_names

from .common import NameChoice, check_selection, degradations_option, make_progress, progress_option


@click.command("baseline")
@click.argument("name", type=NameChoice(baseline_names(), "baseline"))
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A built DeMMI-RF dataset folder (demmi build --out).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the fused images <safe sample id>.png (created; existing images are replaced).")
@click.option("--split", default="test", show_default=True, help="Split to fuse.")
@degradations_option("Comma-separated settings to fuse (default: every setting of the split).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes. Default: CPU count.")
@progress_option
def baseline(name: str, dataset: Path, out: Path, split: str, degradations: list[str] | None, workers: int | None,
             progress: bool | None) -> None:
    """Fuse every sample of a split with the built-in baseline NAME; writes one PNG per sample.

    \b
    average       (Y + IR) / 2 of the degraded inputs (VIS chroma kept)
    max           max(Y, IR) of the degraded inputs
    laplacian     Laplacian-pyramid fusion of the degraded inputs
    cascade       restoration chosen by the sample's atoms (NLM, Richardson-Lucy, dark channel prior,
                  column destriping, inverse tone curves, streak opening, deblocking), then
                  Laplacian-pyramid fusion
    oracle-clean  Laplacian-pyramid fusion of the CLEAN sources: a ceiling, not a method
    See docs/benchmark.md.
    """
    from demmi_rf.baselines.run import default_workers, run_baseline  # noqa: PLC0415
    from demmi_rf.store import open_dataset  # noqa: PLC0415

    settings = degradations
    check_selection(dataset, split, settings)
    with open_dataset(dataset) as ds:
        total = len(ds.samples(split=split, settings=settings))
    with make_progress(total, f"baseline {name}", progress, unit="images") as bar:
        run = run_baseline(name, dataset, out, split=split, settings=settings,
                           workers=workers or default_workers(), progress=bar.advance)
    click.echo(f"{name}: {len(run.written)} fused image(s) -> {run.out}")
