"""``demmi report``: a static web site of a benchmark's results, plots, images and dataset.

One folder that opens from ``file://`` or any static host, with no server and no network at view time (one
CSS and one JS file of our own, shipped in ``demmi_rf/publish/static``; charts are inline SVG)::

    OUT/index.html        leaderboard: per metric profile a sortable table of the mean over settings and one per
                          setting, arrows for the better direction, best value bold; the dataset's content hash;
                          every results file with its sha256, toolkit version and library versions
    OUT/plots.html        per metric a bar chart (settings x methods) and severity curves (metric vs level, e.g.
                          noise sigma 0/15/25/50 on clean, haze, defocus: :func:`.report_data.severity_curves`)
    OUT/compare.html      with --dataset: per chosen sample the degraded VIS and IR, the clean pair and every
                          --fused method's image at the same zoom; zoom 1-8x on a clicked point; keys
                          left/right (or j/k) between samples, +/- zoom, 0 reset
    OUT/dataset.html      with --dataset: counts per split and setting, a contact sheet, the recipe, the sources
                          with licences and citations, the identity hashes
    OUT/img/...           thumbnails (JPEG quality 82, ``thumb_width`` px wide) and full-size images (JPEG
                          quality 90, or lossless PNG with ``full="png"``, or none); an input array shown for
                          several samples (same sha256 in the manifest) is stored once
    OUT/static/           report.css, report.js

The site is written into a hidden temporary folder and swapped in at the end, so ``OUT`` is never half written;
an existing ``OUT`` is replaced only when it holds a previous report (``.demmi-report`` marker).
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DemmiError
from ..evaluation.table import MEAN_ROW, format_value
from .report_data import ProfileGroup, ReportResults, finite_or_none, load_results, severity_curves
from .svg import bar_chart, legend, line_chart

MARKER = ".demmi-report"
FULL_FORMATS = ("jpeg", "png", "none")
_METHOD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_INPUTS = (("vis", "degraded VIS"), ("ir", "degraded IR"), ("vis_clean", "clean VIS"), ("ir_clean", "clean IR"))


class ReportError(DemmiError):
    """The report cannot be written (bad option, results of another dataset, unwritable output)."""


@dataclass(frozen=True)
class ReportSummary:
    """What was written: the folder, its pages, the samples shown, image count and total bytes."""

    out: Path
    pages: tuple[str, ...]
    samples: tuple[str, ...]
    images: int
    bytes: int


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# --- images ------------------------------------------------------------------------------------------------
def encode_image(array: np.ndarray, fmt: str, width: int | None = None, quality: int = 85) -> bytes:
    """JPEG or PNG bytes of a uint8 gray/RGB array, downscaled (Lanczos) to ``width`` when narrower."""
    from PIL import Image  # noqa: PLC0415

    im = Image.fromarray(np.ascontiguousarray(array), mode="RGB" if array.ndim == 3 else "L")
    if width is not None and im.width > width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "jpeg":  # baseline JPEG, 4:2:0 (Pillow's optimize=True fails on some large noisy images)
        im.save(buf, format="JPEG", quality=quality)
    else:
        im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# --- page frame ---------------------------------------------------------------------------------------------
def _page(title: str, active: str, nav: Sequence[tuple[str, str]], body: str, subtitle: str) -> str:
    links = "".join(f'<a href="{_e(href)}"{" aria-current=" + chr(34) + "page" + chr(34) if href == active else ""}>'
                    f"{_e(label)}</a>" for href, label in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><link rel=\"icon\" href=\"data:,\">"
        "<link rel=\"stylesheet\" href=\"static/report.css\"></head><body>"
        f"<header class=\"site\"><h1>DeMMI-RF report</h1><span>{_e(subtitle)}</span><nav>{links}</nav></header>"
        f"<main>{body}</main><script src=\"static/report.js\"></script></body></html>\n"
    )


# --- leaderboard --------------------------------------------------------------------------------------------
def _best(group: ProfileGroup, setting: str, metric: str) -> float | None:
    vals = [finite_or_none(m.table[setting][metric]) for m in group.methods]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return max(vals) if group.higher_is_better[metric] else min(vals)


def leaderboard_table(group: ProfileGroup, setting: str, table_id: str) -> str:
    """A sortable HTML table: methods x metrics of one setting (or ``mean``)."""
    heads = ["<th scope=\"col\"><button type=\"button\">method</button></th>"]
    for m in group.metrics:
        better = "higher" if group.higher_is_better[m] else "lower"
        arrow = "↑" if better == "higher" else "↓"
        heads.append(f"<th scope=\"col\" data-better=\"{better}\" title=\"{better} is better\">"
                     f"<button type=\"button\">{_e(m)} {arrow}</button></th>")
    rows = []
    for method in group.methods:
        label = method.method if method.complete else f"{method.method} ({method.scored}/{method.expected} samples)"
        cells = [f"<th scope=\"row\">{_e(label)}</th>"]
        for m in group.metrics:
            v = method.table[setting][m]
            best = _best(group, setting, m)
            cls = "num best" if best is not None and finite_or_none(v) == best else "num"
            data = repr(float(v)) if finite_or_none(v) is not None else "nan"
            cells.append(f"<td class=\"{cls}\" data-value=\"{data}\">{_e(format_value(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class=\"sortable\" id=\"{_e(table_id)}\"><thead><tr>{''.join(heads)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _provenance(results: ReportResults) -> str:
    rows = []
    for g in results.groups:
        for m in g.methods:
            libs = ", ".join(f"{k} {v}" for k, v in sorted(m.provenance.items()))
            rows.append(f"<tr><td>{_e(m.method)}</td><td>{_e(g.profile)}</td><td><code>{_e(m.file)}</code></td>"
                        f"<td class=\"hash\" title=\"{_e(m.sha256)}\">{_e(m.sha256[:16])}</td>"
                        f"<td>{_e(m.toolkit_version)}</td><td class=\"num\">{m.scored}/{m.expected}</td>"
                        f"<td class=\"meta\">{_e(libs)}</td></tr>")
    return ("<table><thead><tr><th>method</th><th>profile</th><th>results file</th><th>sha256</th>"
            "<th>toolkit</th><th>samples</th><th>libraries</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def leaderboard_page(results: ReportResults) -> str:
    parts = [f"<p class=\"meta\">Dataset <b>{_e(results.dataset_name)}</b>, content hash "
             f"<code class=\"hash\">{_e(results.content_hash)}</code> (every results file below was scored on "
             f"it), recipe <code class=\"hash\">{_e(results.recipe_hash[:16])}</code>. Click a column header to "
             "sort (first click: best first).</p>"]
    for g in results.groups:
        parts.append(f"<h2 id=\"{_e(g.slug)}\">Profile {_e(g.profile)} · reference {_e(g.reference)} · split "
                     f"{_e(g.split)}</h2><h3>Mean over {len(g.settings)} settings</h3>")
        parts.append(leaderboard_table(g, MEAN_ROW, f"lb-{g.slug}-mean"))
        inner = "".join(f"<h3>{_e(s)}</h3>" + leaderboard_table(g, s, f"lb-{g.slug}-{k}")
                        for k, s in enumerate(g.settings))
        parts.append(f"<details><summary>Per setting ({len(g.settings)} tables)</summary>{inner}</details>")
    parts.append("<h2>Provenance</h2>" + _provenance(results))
    return "".join(parts)


# --- plots --------------------------------------------------------------------------------------------------
def plots_page(results: ReportResults) -> str:
    parts = []
    for g in results.groups:
        names = [m.method for m in g.methods]
        parts.append(f"<h2>Profile {_e(g.profile)} · reference {_e(g.reference)} · split {_e(g.split)}</h2>"
                     + legend(names) + "<h3>Per setting</h3><div class=\"charts\">")
        groups = [*g.settings, MEAN_ROW]
        for metric in g.metrics:
            values = [[finite_or_none(m.table[s][metric]) for s in groups] for m in g.methods]
            parts.append(bar_chart(metric, groups, names, values, higher_is_better=g.higher_is_better[metric]))
        parts.append("</div>")
        curves = severity_curves(g.settings)
        if curves:
            parts.append("<h3>Metric against severity</h3>")
        for c in curves:
            parts.append(f"<h3>{_e(c.title)}: " + " → ".join(_e(s) for s in c.settings) + "</h3>"
                         "<div class=\"charts\">")
            for metric in g.metrics:
                values = [[finite_or_none(m.table[s][metric]) for s in c.settings] for m in g.methods]
                parts.append(line_chart(metric, c.levels, names, values, x_label=f"{c.family} level",
                                        higher_is_better=g.higher_is_better[metric]))
            parts.append("</div>")
    return "".join(parts)


# --- dataset and comparison ---------------------------------------------------------------------------------
def choose_samples(ds: Any, split: str, wanted: Sequence[str] | None) -> list[str]:
    """``wanted`` (checked against the dataset), else one sample per setting of ``split``, cycling through the
    split's pairs so that the page shows several scenes."""
    if wanted:
        for sid in wanted:
            ds.row(sid)  # DatasetError for an unknown id
        return list(dict.fromkeys(wanted))
    rows = ds.samples(split=split)
    pairs = sorted(rows["pair_id"].unique())
    chosen = []
    for k, setting in enumerate(ds.settings):
        pair = pairs[k % len(pairs)]
        hit = rows[(rows["pair_id"] == pair) & (rows["setting"] == setting)]
        if len(hit):
            chosen.append(str(hit["sample_id"].iloc[0]))
    return chosen


