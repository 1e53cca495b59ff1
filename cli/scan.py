"""``demmi scan``: list the pairs found per source and split, and every problem, one line each."""

from __future__ import annotations

import json
import sys

import click

from demmi_rf.sources import IR16_CHOICES, discover
from demmi_rf.sources.images import DEFAULT_MAX_PIXELS

from .common import NameChoice, make_progress, progress_option


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--ir-dir", type=click.Path(path_type=str), help="An IR folder to pair with --vis-dir by file stem.")
@click.option("--vis-dir", type=click.Path(path_type=str), help="The VIS folder partnering --ir-dir.")
@click.option("--name", help="Source name to use in pair ids (default: detected from the folder names).")
@click.option("--quick", is_flag=True, help="Pair file names only; do not decode the images.")
@click.option("--ir16", type=NameChoice(IR16_CHOICES, "16-bit IR conversion"), default="error", show_default=True,
              help="How to treat 16-bit IR: refuse, keep the high byte, or stretch min-max to 8 bits.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Threads decoding images.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Largest image (height x width) decoded; bigger headers are a 'too-large' problem.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@progress_option
def scan(paths, ir_dir, vis_dir, name, quick, ir16, workers, max_pixels, as_json, progress) -> None:
    """List the registered IR/VIS pairs under PATHS (layouts auto-detected) and every problem found.

    Exits with status 1 when any problem was found (after reporting all of them), 0 otherwise.
    """
    if not paths and ir_dir is None and vis_dir is None:
        raise click.UsageError("give at least one PATH, or --ir-dir and --vis-dir")
    result = discover_with_bar(paths, ir_dir, vis_dir, name, quick, ir16, workers, progress=progress,
                               max_pixels=max_pixels)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print_text(result)
    sys.exit(1 if result.problems else 0)


def discover_with_bar(paths, ir_dir, vis_dir, name, quick, ir16, workers, progress=None,
                      max_pixels=DEFAULT_MAX_PIXELS):
    """Run a quick pass to count pairs, then the checking pass under the progress reporter (stderr)."""
    names_only = discover(*paths, ir_dir=ir_dir, vis_dir=vis_dir, name=name, check="none")
    if quick:
        return names_only
    with make_progress(len(names_only.pairs), "scan", progress, unit="pairs") as bar:
        return discover(*paths, ir_dir=ir_dir, vis_dir=vis_dir, name=name, check="full", ir16=ir16,
                        workers=workers, progress=bar.advance, max_pixels=max_pixels)


def _print_text(result) -> None:
    for g, n in zip(result.groups, result.group_sizes):
        click.echo(f"{g.source:<12} {g.split or '-':<6} {n:>6} pairs  [{g.layout}] {g.ir_dir} + {g.vis_dir.name}")
    sources = sorted({p.source for p in result.pairs})
    click.echo(f"{len(result.pairs)} pairs from {len(sources)} source(s) ({', '.join(sources) or 'none'}); "
               f"{len(result.problems)} problem(s)")
    for p in result.problems:
        click.echo(f"PROBLEM {p.kind}: {p.message}")
