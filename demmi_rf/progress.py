"""One progress reporter for every long piece of work (build, verify, eval, baseline, scan, train, fuse).

On a terminal it redraws one bar line on stderr; off a terminal (``nohup``, SLURM, CI logs, a pipe) it prints
plain log lines instead, one every ``log_every_s`` seconds and one at the end, each with the count, the rate and
the estimated time left, so a long job is never silent::

    [demmi] build: 120/608 samples (19.7%), 45.2 samples/s, elapsed 0:00:02, ETA 0:00:10

``mode``: ``"auto"`` (bar on a terminal, log lines otherwise), ``"bar"``, ``"log"`` or ``"off"``. Commands map
``--progress`` to ``"auto"`` and ``--no-progress`` to ``"off"``. The reporter needs nothing beyond the standard
library, so :mod:`demmi_rf` and :mod:`tgecnet_ref` share it (no tqdm, no click).

Rate and ETA: with n items done after t seconds, rate = n / t and ETA = (total − n) / rate.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

MODES = ("auto", "bar", "log", "off")
LOG_PREFIX = "[demmi]"


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` of a non-negative duration (``?`` when unknown)."""
    if not seconds == seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative, infinite
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def resolve_mode(mode: str | bool | None, stream: TextIO | None = None) -> str:
    """Turn a user's choice into one of ``bar``/``log``/``off``.

    ``None`` or ``"auto"``: a bar when ``stream`` (stderr by default) is a terminal, log lines otherwise.
    ``True`` behaves as ``"auto"`` and ``False`` as ``"off"`` (the ``--progress/--no-progress`` flags).
    """
    if mode is None or mode is True:
        mode = "auto"
    elif mode is False:
        mode = "off"
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "auto":
        s = stream if stream is not None else sys.stderr
        try:
            return "bar" if s.isatty() else "log"
        except (AttributeError, ValueError):
            return "log"
    return mode


@dataclass
class Progress:
    """A progress reporter; use :func:`progress` to make one. ``advance(n)`` adds n done items.

    ``total`` may be 0 or None when unknown (then no percentage or ETA is printed). ``postfix`` is extra text
    appended to each line (e.g. the current loss); set it with :meth:`set_postfix`.
    """

    total: int | None
    label: str
    unit: str = "items"
    mode: str = "auto"
    log_every_s: float = 30.0
    stream: TextIO | None = None
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    postfix: str = ""
    _start: float = field(default=0.0, init=False)
    _last_emit: float = field(default=0.0, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.stream = self.stream if self.stream is not None else sys.stderr
        self.mode = resolve_mode(self.mode, self.stream)
        self._start = self._last_emit = self.clock()

    # -- reporting ------------------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done and report when it is time to."""
        self.done += n
        if self.mode == "off":
            return
        now = self.clock()
        if self.mode == "bar":
            if now - self._last_emit >= 0.1 or self._finished():
                self._emit(now, final=False)
        elif now - self._last_emit >= self.log_every_s:
            self._emit(now, final=False)

    def set_postfix(self, text: str) -> None:
        """Text shown after the counts (e.g. ``loss 0.123``)."""
        self.postfix = text

    def log(self, message: str) -> None:
        """Print one message line (kept apart from the bar); printed in every mode but ``off``."""
        if self.mode == "off":
            return
        if self.mode == "bar":
            self.stream.write("\r\033[K")
        self.stream.write(f"{LOG_PREFIX} {message}\n")
        self.stream.flush()

    def close(self) -> None:
        """Print the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if self.mode != "off":
            self._emit(self.clock(), final=True)

    # -- text ------------------------------------------------------------------------------------------
    def line(self, now: float | None = None) -> str:
        """The status text: ``label: n/total unit (p%), rate unit/s, elapsed H:MM:SS, ETA H:MM:SS``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 0.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {self.done}"]
        if self.total:
            parts[0] += f"/{self.total} {self.unit} ({100.0 * self.done / self.total:.1f}%)"
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:.3g} {self.unit}/s" if rate else f"0 {self.unit}/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _finished(self) -> bool:
        return bool(self.total) and self.done >= self.total

    def _emit(self, now: float, final: bool) -> None:
        self._last_emit = now
        if self.mode == "bar":
            self.stream.write("\r\033[K" + self._bar(now) + ("\n" if final else ""))
        else:
            self.stream.write(f"{LOG_PREFIX} {self.line(now)}{' (done)' if final else ''}\n")
        self.stream.flush()

    def _bar(self, now: float) -> str:
        if not self.total:
            return self.line(now)
        width = 24
        filled = min(width, int(width * self.done / self.total))
        return f"[{'#' * filled}{'-' * (width - filled)}] {self.line(now)}"

    # -- context manager ---------------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int | None, label: str, *, unit: str = "items", mode: str | bool | None = "auto",
             log_every_s: float = 30.0, stream: TextIO | None = None) -> Progress:
    """Make a :class:`Progress`; use it as a context manager so the final line is always printed::

        with progress(len(items), "eval average", unit="images", mode=flag) as bar:
            for item in items:
                ...
                bar.advance()
    """
    return Progress(total=total, label=label, unit=unit, mode="auto" if mode is None else mode,
                    log_every_s=log_every_s, stream=stream)
