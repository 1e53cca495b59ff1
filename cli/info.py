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
    from demmi_rf.errors import DatasetError  # noqa: PLC0415
    from demmi_rf.store import card_hash, read_card  # noqa: PLC0415

    card, raw = read_card(root)
    if as_json:
        click.echo(json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False))
        return
    try:
        text = _card_text(root, card, card_hash(raw))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # a field of the wrong shape
        raise DatasetError(f"{root / 'dataset.json'}: malformed card ({type(exc).__name__}: {exc}); "
                           f"run 'demmi verify {root}'") from exc
    click.echo(text)


def _card_text(root: Path, card: dict, sha: str) -> str:
    """The text ``demmi info`` prints for a card."""
    from demmi_rf.builder.summary import counts_table, human_bytes, render  # noqa: PLC0415

    recipe = card["recipe"]
    lines = [
        f"dataset      {root}",
        f"name         {card['name']} (spec v{card.get('spec_version')}, toolkit {card.get('toolkit_version')})",
        f"content      {card.get('content_hash', '(not recorded: built by an older toolkit)')}",
        f"synthesis    {_synthesis_text(card.get('synthesis'))}",
        f"card sha256  {sha}",
        f"recipe       {recipe['name']} sha256 {card['recipe_hash']}"
        + (f" (derived from {recipe['base']['name']} {recipe['base']['hash'][:12]})" if "base" in recipe else ""),
        f"seed         {recipe['seed']}; test fraction {recipe['test_fraction']}; "
        f"{recipe['pairs_per_shard']} pairs per shard",
        f"settings     {', '.join(recipe['settings'])}",
        f"size         {human_bytes(card.get('bytes', 0))} in {len(card['shards'])} shard(s) + manifest "
        f"({card['manifest']['rows']} rows)",
        f"storage      {describe_storage(card.get('storage'))}",
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
    return "\n".join(lines)


def describe_storage(storage: object) -> str:
    """The card's ``storage`` settings in words, e.g. ``deflate (gzip) level 1 in 64x64-pixel tiles; arrays
    whose estimated deflate ratio exceeds 0.75 (noise-dominated) stored raw`` (docs/dataset-layout.md)."""
    if not isinstance(storage, dict) or not storage:
        return "not recorded"
    comp = storage.get("compression")
    if not comp:
        words = "uncompressed, contiguous"
    else:
        name = {"gzip": "deflate (gzip)", "lzf": "LZF"}.get(str(comp), str(comp))
        words = name + (f" level {storage['compression_opts']}" if storage.get("compression_opts") is not None
                        else "")
        if storage.get("shuffle"):
            words += " with byte shuffle"
        chunk = storage.get("chunk")
        if isinstance(chunk, (list, tuple)) and len(chunk) == 2:
            words += f" in {chunk[0]}x{chunk[1]}-pixel tiles"
        raw = storage.get("raw_above")
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw < 1:
            words += (f"; arrays whose estimated deflate ratio exceeds {raw:g} (noise-dominated) are stored raw "
                      "and contiguous")
    known = {"compression", "compression_opts", "shuffle", "chunk", "raw_above"}
    extra = sorted(str(k) for k in storage if k not in known)
    if extra:
        words += "; other settings: " + ", ".join(f"{k}={storage[k]!r}" for k in extra)
    return words


def _synthesis_text(synthesis: object) -> str:
    """``version 3, normal sampler: compiled`` (or why it is unknown) for a card's ``synthesis`` record."""
    if not isinstance(synthesis, dict):
        return "(not recorded: built before toolkit 0.2.0; compare the content hash with CHANGELOG.md)"
    samplers = synthesis.get("normal_sampler")
    names = ", ".join(str(s) for s in samplers) if isinstance(samplers, list) else "?"
    text = f"version {synthesis.get('version', '?')}, normal sampler: {names}"
    codecs = synthesis.get("codecs")
    if isinstance(codecs, dict) and codecs:
        text += "; codec-dependent atoms: " + ", ".join(
            f"{atom} ({', '.join(map(str, libs)) if isinstance(libs, list) else '?'})" for atom, libs in codecs.items())
    return text
