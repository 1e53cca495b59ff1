"""The folder layouts of the public IR/VIS datasets, as data.

A *pair group* is one IR folder and one VIS folder, side by side under the same parent, whose files pair by
stem. Layout detection looks for such siblings by name (case-insensitive, aliases below, see
``docs/sources.md`` and ``docs/reference/source-dataset-layouts.md``):

=============  =================================================  ======================================
dataset        layout                                             official split
=============  =================================================  ======================================
MSRS           ``MSRS/{train,test}/{ir,vi}/NNNNN{D,N}.png``        parent folder ``train``/``test``
M3FD           ``M3FD_Fusion/{Ir,Vis}/NNNNN.png``                  none
LLVIP          ``LLVIP/{infrared,visible}/{train,test}/N.jpg``     child folders ``train``/``test``
RoadScene      ``RoadScene/{cropinfrared,crop_LR_visible}/*.jpg``  none
FMB            ``FMB/{train,test}/{Infrared,Visible}/*.png``       parent folder ``train``/``test``
TNO (curated)  ``TNO/{ir,vi}/NN.png``                              none
EMS            ``EMS/train/<type>/{Infrared_gt,Visible_gt}/*``     parent folder ``train``/``eval``
any            ``<name>/{ir,vis}/*`` or ``--ir-dir/--vis-dir``     none
=============  =================================================  ======================================
"""

from __future__ import annotations

import re

# Preference order matters: RoadScene has both `cropinfrared` (registered) and `infrared` (uncropped, NOT a
# partner of crop_LR_visible); EMS has both `Infrared` (degraded) and `Infrared_gt` (clean).
IR_FOLDERS = ("cropinfrared", "infrared_gt", "ir", "infrared", "thermal", "lwir")
VIS_FOLDERS = ("crop_lr_visible", "visible_gt", "vi", "vis", "visible", "visual", "rgb")
# Never a registered partner, even though the name looks like one.
NOT_PAIR_FOLDERS = ("crop_hr_visible",)

SPLIT_FOLDERS = {"train": "train", "training": "train", "test": "test", "testing": "test", "eval": "test"}

# Canonical source names, found as a token of a folder name (``M3FD_Fusion`` -> ``m3fd``).
KNOWN_SOURCES = ("msrs", "m3fd", "llvip", "roadscene", "fmb", "tno", "ems", "mfnet")

_TOKEN = re.compile(r"[a-z0-9]+")


def folder_role(name: str) -> tuple[str, int] | None:
    """``("ir"|"vis", preference rank)`` for a folder name, or None."""
    low = name.lower()
    if low in NOT_PAIR_FOLDERS:
        return None
    if low in IR_FOLDERS:
        return "ir", IR_FOLDERS.index(low)
    if low in VIS_FOLDERS:
        return "vis", VIS_FOLDERS.index(low)
    return None


def split_of(name: str) -> str | None:
    """The official split a folder name stands for, or None."""
    return SPLIT_FOLDERS.get(name.lower())


def known_source(name: str) -> str | None:
    """The canonical source whose name is a token of ``name`` (``M3FD_Fusion`` -> ``m3fd``), or None."""
    for token in _TOKEN.findall(name.lower()):
        if token in KNOWN_SOURCES:
            return token
    return None


def sanitize_source(name: str) -> str:
    """A source name made of lower-case letters, digits and single ``-`` (it becomes part of every id)."""
    out = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return out or "source"


def layout_name(ir_folder: str, vis_folder: str, split_children: bool) -> str:
    """A short label of the detected layout, for reports."""
    ir = ir_folder.lower()
    if ir == "cropinfrared":
        return "roadscene"
    if ir == "infrared_gt":
        return "ems"
    if split_children:
        return "llvip"
    if ir_folder == "Ir" and vis_folder == "Vis":
        return "m3fd"
    if ir_folder == "Infrared" and vis_folder == "Visible":
        return "fmb"
    return f"{ir_folder}/{vis_folder}"
