"""``demmi preview``: a labelled contact sheet of one pair under degradation settings (PNG)."""

from __future__ import annotations

from pathlib import Path

import click

from demmi_rf.recipe import DEFAULT_RECIPE

from .common import check_recipe_name, parse_degradations

# --out suffix -> image format written (Pillow's name); the suffix decides, case-insensitively
SHEET_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                                 ".webp": "WEBP", ".bmp": "BMP"}


def sheet_format(path: Path) -> str:
    """The image format that ``path``'s suffix names (``x.jpg`` -> ``JPEG``); a usage error for any other."""
    from PIL import Image  # noqa: PLC0415

    Image.init()
    usable = {ext: fmt for ext, fmt in SHEET_FORMATS.items() if fmt in Image.SAVE}
    fmt = usable.get(path.suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"{path}: cannot tell the image format from the suffix {path.suffix or '(none)'!r}; "
                                 f"use one of {', '.join(usable)}", param_hint="--out")
    return fmt


@click.command()
@click.option("--degradations", "degradations", multiple=True, metavar="LIST",
              help="Comma-separated settings to show (repeatable). Default: every setting of the recipe.")
@click.option("--setting", "old_settings", multiple=True, hidden=True,
              help="Deprecated name of --degradations.")
@click.option("--pair", "pair_id", help="Pair id <source>/<stem> (default: the first pair found).")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, path_type=str),
              help="Folder(s) to look for the pair in (default: the embedded sample pairs).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed (default: the recipe's).")
@click.option("--recipe", default=DEFAULT_RECIPE, show_default=True, callback=check_recipe_name,
              help="Recipe name or file.")
@click.option("--thumb-width", type=click.IntRange(min=16), default=240, show_default=True,
              help="Width of each thumbnail (px).")
@click.option("--columns", type=click.IntRange(min=1), default=4, show_default=True, help="Settings per row.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Image file to write; its suffix picks the format (.png, .jpg, .tif, .webp, .bmp).")
@click.option("--mkdir", is_flag=True, help="Create the folder of --out when it does not exist.")
def preview(degradations, old_settings, pair_id, sources, seed, recipe, thumb_width, columns, out_path,
            mkdir) -> None:
    """Draw a contact sheet of one IR/VIS pair under each requested setting (VIS and IR per setting)."""
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from demmi_rf.degradations.sheet import contact_sheet  # noqa: PLC0415
    from demmi_rf.errors import SourceError, did_you_mean  # noqa: PLC0415
    from demmi_rf.recipe import load_recipe  # noqa: PLC0415
    from demmi_rf.samples import sample_root  # noqa: PLC0415
    from demmi_rf.sources import discover, read_pair  # noqa: PLC0415
    from demmi_rf.store.atomic import write_bytes_atomic  # noqa: PLC0415

    if old_settings:
        click.echo("warning: --setting is deprecated; use --degradations", err=True)
    fmt = sheet_format(out_path)  # checked before any work
    folder = out_path.parent
    if not folder.is_dir():
        if folder.exists() or not mkdir:
            raise click.BadParameter(f"folder {folder} does not exist (create it, or add --mkdir)"
                                     if not folder.exists() else f"{folder} is not a folder", param_hint="--out")
    wanted = parse_degradations([*degradations, *old_settings],
                                param_hint="--setting" if old_settings and not degradations else "--degradations")
    rec = load_recipe(recipe)
    wanted = wanted or list(rec.settings)
    roots = list(sources) or [str(sample_root())]
    found = discover(*roots, check="none").pairs
    if not found:
        raise SourceError(f"no IR/VIS pairs found under {', '.join(roots)}")
    if pair_id is None:
        record = found[0]
    else:
        matches = [r for r in found if r.pair_id == pair_id]
        if not matches:
            ids = [r.pair_id for r in found]
            listed = ", ".join(ids[:12]) + (" ..." if len(ids) > 12 else "")
            raise click.BadParameter(f"no pair {pair_id!r} under {', '.join(roots)}{did_you_mean(pair_id, ids)}; "
                                     f"found: {listed}", param_hint="--pair")
        record = matches[0]
    pair = read_pair(record)
    seed = rec.seed if seed is None else seed
    sheet = contact_sheet(
        pair.vis, pair.ir, wanted, seed, pair_id=record.pair_id, ranges=rec.degradations,
        thumb_width=thumb_width, columns=columns,
        title=f"{record.pair_id}  |  recipe {rec.name}  |  seed {seed}  |  orange frame = degraded modality",
    )
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    if mkdir:
        folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_path, buf.getvalue())
    click.echo(f"wrote {out_path} ({fmt}, {sheet.shape[1]}x{sheet.shape[0]}, {len(wanted)} settings of "
               f"{record.pair_id})")
