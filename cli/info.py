"""``demmi info``: print a built dataset's card."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("info")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the card (dataset.json) as JSON.")
def info(root: Path, as_json: bool) -> None:
    """Print the card of the dataset in ROOT: counts per split and setting, sizes, recipe, sources."""
    from demmi_rf.build.summary import counts_table, human_bytes, render  # noqa: PLC0415
    from demmi_rf.errors import DemmiError  # noqa: PLC0415
    from demmi_rf.store import card_hash, read_card  # noqa: PLC0415

    try:
        card, raw = read_card(root)
    except DemmiError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False))
        return
    recipe = card["recipe"]
    lines = [
        f"dataset      {root}",
        f"name         {card['name']} (spec v{card.get('spec_version')}, toolkit {card.get('toolkit_version')})",
        f"content      {card.get('content_hash', '(not recorded: built by an older toolkit)')}",
        f"card sha256  {card_hash(raw)}",
        f"recipe       {recipe['name']} sha256 {card['recipe_hash']}"
        + (f" (derived from {recipe['base']['name']} {recipe['base']['hash'][:12]})" if "base" in recipe else ""),
        f"seed         {recipe['seed']}; test fraction {recipe['test_fraction']}; "
        f"{recipe['pairs_per_shard']} pairs per shard",
        f"settings     {', '.join(recipe['settings'])}",
        f"size         {human_bytes(card.get('bytes', 0))} in {len(card['shards'])} shard(s) + manifest "
        f"({card['manifest']['rows']} rows)",
        f"storage      {json.dumps(card.get('storage', {}), sort_keys=True)}",
        "",
        render(counts_table(card)),
        "",
        "sources      " + ", ".join(card["sources"]["roots"]),
    ]
    for ds in card["sources"]["datasets"]:
        lines.append(f"  {ds['source']}: {ds['pairs']} pairs - {ds['dataset']}; cite: {ds['citation']}; "
                     f"licence: {ds['licence']}")
    if card.get("skipped"):
        lines.append(f"skipped      {len(card['skipped'])}")
        lines += [f"  {s.get('pair_id') or '-'}: {s['message']}" for s in card["skipped"]]
    click.echo("\n".join(lines))
