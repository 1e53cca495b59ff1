"""``demmi preview``: a labelled contact sheet of one pair under degradation settings (PNG)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--setting", "settings", multiple=True,
              help="A setting to show (repeatable, or comma-separated). Default: every setting of the recipe.")
@click.option("--pair", "pair_id", help="Pair id <source>/<stem> (default: the first pair found).")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, path_type=str),
              help="Folder(s) to look for the pair in (default: the embedded sample pairs).")
@click.option("--seed", type=int, default=None, help="Seed (default: the recipe's).")
@click.option("--recipe", default="demmi-rf-v1", show_default=True, help="Recipe name or file.")
@click.option("--thumb-width", type=int, default=240, show_default=True, help="Width of each thumbnail (px).")
@click.option("--columns", type=int, default=4, show_default=True, help="Settings per row.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")
def preview(settings, pair_id, sources, seed, recipe, thumb_width, columns, out_path) -> None:
    """Draw a contact sheet of one IR/VIS pair under each requested setting (VIS and IR per setting)."""
    import cv2

    from demmi_rf.degradations.sheet import contact_sheet
    from demmi_rf.errors import DemmiError
    from demmi_rf.recipe import load_recipe
    from demmi_rf.samples import sample_root
    from demmi_rf.settings import parse_setting
    from demmi_rf.sources import discover, read_pair

    try:
        rec = load_recipe(recipe)
    except DemmiError as exc:
        raise click.BadParameter(str(exc), param_hint="--recipe") from None
    wanted = [s.strip() for item in settings for s in item.split(",") if s.strip()] or list(rec.settings)
    try:
        wanted = [parse_setting(s).name for s in wanted]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--setting") from None
    roots = list(sources) or [str(sample_root())]
    found = discover(*roots, check="none").pairs
    if not found:
        raise click.ClickException(f"no IR/VIS pairs found under {', '.join(roots)}")
    if pair_id is None:
        record = found[0]
    else:
        matches = [r for r in found if r.pair_id == pair_id]
        if not matches:
            listed = ", ".join(r.pair_id for r in found[:12]) + (" ..." if len(found) > 12 else "")
            raise click.BadParameter(f"no pair {pair_id!r} under {', '.join(roots)}; found: {listed}",
                                     param_hint="--pair")
        record = matches[0]
    try:
        pair = read_pair(record)
        seed = rec.seed if seed is None else seed
        sheet = contact_sheet(
            pair.vis, pair.ir, wanted, seed, pair_id=record.pair_id, ranges=rec.degradations,
            thumb_width=thumb_width, columns=columns,
            title=f"{record.pair_id}  |  recipe {rec.name}  |  seed {seed}  |  orange frame = degraded modality",
        )
    except (DemmiError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise click.ClickException("PNG encoding failed")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(png.tobytes())
    click.echo(f"wrote {out_path} ({sheet.shape[1]}x{sheet.shape[0]}, {len(wanted)} settings of {record.pair_id})")
