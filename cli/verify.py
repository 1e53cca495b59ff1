"""``demmi verify``: check a built dataset's shard and array checksums."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import echo_json, json_option, make_progress, progress_option


@click.command("verify")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--quick", is_flag=True, help="Check shard files' sha256 only (not every array).")
@progress_option
@json_option
def verify(root: Path, quick: bool, progress: bool | None, as_json: bool) -> None:
    """Check every shard's sha256 against the card and (unless --quick) every array's sha256 against the
    manifest. Prints each problem by shard and sample; exits 1 on any problem.

    With --json, stdout holds one JSON document: ok, counts checked, the recomputed content hash and every
    problem (message, shard, sample, array); the exit status is the same as without it."""
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.store import read_card, verify_dataset  # noqa: PLC0415

    try:
        total = len(read_card(root)[0]["shards"])
    except (DemmiError, KeyError, TypeError):  # verify_dataset reports what is wrong with the card
        total = 0
    with make_progress(total, "verify", progress, unit="shards") as bar:
        report = verify_dataset(root, quick=quick, on_shard=lambda _name: bar.advance())
    what = f"{report.shards_checked} shard(s)" + ("" if quick else f", {report.arrays_checked} array(s)")
    if as_json:
        echo_json({
            "command": "verify", "root": str(root), "ok": report.ok, "quick": quick,
            "shards_checked": report.shards_checked, "arrays_checked": report.arrays_checked,
            "samples": report.samples, "content_hash": report.content_hash,
            "problems": [{"message": p.message, "shard": p.shard, "sample": p.sample, "array": p.array}
                         for p in report.problems],
        })
        if not report.ok:
            sys.exit(1)
        return
    for problem in report.problems:
        click.echo(f"FAIL {problem}", err=True)
    if report.ok:
        click.echo(f"OK {root}: {what} of {report.samples} sample(s) match their checksums"
                   + (" (quick: shard files only)" if quick else ""))
        return
    click.echo(f"{len(report.problems)} problem(s) in {root} ({what} checked)", err=True)
    sys.exit(1)
