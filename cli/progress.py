"""A progress bar shared by the commands: click's bar on a terminal (stderr), silent otherwise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import click


@contextlib.contextmanager
def progress_bar(total: int, label: str, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar on stderr when it is a terminal (or when ``enabled`` is True)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show or total <= 0:
        yield lambda n=1: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True) as bar:
        yield bar.update
