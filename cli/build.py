"""``demmi build``: build a DeMMI-RF dataset (HDF5 shards + manifest + card) from IR/VIS sources."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from demmi_rf.builder import EXECUTORS
from demmi_rf.recipe import DEFAULT_RECIPE
from demmi_rf.sources import IR16_CHOICES
from demmi_rf.sources.images import DEFAULT_MAX_PIXELS

from .common import (
    EXIT_INTERRUPTED,
    NameChoice,
    check_recipe_name,
    degradations_option,
    echo_json,
    json_option,
    make_progress,
    progress_option,
)


class _BuildProgress:
    """The build driver's progress callback on the shared reporter: samples done, shards in the postfix."""

    def __init__(self, flag: bool | None):
        self.flag = flag
        self.bar: Any = None
        self.shards = 0
        self.done = 0
        self.settings = 1

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "plan":
            self.shards = data["shards"]
            self.settings = data["settings"]
            self.bar = make_progress(data["samples"], "build", self.flag, unit="samples")
            self.bar.set_postfix(f"shard 0/{self.shards}")
        elif kind == "shard" and self.bar is not None:
            self.done += 1
            self.bar.set_postfix(f"shard {self.done}/{self.shards}")
            self.bar.advance(len(data["pairs"]) * self.settings)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command("build")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder holding IR/VIS pairs (repeatable). Default: the embedded sample pairs.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output dataset folder (created; re-running the same command resumes).")
@click.option("--recipe", default=DEFAULT_RECIPE, show_default=True, callback=check_recipe_name,
              help="Shipped recipe name or a .toml/.json recipe file.")
@degradations_option("Comma-separated settings of the recipe to build, e.g. 'haze,stripe,noise50+haze'.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Override the recipe's seed.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (local) or LocalCluster workers (dask). Default: CPU count.")
@click.option("--executor", type=NameChoice(EXECUTORS, "executor"), default="local", show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="dask scheduler address (tcp://host:8786); without it --executor dask starts a LocalCluster.")
@click.option("--ir16", type=NameChoice(IR16_CHOICES, "16-bit IR conversion"), default="error", show_default=True,
              help="What to do with 16-bit IR images (see docs/sources.md).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Largest image (height x width) decoded; a pair with a bigger header is skipped (docs/sources.md).")
@click.option("--strict", is_flag=True, default=False,
              help="Fail (exit 1, no manifest or card written) when a pair is skipped or a split comes out empty.")
@click.option("--virtual", is_flag=True, default=False,
              help="Store the clean pairs, manifest and card but not the degraded arrays: readers synthesise and "
                   "check them on read (same content hash; docs/dataset-layout.md, 'Virtual datasets').")
@progress_option
@json_option
def build(sources: tuple[Path, ...], out: Path, recipe: str, degradations: list[str] | None, seed: int | None,
          workers: int | None, executor: str, scheduler: str | None, ir16: str, max_pixels: int, strict: bool,
          virtual: bool, progress: bool | None, as_json: bool) -> None:
    """Build a DeMMI-RF dataset from SOURCES into OUT (see docs/dataset-layout.md).

    With --json, stdout holds one JSON summary (output folder, content and card hashes, shards built and
    reused, counts, skipped pairs); see docs/cli.md."""
    from demmi_rf.builder import build_dataset  # noqa: PLC0415
    from demmi_rf.builder.summary import format_summary  # noqa: PLC0415
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.recipe import load_recipe, narrow_settings  # noqa: PLC0415

    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    if degradations is not None:  # a setting the recipe does not hold is a command-line mistake (exit 2)
        base = load_recipe(recipe)  # a malformed recipe file is a DemmiError (exit 1)
        try:
            narrow_settings(base, degradations)
        except DemmiError as exc:
            raise click.BadParameter(str(exc), param_hint="--degradations") from None
    bar = _BuildProgress(progress)
    try:
        report = build_dataset(out, sources, recipe=recipe, settings=degradations, seed=seed, workers=workers,
                               executor=executor, scheduler=scheduler, ir16=ir16, progress=bar, strict=strict,
                               max_pixels=max_pixels, virtual=virtual)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: finished shards are kept; re-run the same command to resume into {out}",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        bar.close()
    if as_json:
        echo_json(build_summary(report))
    else:
        click.echo(format_summary(report))


def build_summary(report: Any) -> dict[str, Any]:
    """The ``demmi build --json`` document (docs/cli.md) of a :class:`~demmi_rf.builder.BuildReport`."""
    card = report.card
    return {
        "command": "build",
        "out": str(report.out),
        "name": card["name"],
        "content_hash": card.get("content_hash"),
        "card_hash": report.card_hash,
        "recipe": card["recipe"]["name"],
        "recipe_hash": card["recipe_hash"],
        "seed": card["recipe"]["seed"],
        "settings": list(card["recipe"]["settings"]),
        "shards": {"built": list(report.built), "reused": list(report.reused)},
        "counts": card["counts"],
        "bytes": card.get("bytes"),
        "skipped": list(report.skipped),
        "warnings": list(report.warnings),
        "seconds": report.seconds,
        "executor": report.executor,
        "workers": report.workers,
    }
