"""Ingestion of registered IR/VIS pairs: layout detection, pairing by stem, validated reading.

See ``docs/sources.md`` for the supported layouts and how pairs are named.
"""

from .discover import discover, find_groups, read_pair
from .images import IMAGE_EXTENSIONS, IR16_CHOICES, MIN_SIDE, read_ir, read_vis
from .records import LoadedPair, PairGroup, PairRecord, Problem, ScanResult

__all__ = [
    "IMAGE_EXTENSIONS", "IR16_CHOICES", "MIN_SIDE", "LoadedPair", "PairGroup", "PairRecord", "Problem",
    "ScanResult", "discover", "find_groups", "read_ir", "read_pair", "read_vis",
]
