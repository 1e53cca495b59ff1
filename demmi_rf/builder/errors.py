"""The build's own error types, and the words for an operating-system error."""

from __future__ import annotations

import errno

from ..errors import DemmiError

_WHY = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
        errno.EPERM: "operation not permitted", errno.EIO: "input/output error"}


class BuildError(DemmiError):
    """A build cannot go on: unwritable output, full disk, another recipe in the output folder, ..."""


class BuildLockedError(BuildError):
    """Another build holds the output folder's lock (it is running now)."""


class StrictBuildError(BuildError):
    """``strict=True`` (``demmi build --strict``): the build skipped pairs or left a split empty."""


def os_problem(exc: OSError) -> str:
    """``the disk is full ([Errno 28] No space left on device)`` for the codes a user can act on, else the
    error's own text."""
    code = exc.errno
    if code in _WHY:
        return f"{_WHY[code]} ([Errno {code}] {exc.strerror or errno.errorcode.get(code, code)})"
    return exc.strerror or str(exc)
