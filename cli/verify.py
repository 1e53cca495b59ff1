"""``demmi verify``: check a built dataset's shard and array checksums."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click


@click.command("verify")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--quick", is_flag=True, help="Check shard files' sha256 only (not every array).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def verify(root: Path, quick: bool, progress: bool) -> None:
    """Check every shard's sha256 against the card and (unless --quick) every array's sha256 against the
    manifest. Prints each problem by shard and sample; exits 1 on any problem."""
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.store import read_card, verify_dataset  # noqa: PLC0415

    try:
        total = len(read_card(root)[0]["shards"])
    except DemmiError:
        total = 0
    bar = click.progressbar(length=total, label="shards", file=sys.stderr) if progress and total else None
    with bar if bar is not None else contextlib.nullcontext():
        report = verify_dataset(root, quick=quick, on_shard=(lambda _: bar.update(1)) if bar else None)
    for problem in report.problems:
        click.echo(f"FAIL {problem}", err=True)
    what = f"{report.shards_checked} shard(s)" + ("" if quick else f", {report.arrays_checked} array(s)")
    if report.ok:
        click.echo(f"OK {root}: {what} of {report.samples} sample(s) match their checksums"
                   + (" (quick: shard files only)" if quick else ""))
        return
    click.echo(f"{len(report.problems)} problem(s) in {root} ({what} checked)", err=True)
    sys.exit(1)
