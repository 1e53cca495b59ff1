"""The human dataset card ``README.md`` of a built dataset, in the Hugging Face / TFDS style.

A YAML front matter block (``pretty_name``, ``license: other`` with the sources' licence notes, ``tags``,
``task_categories``, ``size_categories``) that the Hugging Face Hub reads, then sections: what the dataset is,
how it was made (recipe, seed, settings, degradation parameter ranges), counts per split and setting, sources
with their licences and citations, files, identity (content hash, card sha256) and how to verify it, and how to
load it. Everything comes from the card (``dataset.json``); values that come from the card are escaped for
Markdown tables, so a crafted card cannot break the document's structure. No timestamps: the same card gives
the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from .croissant import CROISSANT

README = "README.md"


def _cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes and backticks escaped, HTML brackets neutralised."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("<", "&lt;").replace(">", "&gt;")


def _line(value: Any) -> str:
    """Running text from the card: one line, HTML brackets neutralised."""
    return " ".join(str(value).split()).replace("<", "&lt;").replace(">", "&gt;")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _table(rows: list[list[str]]) -> list[str]:
    head, body = rows[0], rows[1:]
    out = ["| " + " | ".join(_cell(c) for c in head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in body]
    return out


def readme_text(card: dict[str, Any], card_sha256: str) -> str:
    """The README card (Markdown with YAML front matter) of a dataset whose ``dataset.json`` is ``card`` with
    sha256 ``card_sha256``."""
    # lazy: demmi_rf.builder imports this package (the build writes the cards), so no import cycle at load time
    from ..builder.summary import counts_table, human_bytes  # noqa: PLC0415

    recipe = card.get("recipe", {})
    counts = card.get("counts", {})
    datasets = card.get("sources", {}).get("datasets", [])
    settings = list(recipe.get("settings", []))
    name = str(card.get("name", "dataset"))
    licences = _line("; ".join(f"{d.get('source')}: {d.get('licence')}" for d in datasets))
    front = [
        "---",
        f"pretty_name: {json.dumps('DeMMI-RF ' + name)}",
        "license: other",
        f"license_name: {json.dumps('per-source (see Sources)')}",
        f"license_details: {json.dumps(licences)}",
        "task_categories:",
        "- image-to-image",
        "tags:",
        "- image-fusion",
        "- infrared",
        "- visible",
        "- degradation",
        "- benchmark",
        "size_categories:",
        f"- {_size_category(int(counts.get('samples', 0)))}",
        "---",
        "",
    ]
    body = [
        f"# DeMMI-RF dataset `{_cell(name)}`",
        "",
        "A degraded multi-modal image fusion benchmark: registered infrared (IR) and visible (VIS) image pairs, "
        "each under a set of synthetic degradation settings (VIS Gaussian noise, VIS haze, VIS defocus blur, IR "
        "column stripe noise and their mixtures), with the clean pair kept as ground truth. Built by the "
        f"DeMMI-RF toolkit {_line(card.get('toolkit_version', '?'))} (benchmark spec v"
        f"{_line(card.get('spec_version', '?'))}, defined by the TG-ECNet paper, ICML 2025).",
        "",
        "## How it was made",
        "",
        f"- recipe `{_cell(recipe.get('name', name))}`, sha256 `{_cell(card.get('recipe_hash', ''))}`"
        + (f" (derived from `{_cell(recipe['base'].get('name'))}`)" if isinstance(recipe.get("base"), dict) else ""),
        f"- seed {_line(recipe.get('seed'))}; test fraction {_line(recipe.get('test_fraction'))}; "
        f"{_line(recipe.get('pairs_per_shard'))} pairs per shard",
        f"- {len(settings)} settings: " + ", ".join(f"`{_cell(s)}`" for s in settings),
        "- every random draw comes from one generator per (seed, pair id, setting, modality), so the same "
        "recipe and seed give byte-identical pixels on any machine",
        "",
        "Degradation parameters (a number is fixed, `[a, b]` uniform, a list of integers a uniform choice):",
        "",
        "| atom | parameters |",
        "|---|---|",
    ]
    for atom, params in sorted((recipe.get("degradations") or {}).items()):
        body.append(f"| {_cell(atom)} | {_cell(json.dumps(params, sort_keys=True))} |")
    body += ["", "## Counts", ""]
    try:
        body += _table(counts_table(card))
    except (KeyError, TypeError):
        body.append(f"{_line(counts.get('samples', '?'))} samples of {_line(counts.get('pairs', '?'))} pairs")
    body += ["", "## Sources, licences and citations", "",
             "Derived data inherits the terms of its sources: check them before redistributing.", "",
             "| source | dataset | pairs | licence | citation |", "|---|---|---:|---|---|"]
    for d in datasets:
        body.append(f"| {_cell(d.get('source'))} | {_cell(d.get('dataset'))} | {_cell(d.get('pairs'))} | "
                    f"{_cell(d.get('licence'))} | {_cell(d.get('citation'))} |")
    if not datasets:
        body.append("| (none recorded) | | | | |")
    body += ["", "Cite the TG-ECNet paper that defined the benchmark and every source dataset above.", ""]
    skipped = card.get("skipped") or []
    if skipped:
        body += [f"{len(skipped)} pair(s) or file(s) were not built; `dataset.json` lists each with its reason.", ""]
    body += [
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        "| `dataset.json` | the card: recipe, counts, sources, sha256 of every shard and of the manifest |",
        f"| `manifest.csv` | one row per sample ({_line(card.get('manifest', {}).get('rows', '?'))} rows): ids, "
        "split, setting, sizes, HDF5 paths, array sha256s, drawn parameters |",
        f"| `shards/*.h5` | {len(card.get('shards', []))} HDF5 shard(s), "
        f"{human_bytes(float(card.get('bytes', 0) or 0))} with the manifest: clean pairs once, degraded "
        "arrays per sample |",
        f"| `{CROISSANT}` | Croissant 1.1 metadata (MLCommons) describing these files, the manifest's fields "
        "and the arrays |",
        "| `README.md` | this card |",
        "",
        "## Identity and verification",
        "",
        f"- content hash `{_cell(card.get('content_hash', '(not recorded)'))}`: sha256 of the recipe hash and "
        "every sample's id, split, size and array sha256s; independent of HDF5 bytes, compression and build "
        "machine. Results files of `demmi eval` carry it, and `demmi leaderboard` refuses to mix two.",
        f"- card sha256 `{_cell(card_sha256)}` (of `dataset.json`'s bytes; depends on the HDF5 build too)",
        "",
        "```bash",
        "pip install demmi-rf",
        "demmi verify .          # every shard and every array against its sha256",
        "demmi info .            # counts, recipe, sources",
        "```",
        "",
        "## Loading",
        "",
        "```python",
        "from demmi_rf.store import open_dataset",
        "with open_dataset('.') as ds:",
        "    rows = ds.samples(split='test')",
        "    arrays = ds.read(rows.sample_id[0])   # vis, ir, vis_clean, ir_clean (uint8)",
        "```",
        "",
        "`demmi export --format png|webdataset|hf` writes copies for other loaders (PNG folders, WebDataset "
        "shards, a Parquet folder for Hugging Face `datasets`).",
        "",
    ]
    return "\n".join(front + body)
