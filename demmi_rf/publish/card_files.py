"""Writing the publication cards of a built dataset: ``README.md`` and ``croissant.json``.

:func:`write_card_files` is called by ``demmi build`` just before it writes ``dataset.json`` (which stays the
last file of a build), and by ``demmi card`` (:func:`regenerate_cards`) on an existing dataset. Both files are
derived from the card and the manifest's columns only, written atomically (temporary name, fsync, rename), and
hold no timestamps, so a rebuild gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..store.atomic import write_bytes_atomic
from ..store.card import card_bytes, card_hash
from .card_readme import README, readme_text
from .croissant import CROISSANT, column_types, croissant_bytes


def write_card_files(root: str | Path, card: dict[str, Any], manifest: Any) -> tuple[Path, Path]:
    """Write ``<root>/README.md`` and ``<root>/croissant.json`` for ``card`` (the dict that is, or is about to
    be, ``dataset.json``) and ``manifest`` (the manifest DataFrame); returns both paths. ``OSError`` passes
    through (the caller names the folder)."""
    root = Path(root)
    sha = card_hash(card_bytes(card))
    readme, croissant = root / README, root / CROISSANT
    write_bytes_atomic(readme, readme_text(card, sha).encode("utf-8"))
    write_bytes_atomic(croissant, croissant_bytes(card, sha, column_types(manifest)))
    return readme, croissant


def regenerate_cards(root: str | Path) -> tuple[Path, Path]:
    """Re-write the README and Croissant cards of the dataset in ``root`` (``demmi card``). The dataset is
    opened first (card, manifest sha256 and content hash checked), so a damaged dataset raises
    :class:`~demmi_rf.errors.DatasetError` and nothing is written; an unwritable folder raises
    :class:`~demmi_rf.errors.DemmiError` naming it."""
    from ..errors import DemmiError  # noqa: PLC0415
    from ..store import open_dataset  # noqa: PLC0415

    with open_dataset(root) as ds:
        card, manifest, where = ds.card, ds.manifest, ds.root
    try:
        return write_card_files(where, card, manifest)
    except OSError as exc:
        raise DemmiError(f"cannot write the cards into {where}: {exc.strerror or exc}") from exc
