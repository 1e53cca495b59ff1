"""Contact sheets: one pair under several settings, labelled, so that a person can see what a benchmark holds.

Every cell shows the VIS and IR image of one setting side by side, produced by :func:`demmi_rf.degrade` with
the benchmark's seeding (so a sheet shows exactly the pixels a built dataset holds, downscaled), under a
label with the canonical setting name and its drawn parameters. A modality the setting changed is framed
in orange. Drawing uses OpenCV (``cv2.putText``); the result is an RGB uint8 array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..settings import Setting, parse_setting
from .compose import degrade
from .registry import ATOMS

_BG = (24, 24, 24)
_FG = (235, 235, 235)
_DIM = (160, 160, 160)
_MARK = (255, 150, 0)  # orange frame: this modality was degraded
_GAP = 6
_LABEL_H = 34
_TITLE_H = 30


def describe_params(params: Mapping[str, Mapping[str, Any]]) -> str:
    """Short human summary of drawn parameters, e.g. ``haze b=1.34 A=32 | defocus r=4``: each atom's spec
    label (:meth:`~.registry.AtomSpec.describe`; the atom's name when it has none or is not registered)."""
    parts = [ATOMS.get(atom).describe(p) if atom in ATOMS else str(atom) for atom, p in params.items()]
    return " | ".join(parts) if parts else "no degradation"


def _thumb(image: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if width < w else cv2.INTER_LINEAR)
    return np.repeat(small[:, :, None], 3, axis=2) if small.ndim == 2 else small


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float, color, thickness: int = 1) -> None:
    import cv2

    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def contact_sheet(
    vis: np.ndarray,
    ir: np.ndarray,
    settings: Sequence[str | Setting],
    seed: int,
    *,
    pair_id: str,
    ranges: Mapping[str, Mapping[str, Any]] | None = None,
    thumb_width: int = 240,
    columns: int = 4,
    title: str | None = None,
) -> np.ndarray:
    """An RGB uint8 sheet of ``(vis, ir)`` degraded under each setting (in the given order).

    Args:
        vis, ir: the clean pair (as for :func:`demmi_rf.degrade`).
        settings: settings to show; duplicates (after canonicalisation) are shown once.
        seed, pair_id, ranges: passed to :func:`demmi_rf.degrade`.
        thumb_width: width of each VIS / IR thumbnail in pixels.
        columns: cells (settings) per row.
        title: text on top (default: pair id and seed).
    """
    if thumb_width < 32:
        raise ValueError(f"thumb_width must be at least 32, got {thumb_width}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    parsed: list[Setting] = []
    for s in settings:
        p = parse_setting(s)
        if p not in parsed:
            parsed.append(p)
    if not parsed:
        raise ValueError("no settings to show")
    h, w = vis.shape[:2]
    th = max(1, round(h * thumb_width / w))
    cell_w, cell_h = 2 * thumb_width + 3 * _GAP, th + _LABEL_H + 2 * _GAP
    cols = min(columns, len(parsed))
    rows = -(-len(parsed) // cols)
    sheet = np.empty((_TITLE_H + rows * cell_h, cols * cell_w, 3), np.uint8)
    sheet[:] = _BG
    _text(sheet, title or f"{pair_id}  seed {seed}", _GAP, 21, 0.6, _FG, 1)
    for i, setting in enumerate(parsed):
        out = degrade(vis, ir, setting, seed, pair_id=pair_id, ranges=ranges)
        x0 = (i % cols) * cell_w
        y0 = _TITLE_H + (i // cols) * cell_h
        _text(sheet, out.setting, x0 + _GAP, y0 + 14, 0.5, _FG, 1)
        _text(sheet, describe_params(out.params), x0 + _GAP, y0 + 29, 0.38, _DIM, 1)
        for j, (img, changed, tag) in enumerate(
            ((out.vis, setting.changes_vis, "VIS"), (out.ir, setting.changes_ir, "IR"))
        ):
            x = x0 + _GAP + j * (thumb_width + _GAP)
            y = y0 + _LABEL_H
            if changed:
                sheet[y - 2 : y + th + 2, x - 2 : x + thumb_width + 2] = _MARK
            sheet[y : y + th, x : x + thumb_width] = _thumb(img, thumb_width)
            sheet[y : y + 18, x : x + 8 + 9 * len(tag)] = _BG  # a dark tab keeps the tag readable
            _text(sheet, tag, x + 4, y + 13, 0.4, (255, 255, 0), 1)
    return sheet
