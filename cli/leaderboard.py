"""``demmi leaderboard``: one table across methods from several results files."""

from __future__ import annotations

from pathlib import Path

import click

from .common import check_name, json_option, json_text


@click.command("leaderboard")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
@click.option("--setting", default="mean", show_default=True,
              help="Table row to compare: 'mean' (over settings) or one setting name.")
@click.option("--sort", default=None, metavar="METRIC", help="Sort methods by this metric (best first).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table (or the --json document) to this file instead of stdout.")
@json_option
def leaderboard(results: tuple[Path, ...], fmt: str, setting: str, sort: str | None, out: Path | None,
                as_json: bool) -> None:
    """Render one table from RESULTS files (demmi eval --out). Refuses to mix results of different datasets
    (their dataset *content hash*: the identity of pixels, samples, splits and recipe; the card hash may
    differ), metric profiles, references, splits or settings. With --json, one JSON document (the common
    identity and one record per method, in the table's order; docs/cli.md) instead of the table."""
    from demmi_rf.evaluation import read_results, render_leaderboard  # noqa: PLC0415
    from demmi_rf.evaluation.leaderboard import leaderboard_records  # noqa: PLC0415

    loaded = [read_results(p) for p in results]
    labels = [str(p) for p in results]
    rows = [row["setting"] for row in loaded[0].get("table", []) if isinstance(row, dict) and "setting" in row]
    if rows:
        check_name(setting, rows, "table row", "--setting")
    if sort is not None and isinstance(loaded[0].get("metrics"), list):
        check_name(sort, loaded[0]["metrics"], "metric", "--sort")
    if as_json:
        first = loaded[0]
        records = leaderboard_records(loaded, labels, setting=setting, sort=sort)
        document = {"command": "leaderboard", "setting": setting, "sort": sort,
                    "dataset": first["dataset"], "profile": first["profile"], "reference": first["reference"],
                    "split": first["split"], "settings": first["settings"], "metrics": first["metrics"],
                    "higher_is_better": first.get("higher_is_better", {}), "methods": records}
        text = json_text(document)
    else:
        text = render_leaderboard(loaded, labels, fmt=fmt, setting=setting, sort=sort)
    if out is None:
        click.echo(text, nl=False)
    else:
        from demmi_rf.evaluation.leaderboard import check_table_path  # noqa: PLC0415
        from demmi_rf.store.atomic import write_bytes_atomic  # noqa: PLC0415

        write_bytes_atomic(check_table_path(out, results), text.encode("utf-8"))
        click.echo(f"leaderboard ({len(loaded)} method(s)) -> {out}", err=as_json)
