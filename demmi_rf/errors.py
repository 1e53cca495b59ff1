"""Exception types of the toolkit.

Every error a user can cause derives from :class:`DemmiError`, carries a message that names the file (or
setting, recipe, shard) and the problem, and can be caught by its specific type.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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


class ImageTooLargeError(PairError):
    """More pixels than the decoding limit (``max_pixels``): refused from the header, before decoding."""

    kind = "too-large"


class SizeMismatchError(PairError):
    """IR and VIS of one pair differ in height or width."""

    kind = "size-mismatch"


class MemoryBudgetError(DemmiError):
    """A build would need more memory than is available (the message gives the estimate and the numbers)."""


# --- synthesis ------------------------------------------------------------------------------------------
class SettingError(DemmiError, ValueError):
    """An unknown atom, two noise levels, an empty setting..."""


class AtomRegistryError(DemmiError, ValueError):
    """A degradation atom cannot be registered: a duplicate name or label index, a malformed spec, an occupied
    stage of its modality's chain (:mod:`demmi_rf.degradations.registry`)."""


# --- recipes, datasets, shards ------------------------------------------------------------------------
class RecipeError(DemmiError, ValueError):
    """A recipe file is missing, malformed or invalid."""


class DatasetError(DemmiError):
    """A directory is not a (complete, consistent) DeMMI-RF dataset."""


class ShardError(DatasetError):
    """A shard is missing, truncated, corrupted, or does not match its checksum."""


# --- names: one "did you mean" for every misspelt setting, profile, split, baseline, recipe... -------------
def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names among ``choices`` closest to ``word`` (:func:`difflib.get_close_matches`: Ratcliff-Obershelp
    similarity ``2·M / (len(a) + len(b))`` ≥ ``cutoff``, best first, at most ``n``), case-insensitively."""
    pool = [str(c) for c in choices]
    lowered: dict[str, str] = {}
    for c in pool:
        lowered.setdefault(c.lower(), c)
    return [lowered[m] for m in difflib.get_close_matches(str(word).lower(), list(lowered), n=n, cutoff=cutoff)]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'haze'?)"`` / ``" (did you mean 'a' or 'b'?)"`` for a misspelt ``word``, or ``""``."""
    found = close_matches(word, choices)
    if not found:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in found) + "?)"


def unknown_name(what: str, word: str, choices: Iterable[str]) -> str:
    """The message for a name that does not exist: ``unknown profile 'tnag' (did you mean 'tang'?); choose
    from: tang, vifb, ...``. Used by the library and the command line alike."""
    pool = [str(c) for c in choices]
    listed = ", ".join(pool) if pool else "(none)"
    return f"unknown {what} {word!r}{did_you_mean(word, pool)}; choose from: {listed}"
