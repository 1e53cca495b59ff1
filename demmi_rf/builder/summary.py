"""The end-of-build summary table: samples per split and setting, bytes, time."""

from __future__ import annotations

from typing import Any


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def counts_table(card: dict[str, Any]) -> list[list[str]]:
    """Rows ``[setting, <split>..., total]`` (header first, totals and bytes last) from a card."""
    by_split = card["counts"]["by_split"]
    splits = sorted(by_split)
    settings = list(card["recipe"]["settings"])
    rows = [["setting", *splits, "total"]]
    for s in settings:
        per = [by_split[sp]["settings"].get(s, 0) for sp in splits]
        rows.append([s, *map(str, per), str(sum(per))])
    per = [by_split[sp]["samples"] for sp in splits]
    rows.append(["samples", *map(str, per), str(sum(per))])
    per = [by_split[sp]["pairs"] for sp in splits]
    rows.append(["pairs", *map(str, per), str(sum(per))])
    sizes = {sp: sum(sh["bytes"] for sh in card["shards"] if sh["split"] == sp) for sp in splits}
    rows.append(["shard bytes", *(human_bytes(sizes[sp]) for sp in splits), human_bytes(sum(sizes.values()))])
    return rows


def render(rows: list[list[str]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_summary(report: Any) -> str:
    """The summary printed by ``demmi build`` from a :class:`~demmi_rf.builder.BuildReport`."""
    card = report.card
    head = (f"{card['name']} (recipe {card['recipe_hash'][:12]}, seed {card['recipe']['seed']}, "
            f"{len(card['recipe']['settings'])} settings) -> {report.out}")
    foot = (f"{len(report.built)} shard(s) built, {len(report.reused)} reused; {human_bytes(card['bytes'])} on disk; "
            f"{report.seconds:.1f} s ({report.executor}, {report.workers} worker(s)); "
            f"content {card.get('content_hash', '?')[:12]}, card {report.card_hash[:12]}")
    lines = [head, "", render(counts_table(card)), "", foot]
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)} pair(s)/file(s):")
        lines += [f"  {s['pair_id'] or '-'}: {s['message']}" for s in report.skipped[:20]]
        if len(report.skipped) > 20:
            lines.append(f"  ... and {len(report.skipped) - 20} more (dataset.json 'skipped')")
    warnings = getattr(report, "warnings", [])
    lines += [f"warning: {w}" for w in warnings]
    if warnings:
        lines.append("(the build succeeded anyway; with --strict these warnings make it fail)")
    return "\n".join(lines)
