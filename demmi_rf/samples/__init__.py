"""The embedded sample pairs (see ``NOTICE.md`` in this folder for provenance and citations)."""

from __future__ import annotations

from pathlib import Path


def sample_root() -> Path:
    """The folder holding the embedded sample pairs, laid out as MSRS, TNO and RoadScene are."""
    return Path(__file__).resolve().parent
