"""Sorted runs of ``(key, payload)`` string records in one temporary file, merged in bounded memory.

The external sort behind every streamed hash over sorted samples: the end of a build
(:class:`demmi_rf.builder.collect.ManifestCollector`: the content hash and the source digest) and ``demmi verify``
(the content hash, duplicate sample ids and distinct pairs of a manifest read in chunks). Each run is added
sorted; :meth:`SortedRuns.merged` yields every record in key order, merging at most :data:`FAN_IN` runs at a time
(more passes, through two spare files, beyond that), so memory is ``FAN_IN`` read buffers whatever the number of
records.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

#: runs merged at once (memory: FAN_IN read buffers of :data:`_BUFFER` bytes)
FAN_IN = 64
_BUFFER = 1 << 16
_HEAD = struct.Struct(">II")


def create_new(path: Path, mode: str = "w+b") -> BinaryIO:
    """A new file (never an existing one, never through a symbolic link) opened in ``mode``."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, 0o644), mode)



class SortedRuns:
    """Sorted runs of ``(key, payload)`` records (both ``str``) in one temporary file, merged in bounded memory.
    Keys compare as Python strings do (UTF-8 with ``surrogatepass`` keeps code-point order)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: BinaryIO = create_new(path)
        self.runs: list[tuple[int, int]] = []

    def add_run(self, items: Iterable[tuple[str, str]]) -> None:
        start = self.fh.seek(0, os.SEEK_END)
        buf = io.BytesIO()
        for key, payload in items:
            k, p = key.encode("utf-8", "surrogatepass"), payload.encode("utf-8", "surrogatepass")
            buf.write(_HEAD.pack(len(k), len(p)))
            buf.write(k)
            buf.write(p)
        data = buf.getvalue()
        self.fh.write(data)
        self.runs.append((start, len(data)))

    def _read(self, fh: BinaryIO, start: int, length: int) -> Iterator[tuple[bytes, bytes]]:
        """The records of one run, read :data:`_BUFFER` bytes at a time (records are cut at an offset into the
        buffer, which is compacted only when it is refilled)."""
        pos, end, buf, at = start, start + length, b"", 0
        while True:
            while len(buf) - at < _HEAD.size or len(buf) - at < _HEAD.size + sum(_HEAD.unpack_from(buf, at)):
                if pos >= end:
                    if len(buf) > at:
                        raise OSError(f"{self.path}: truncated run")
                    return
                chunk = os.pread(fh.fileno(), min(_BUFFER, end - pos), pos)
                if not chunk:
                    raise OSError(f"{self.path}: truncated run")
                pos += len(chunk)
                buf, at = buf[at:] + chunk, 0
            nk, np_ = _HEAD.unpack_from(buf, at)
            key_at = at + _HEAD.size
            yield buf[key_at:key_at + nk], buf[key_at + nk:key_at + nk + np_]
            at = key_at + nk + np_

    def merged(self) -> Iterator[tuple[str, str]]:
        """Every record of every run, in key order (ties in run order)."""
        self.fh.flush()
        runs, fh = self.runs, self.fh
        spares = [self.path.with_name(self.path.name + f"-merge{k}") for k in range(2)]
        try:
            turn = 0
            while len(runs) > FAN_IN:  # merge passes, alternating between two files, until FAN_IN runs are left
                with contextlib.suppress(OSError):  # left by an earlier pass of this merge
                    spares[turn].unlink()
                out = create_new(spares[turn])
                turn = 1 - turn
                merged_runs = []
                for g in range(0, len(runs), FAN_IN):
                    start = out.tell()
                    for key, payload in heapq.merge(*(self._read(fh, s, n) for s, n in runs[g:g + FAN_IN]),
                                                    key=lambda kp: kp[0]):
                        out.write(_HEAD.pack(len(key), len(payload)) + key + payload)
                    merged_runs.append((start, out.tell() - start))
                out.flush()
                if fh is not self.fh:
                    fh.close()
                fh, runs = out, merged_runs
            for key, payload in heapq.merge(*(self._read(fh, s, n) for s, n in runs), key=lambda kp: kp[0]):
                yield key.decode("utf-8", "surrogatepass"), payload.decode("utf-8", "surrogatepass")
        finally:
            if fh is not self.fh:
                fh.close()
            for spare in spares:
                with contextlib.suppress(OSError):
                    spare.unlink()

    def close(self) -> None:
        self.fh.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


__all__ = ["FAN_IN", "SortedRuns", "create_new"]
