"""Plain records of the ingestion step: pairs, problems, scan results, loaded pairs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PairRecord:
    """One registered IR/VIS pair found on disk.

    ``pair_id`` is ``<source>/<stem>``; ``split`` is the source's official split (``train``/``test``) or None
    when the source has none. ``height``/``width``/``vis_channels`` are filled when the files were decoded.
    """

    pair_id: str
    source: str
    stem: str
    ir_path: Path
    vis_path: Path
    split: str | None = None
    height: int | None = None
    width: int | None = None
    vis_channels: int | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["ir_path"], d["vis_path"] = str(self.ir_path), str(self.vis_path)
        return d


@dataclass(frozen=True)
class Problem:
    """Something wrong with the input. ``kind`` is a stable code; ``message`` names the file and problem."""

    path: Path
    kind: str
    message: str
    pair_id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_json(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "message": self.message, "pair_id": self.pair_id}


@dataclass(frozen=True)
class PairGroup:
    """One IR folder + VIS folder whose files pair by stem."""

    source: str
    split: str | None
    layout: str
    ir_dir: Path
    vis_dir: Path

    def to_json(self) -> dict:
        return {"source": self.source, "split": self.split, "layout": self.layout,
                "ir_dir": str(self.ir_dir), "vis_dir": str(self.vis_dir)}


@dataclass
class ScanResult:
    """What :func:`demmi_rf.sources.discover` found: usable pairs (sorted by id) and every problem."""

    roots: list[Path]
    groups: list[PairGroup] = field(default_factory=list)
    group_sizes: list[int] = field(default_factory=list)  # pairs matched by name in each group
    pairs: list[PairRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, dict[str, int]]:
        """``{source: {split or "-": n_pairs}}``."""
        out: dict[str, dict[str, int]] = {}
        for p in self.pairs:
            per = out.setdefault(p.source, {})
            key = p.split or "-"
            per[key] = per.get(key, 0) + 1
        return out

    def to_json(self) -> dict:
        return {
            "roots": [str(r) for r in self.roots],
            "counts": self.counts(),
            "n_pairs": len(self.pairs),
            "groups": [{**g.to_json(), "n_named_pairs": n} for g, n in zip(self.groups, self.group_sizes)],
            "pairs": [p.to_json() for p in self.pairs],
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class LoadedPair:
    """Decoded, validated pixels of a pair: ``vis`` uint8 HxWx3 (RGB) or HxW (gray); ``ir`` uint8 HxW."""

    vis: np.ndarray
    ir: np.ndarray
    record: PairRecord
