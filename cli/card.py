"""``demmi card``: (re)write a built dataset's README card and Croissant metadata."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("card")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
def card(root: Path) -> None:
    """Write ROOT/README.md (Hugging Face style dataset card) and ROOT/croissant.json (MLCommons Croissant
    1.1) from the dataset's card and manifest. 'demmi build' writes both; this regenerates them after a
    toolkit upgrade or an edit. See docs/publishing.md."""
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.publish import regenerate_cards  # noqa: PLC0415

    try:
        readme, croissant = regenerate_cards(root)
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {readme}\nwrote {croissant}")
