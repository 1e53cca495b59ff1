"""Identifiers of pairs and samples, and their file-system-safe forms.

* pair id: ``<source>/<stem>`` (benchmark spec section 1), e.g. ``msrs/00004N``;
* sample id: ``<pair id>@<setting>`` with the canonical setting name, e.g. ``msrs/00004N@noise50+haze``;
* safe name: the id with ``/`` replaced by ``__`` (two underscores), used for file names such as the fused
  image ``<safe name>.png`` that ``demmi eval`` reads (spec section 7). Source names and stems never contain
  ``__`` at their edges in a way that makes this ambiguous: :func:`from_safe_name` inverts only the first
  ``__`` because a source name never contains ``__``.
"""

from __future__ import annotations

SAFE_SLASH = "__"


def pair_id(source: str, stem: str) -> str:
    """``<source>/<stem>``."""
    return f"{source}/{stem}"


def sample_id(pair: str, setting: str) -> str:
    """``<pair id>@<canonical setting>``."""
    return f"{pair}@{setting}"


def split_sample_id(sample: str) -> tuple[str, str]:
    """Inverse of :func:`sample_id`: ``(pair id, setting)``."""
    pair, sep, setting = sample.rpartition("@")
    if not sep or not pair or not setting:
        raise ValueError(f"not a sample id (expected '<source>/<stem>@<setting>'): {sample!r}")
    return pair, setting


def safe_name(identifier: str) -> str:
    """File-system-safe form of a pair or sample id (``/`` -> ``__``)."""
    return identifier.replace("/", SAFE_SLASH)


def from_safe_name(name: str) -> str:
    """Inverse of :func:`safe_name` (the first ``__`` separates the source from the stem)."""
    return name.replace(SAFE_SLASH, "/", 1)
