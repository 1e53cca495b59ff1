"""Exception types of the toolkit.

Every error a user can cause derives from :class:`DemmiError`, carries a message that names the file (or
setting, recipe, shard) and the problem, and can be caught by its specific type.
"""

from __future__ import annotations

from pathlib import Path


class DemmiError(Exception):
    """Base class of every error raised on purpose by DeMMI-RF."""


# --- sources and images -------------------------------------------------------------------------------
class SourceError(DemmiError):
    """A source folder cannot be used (missing, empty, unknown layout)."""


class PairError(DemmiError):
    """A pair (or one of its image files) is unusable. ``path`` names the offending file; ``kind`` is a
    short stable code (``unreadable``, ``size-mismatch``...) also used by ``demmi scan --json``."""

    kind = "bad-pair"

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnreadableImageError(PairError):
    """Not a decodable image, or truncated."""

    kind = "unreadable"


class ChannelError(PairError):
    """Wrong channel layout (IR with unequal channels, VIS with transparency, ...)."""

    kind = "bad-channels"


class BitDepthError(PairError):
    """Not 8 bits per sample (e.g. 16-bit IR without a requested conversion)."""

    kind = "bad-bit-depth"


class ImageTooSmallError(PairError):
    """Smaller than the 32 px minimum side."""

    kind = "too-small"


class SizeMismatchError(PairError):
    """IR and VIS of one pair differ in height or width."""

    kind = "size-mismatch"


# --- synthesis ------------------------------------------------------------------------------------------
class SettingError(DemmiError, ValueError):
    """An unknown atom, two noise levels, an empty setting..."""


# --- recipes, datasets, shards ------------------------------------------------------------------------
class RecipeError(DemmiError, ValueError):
    """A recipe file is missing, malformed or invalid."""


class DatasetError(DemmiError):
    """A directory is not a (complete, consistent) DeMMI-RF dataset."""


class ShardError(DatasetError):
    """A shard is missing, truncated, corrupted, or does not match its checksum."""
