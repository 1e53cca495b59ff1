"""Run logs: one CSV and one JSONL file per granularity (``steps``, ``epochs``) in the run directory."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


class RunLog:
    """Appends rows to ``<run>/<name>.csv`` and ``<run>/<name>.jsonl``.

    The CSV header is fixed by the first row written (later rows may not add columns; missing ones are
    empty). On ``--resume`` the files are appended to, and rows of epochs after the resumed one (from a run
    that died after logging but before saving its checkpoint) are dropped first, so logs match the weights.
    """

    def __init__(self, run_dir: Path, name: str) -> None:
        self.csv_path = run_dir / f"{name}.csv"
        self.jsonl_path = run_dir / f"{name}.jsonl"
        self._fields: list[str] | None = None
        if self.csv_path.is_file():
            with self.csv_path.open(newline="") as fh:
                header = next(csv.reader(fh), None)
            self._fields = header or None

    def truncate_after(self, epoch: int) -> None:
        """Drop rows whose ``epoch`` is greater than ``epoch`` (0-based index of the last kept epoch)."""
        if self.jsonl_path.is_file():
            rows = [json.loads(line) for line in self.jsonl_path.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if int(r.get("epoch", -1)) <= epoch]
            self.jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if self.csv_path.is_file() and self._fields:
            with self.csv_path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            with self.csv_path.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=self._fields)
                w.writeheader()
                w.writerows(r for r in rows if r.get("epoch", "") != "" and int(r["epoch"]) <= epoch)

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: _plain(v) for k, v in row.items()}
        with self.jsonl_path.open("a") as fh:
            fh.write(json.dumps(clean) + "\n")
        new_file = self._fields is None
        if new_file:
            self._fields = list(clean)
        with self.csv_path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self._fields, extrasaction="ignore")
            if new_file:
                w.writeheader()
            w.writerow(clean)


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if hasattr(v, "item"):
        return v.item()
    return v