def dataset_page(ds: Any, sheet_file: str | None) -> str:
    from ..builder.summary import counts_table  # noqa: PLC0415

    card = ds.card
    rows = counts_table(card)
    head = "".join(f"<th>{_e(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i else ''}>{_e(c)}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows[1:])
    sources = "".join(
        f"<tr><td>{_e(d.get('source'))}</td><td>{_e(d.get('dataset'))}</td><td class=\"num\">{_e(d.get('pairs'))}"
        f"</td><td>{_e(d.get('licence'))}</td><td>{_e(d.get('citation'))}</td></tr>"
        for d in card.get("sources", {}).get("datasets", []))
    parts = [
        f"<h2>{_e(card.get('name'))}</h2><p class=\"meta\">spec v{_e(card.get('spec_version'))}, toolkit "
        f"{_e(card.get('toolkit_version'))}; content hash <code class=\"hash\">{_e(ds.content_hash)}</code>; card "
        f"sha256 <code class=\"hash\">{_e(ds.card_hash)}</code>; verify with <code>demmi verify</code>.</p>",
        f"<h2>Counts</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
    ]
    if sheet_file:
        parts.append("<h2>Contact sheet</h2><p class=\"meta\">One pair under every setting (VIS left, IR right; an "
                     "orange frame marks the degraded modality).</p>"
                     f"<div class=\"sheet\"><img src=\"{_e(sheet_file)}\" alt=\"contact sheet\"></div>")
    parts.append("<h2>Sources, licences and citations</h2><table><thead><tr><th>source</th><th>dataset</th>"
                 "<th>pairs</th><th>licence</th><th>citation</th></tr></thead><tbody>" + sources + "</tbody></table>")
    if card.get("skipped"):
        parts.append(f"<p class=\"note\">{len(card['skipped'])} pair(s)/file(s) skipped (see dataset.json).</p>")
    recipe = json.dumps(card.get("recipe", {}), indent=2, sort_keys=True, ensure_ascii=False)
    parts.append(f"<h2>Recipe</h2><pre>{_e(recipe)}</pre>")
    return "".join(parts)


def _figure(caption: str, thumb: str | None, full: str | None, aspect: str, problem: str | None = None) -> str:
    if thumb is None:
        return (f"<figure><div class=\"view missing\" style=\"--aspect:{aspect}\">{_e(problem or 'missing')}</div>"
                f"<figcaption>{_e(caption)}</figcaption></figure>")
    link = f" · <a href=\"{_e(full)}\">full size</a>" if full else ""
    data_full = f" data-full=\"{_e(full)}\"" if full else ""
    return (f"<figure><div class=\"view\" style=\"--aspect:{aspect}\"><img src=\"{_e(thumb)}\"{data_full} "
            f"alt=\"{_e(caption)}\"></div><figcaption>{_e(caption)}{link}</figcaption></figure>")


def compare_page(panels: Sequence[str], options: Sequence[str]) -> str:
    select = "".join(f"<option value=\"{k}\">{_e(o)}</option>" for k, o in enumerate(options))
    controls = (
        "<div class=\"controls\"><button type=\"button\" id=\"prev\" title=\"previous sample (left arrow)\">◀ prev"
        "</button><select id=\"sample-picker\" aria-label=\"sample\">" + select + "</select><button type=\"button\" "
        "id=\"next\" title=\"next sample (right arrow)\">next ▶</button><span id=\"sample-status\"></span>"
        "<label>zoom <select id=\"zoom\"><option value=\"1\">1×</option><option value=\"2\">2×</option>"
        "<option value=\"4\">4×</option><option value=\"8\">8×</option></select></label><span class=\"meta\">"
        "Click an image to zoom every image on that point; keys <span class=\"kbd\">←</span> "
        "<span class=\"kbd\">→</span> (or j/k) samples, <span class=\"kbd\">+</span> <span class=\"kbd\">-</span> "
        "zoom, <span class=\"kbd\">0</span> reset.</span></div>")
    return controls + "".join(panels)


class _Writer:
    """Writes files under the staging folder and counts them."""

    def __init__(self, root: Path):
        self.root = root
        self.images = 0

    def write(self, rel: str, data: bytes | str) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
            self.images += rel.startswith("img/")
        return rel


def _image_pair(w: _Writer, rel: str, array: np.ndarray, thumb_width: int, full: str) -> tuple[str, str | None]:
    thumb = f"{rel}.t.jpg"
    if not (w.root / thumb).is_file():
        w.write(thumb, encode_image(array, "jpeg", thumb_width, quality=82))
    if full == "none":
        return thumb, None
    ext = "png" if full == "png" else "jpg"
    if (w.root / f"{rel}.{ext}").is_file():  # an input shared by several samples (same sha256): written once
        return thumb, f"{rel}.{ext}"
    return thumb, w.write(f"{rel}.{ext}", encode_image(array, full, None, quality=90))


def _sample_panel(w: _Writer, k: int, ds: Any, sid: str, fused: Sequence[tuple[str, Path]], thumb_width: int,
                  full: str, advance) -> str:
    from ..evaluation.fused import fused_path, read_fused  # noqa: PLC0415

    row = ds.row(sid)
    height, width = int(row["height"]), int(row["width"])
    aspect = f"{width} / {height}"
    arrays = ds.read(sid)
    figures = []
    for name, caption in _INPUTS:
        # inputs are named by their sha256 (manifest), so a clean pair shown for several settings is stored once
        sha = str(row["sha256_" + name])[:20]
        rel = f"img/in/{sha}" if re.fullmatch(r"[0-9a-f]{20}", sha) else f"img/{k:03d}/{name}"
        thumb, big = _image_pair(w, rel, arrays[name], thumb_width, full)
        figures.append(_figure(caption, thumb, big, aspect))
        advance(1)
    for j, (method, folder) in enumerate(fused):
        path = fused_path(folder, sid)
        problem = None
        if not path.is_file():
            problem = f"no fused image {path.name}"
        else:
            try:
                image = read_fused(path)
                if image.shape[:2] != (height, width):
                    problem = f"{path.name} is {image.shape[0]}x{image.shape[1]}, the sample {height}x{width}"
            except DemmiError as exc:
                problem = str(exc)
        if problem:
            figures.append(_figure(method, None, None, aspect, problem))
        else:
            thumb, big = _image_pair(w, f"img/{k:03d}/m{j:02d}", image, thumb_width, full)
            figures.append(_figure(method, thumb, big, aspect))
        advance(1)
    params = row["params"] if isinstance(row["params"], str) else "{}"
    return (f"<section class=\"sample\" id=\"s-{k}\"><h2>{_e(sid)}</h2><p class=\"meta\">split {_e(row['split'])}, "
            f"setting <b>{_e(row['setting'])}</b>, {height}×{width}; parameters <code>{_e(params)}</code></p>"
            f"<div class=\"grid-images\">{''.join(figures)}</div></section>")


def _contact_sheet(ds: Any, split: str) -> np.ndarray:
    from ..degradations.sheet import contact_sheet  # noqa: PLC0415

    rows = ds.samples(split=split if split in ds.splits else None)
    first = rows.iloc[0]
    clean = ds.read(str(first["sample_id"]), arrays=("vis_clean", "ir_clean"))
    recipe = ds.card["recipe"]
    return contact_sheet(clean["vis_clean"], clean["ir_clean"], list(ds.settings), int(recipe["seed"]),
                         pair_id=str(first["pair_id"]), ranges=recipe.get("degradations"), thumb_width=160)


# --- the whole site -----------------------------------------------------------------------------------------
def _check_fused(fused: Sequence[tuple[str, str | Path]]) -> list[tuple[str, Path]]:
    out, seen = [], set()
    for name, folder in fused:
        if not _METHOD_NAME.match(name):
            raise ReportError(f"--fused name {name!r}: use letters, digits, '_', '.', '+', '-' (at most 64)")
        if name in seen:
            raise ReportError(f"--fused name {name!r} given twice")
        if not Path(folder).is_dir():
            raise ReportError(f"--fused {name}={folder}: not a folder")
        seen.add(name)
        out.append((name, Path(folder)))
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.old")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(out: str | Path, results: Sequence[str | Path], *, dataset: str | Path | None = None,
                 fused: Sequence[tuple[str, str | Path]] = (), samples: Sequence[str] | None = None,
                 thumb_width: int = 320, full: str = "jpeg", progress: str | bool | None = "off") -> ReportSummary:
    """Write the site into ``out`` (module docstring). ``results``: ``demmi eval`` files; ``dataset``: the built
    dataset they were scored on (adds the comparison and dataset pages; its content hash must match);
    ``fused``: ``(method name, folder)`` pairs; ``samples``: sample ids to compare (default one per setting)."""
    from ..progress import progress as make_progress  # noqa: PLC0415
    from ..store import open_dataset  # noqa: PLC0415

    if full not in FULL_FORMATS:
        raise ReportError(f"unknown full-size format {full!r}; choose from: {', '.join(FULL_FORMATS)}")
    if not 64 <= int(thumb_width) <= 2048:
        raise ReportError(f"thumbnail width must be within 64..2048 pixels, not {thumb_width}")
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise ReportError(f"{out} exists and is not a previous report (no {MARKER}); choose a new --out folder")
    data = load_results(results)
    fused_dirs = _check_fused(fused)
    if fused_dirs and dataset is None:
        raise ReportError("--fused needs --dataset (the comparison page shows the dataset's inputs beside them)")
    split = data.groups[0].split
    ds = open_dataset(dataset) if dataset is not None else None
    tmp = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        if ds is not None and ds.content_hash != data.content_hash:
            raise ReportError(f"the results were scored on dataset content {data.content_hash}, but {ds.root} has "
                              f"content {ds.content_hash}; report a dataset with its own results")
        chosen = choose_samples(ds, split, samples) if ds is not None else []
        nav = [("index.html", "Leaderboard"), ("plots.html", "Plots")]
        if ds is not None:
            nav += [("compare.html", "Compare"), ("dataset.html", "Dataset")]
        subtitle = f"{data.dataset_name} · content {data.content_hash[:12]}"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        w = _Writer(tmp)
        total = 2 + (len(chosen) * (len(_INPUTS) + len(fused_dirs)) + 2 if ds is not None else 0)
        with make_progress(total, "report", unit="steps", mode=progress) as bar:
            w.write("index.html", _page("Leaderboard", "index.html", nav, leaderboard_page(data), subtitle))
            bar.advance(1)
            w.write("plots.html", _page("Plots", "plots.html", nav, plots_page(data), subtitle))
            bar.advance(1)
            if ds is not None:
                panels = [_sample_panel(w, k, ds, sid, fused_dirs, int(thumb_width), full, bar.advance)
                          for k, sid in enumerate(chosen)]
                w.write("compare.html", _page("Compare", "compare.html", nav, compare_page(panels, chosen), subtitle))
                bar.advance(1)
                sheet = w.write("img/contact-sheet.jpg", encode_image(_contact_sheet(ds, split), "jpeg", quality=85))
                w.write("dataset.html", _page("Dataset", "dataset.html", nav, dataset_page(ds, sheet), subtitle))
                bar.advance(1)
            static = resources.files("demmi_rf.publish") / "static"
            for name in ("report.css", "report.js"):
                w.write(f"static/{name}", (static / name).read_bytes())
            w.write(MARKER, "demmi report\n")
        _swap_in(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReportError(f"cannot write the report {out}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if ds is not None:
            ds.close()
    files = [p for p in out.rglob("*") if p.is_file()]
    pages = tuple(sorted(p.name for p in out.glob("*.html")))
    return ReportSummary(out=out, pages=pages, samples=tuple(chosen), images=w.images,
                         bytes=sum(p.stat().st_size for p in files))
