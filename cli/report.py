"""``demmi report``: write a static web site of results, plots, a visual comparison and the dataset."""

from __future__ import annotations

from pathlib import Path

import click


def _fused(values: tuple[str, ...]) -> list[tuple[str, Path]]:
    out = []
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise click.BadParameter(f"{v!r}: expected NAME=DIR", param_hint="--fused")
        out.append((name, Path(folder)))
    return out


@click.command("report")
@click.option("--results", "results", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A results file of 'demmi eval' (repeatable); more files may follow as arguments, so "
                   "'--results r/*.json' works.")
@click.argument("more_results", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The built dataset the results were scored on: adds the comparison and dataset pages.")
@click.option("--fused", "fused", multiple=True, metavar="NAME=DIR",
              help="A method's fused images for the comparison page (repeatable).")
@click.option("--samples", default=None, metavar="IDS",
              help="Comma-separated sample ids to compare (default: one per setting of the results' split).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created; a previous report there is replaced).")
@click.option("--thumb-width", type=click.IntRange(64, 2048), default=320, show_default=True,
              help="Thumbnail width in pixels.")
@click.option("--full", type=click.Choice(["jpeg", "png", "none"]), default="jpeg", show_default=True,
              help="Full-size images: JPEG quality 90, lossless PNG (larger), or none (smallest site).")
@click.option("--progress/--no-progress", default=None, help="Progress on stderr (default: automatic).")
def report(results: tuple[Path, ...], more_results: tuple[Path, ...], dataset: Path | None,
           fused: tuple[str, ...], samples: str | None, out: Path, thumb_width: int, full: str,
           progress: bool | None) -> None:
    """Write a static site into OUT: leaderboard, plots, visual comparison and dataset pages.

    It opens from file:// (no server, no network). See docs/publishing.md.

    \b
    demmi report --results res/*.json --dataset ds --fused average=fused/avg --fused max=fused/max --out site
    """
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.publish.report import write_report  # noqa: PLC0415

    ids = [s.strip() for s in samples.split(",") if s.strip()] if samples else None
    try:
        summary = write_report(out, [*results, *more_results], dataset=dataset, fused=_fused(fused), samples=ids,
                               thumb_width=thumb_width, full=full, progress="off" if progress is False else "auto")
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"report: {len(summary.pages)} page(s), {len(summary.samples)} sample(s), {summary.images} image(s), "
               f"{summary.bytes / 2**20:.1f} MiB -> {summary.out / 'index.html'}")
