"""``demmi export``: copy a built dataset into a format other loaders read."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["png", "webdataset", "hf"]), required=True,
              help="png: vi/ir folders per split and setting; webdataset: tar shards for streaming; "
                   "hf: Parquet folder for Hugging Face datasets.load_dataset.")
@click.option("--split", default=None, help="Export only this split (default: all).")
@click.option("--degradations", default=None, metavar="LIST",
              help="Comma-separated settings to export (default: every setting).")
@click.option("--shard-samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Samples per tar (webdataset) or Parquet file (hf).")
@click.option("--progress/--no-progress", default=None, help="Progress on stderr (default: automatic).")
def export(root: Path, out: Path, fmt: str, split: str | None, degradations: str | None, shard_samples: int,
           progress: bool | None) -> None:
    """Export the dataset in ROOT to the new folder OUT (see docs/publishing.md for when to use which)."""
    from demmi_rf.builder.summary import human_bytes  # noqa: PLC0415
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.publish.exports import export_dataset  # noqa: PLC0415

    settings = [s.strip() for s in degradations.split(",") if s.strip()] if degradations else None
    try:
        report = export_dataset(root, out, fmt, split=split, settings=settings, shard_samples=shard_samples,
                                progress="off" if progress is False else "auto")
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{fmt}: {report.samples} sample(s), {report.files} file(s), {human_bytes(report.bytes)} -> "
               f"{report.out}")
