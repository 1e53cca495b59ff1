"""The build's own error type."""

from __future__ import annotations

from ..errors import DemmiError


class BuildError(DemmiError):
    """A build cannot go on: unwritable output, full disk, another recipe in the output folder, ..."""
