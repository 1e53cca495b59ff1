"""``demmi leaderboard``: one table across methods from several results files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("leaderboard")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
@click.option("--setting", default="mean", show_default=True,
              help="Table row to compare: 'mean' (over settings) or one setting name.")
@click.option("--sort", default=None, metavar="METRIC", help="Sort methods by this metric (best first).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table to this file instead of stdout.")
def leaderboard(results: tuple[Path, ...], fmt: str, setting: str, sort: str | None, out: Path | None) -> None:
    """Render one table from RESULTS files (demmi eval --out). Refuses to mix results of different dataset
    cards, metric profiles, references, splits or settings."""
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.evaluation import read_results, render_leaderboard  # noqa: PLC0415

    try:
        loaded = [read_results(p) for p in results]
        text = render_leaderboard(loaded, [str(p) for p in results], fmt=fmt, setting=setting, sort=sort)
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is None:
        click.echo(text, nl=False)
    else:
        from demmi_rf.store.atomic import write_bytes_atomic  # noqa: PLC0415

        write_bytes_atomic(out, text.encode("utf-8"))
        click.echo(f"leaderboard ({len(loaded)} method(s)) -> {out}")
