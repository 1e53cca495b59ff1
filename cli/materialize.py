"""``demmi materialize``: turn a virtual dataset (``demmi build --virtual``) into a materialized one."""

from __future__ import annotations

from pathlib import Path

import click

from .common import echo_json, json_option, make_progress, progress_option


@click.command("materialize")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@progress_option
@json_option
def materialize(src: Path, out: Path, progress: bool | None, as_json: bool) -> None:
    """Write the materialized form of the virtual dataset SRC into the new folder OUT: every degraded array is
    synthesised, checked against the manifest's sha256 and stored. Same manifest and content hash; SRC is left
    as it is (delete it afterwards if you wish). See docs/dataset-layout.md, 'Virtual datasets'."""
    from demmi_rf.store import read_card  # noqa: PLC0415
    from demmi_rf.store.materialize import materialize as run  # noqa: PLC0415

    shards = read_card(src)[0].get("shards", [])
    with make_progress(len(shards) if isinstance(shards, list) else None, "materialize", progress,
                       unit="shards") as bar:
        report = run(src, out, on_shard=lambda _name: bar.advance())
    if as_json:
        echo_json({"command": "materialize", "src": str(src), "out": str(report.out),
                   "content_hash": report.content_hash, "card_hash": report.card_hash, "shards": report.shards,
                   "arrays_synthesised": report.arrays_synthesised, "bytes": report.bytes})
        return
    click.echo(f"OK {report.out}: {report.shards} shard(s), {report.arrays_synthesised} array(s) synthesised and "
               f"stored, {report.bytes / 2**20:.1f} MiB; content hash {report.content_hash}")
