"""``demmi build``: build a DeMMI-RF dataset (HDF5 shards + manifest + card) from IR/VIS sources."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from demmi_rf.recipe import DEFAULT_RECIPE


class _Bar:
    """A click progress bar over samples whose label counts shards; created when the plan is known."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None
        self.shards = 0
        self.done = 0
        self.settings = 1

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if kind == "plan":
            self.shards = data["shards"]
            self.settings = data["settings"]
            self.bar = click.progressbar(length=max(1, data["samples"]), label=self._label(),
                                         file=sys.stderr, show_pos=True, show_eta=True)
            self.bar.__enter__()
        elif kind == "shard" and self.bar is not None:
            self.done += 1
            self.bar.label = self._label()
            self.bar.update(len(data["pairs"]) * self.settings)

    def _label(self) -> str:
        return f"shards {self.done}/{self.shards}, samples"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command("build")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder holding IR/VIS pairs (repeatable). Default: the embedded sample pairs.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output dataset folder (created; re-running the same command resumes).")
@click.option("--recipe", default=DEFAULT_RECIPE, show_default=True,
              help="Shipped recipe name or a .toml/.json recipe file.")
@click.option("--degradations", default=None, metavar="LIST",
              help="Comma-separated settings of the recipe to build, e.g. 'haze,stripe,noise50+haze'.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Override the recipe's seed.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (local) or LocalCluster workers (dask). Default: CPU count.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="dask scheduler address (tcp://host:8786); without it --executor dask starts a LocalCluster.")
@click.option("--ir16", type=click.Choice(["error", "shift", "minmax"]), default="error", show_default=True,
              help="What to do with 16-bit IR images (see docs/sources.md).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bar.")
def build(sources: tuple[Path, ...], out: Path, recipe: str, degradations: str | None, seed: int | None,
          workers: int | None, executor: str, scheduler: str | None, ir16: str, progress: bool) -> None:
    """Build a DeMMI-RF dataset from SOURCES into OUT (see docs/dataset-layout.md)."""
    from demmi_rf.build import build_dataset  # noqa: PLC0415
    from demmi_rf.build.summary import format_summary  # noqa: PLC0415
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.recipe import parse_settings_option  # noqa: PLC0415

    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    bar = _Bar(progress)
    try:
        settings = parse_settings_option(degradations) if degradations is not None else None
        report = build_dataset(out, sources, recipe=recipe, settings=settings, seed=seed, workers=workers,
                               executor=executor, scheduler=scheduler, ir16=ir16, progress=bar)
    except DemmiError as exc:
        bar.close()
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: finished shards are kept; re-run the same command to resume into {out}",
                   err=True)
        sys.exit(130)
    bar.close()
    click.echo(format_summary(report))
