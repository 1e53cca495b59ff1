"""Evaluation of fused images (``demmi eval``) and the leaderboard (``demmi leaderboard``).

* :func:`evaluate_fused` — sort a fused folder against a split (:mod:`.fused`), score every sample with a
  metric profile against the clean or degraded references (:mod:`.score`), aggregate per setting in the shape of
  the TG-ECNet paper's Table 1 (:mod:`.table`), and assemble the stamped results (:mod:`.results`);
* :func:`write_results` / :func:`read_results` — the results JSON and its per-sample CSV;
  :func:`load_results` parses a results file into a checked :class:`ResultsRecord` (untrusted input);
* :func:`render_leaderboard` — one table across methods, refusing results of different datasets, profiles,
  references, splits or settings (:mod:`.leaderboard`).

Formats and the protocol: ``docs/benchmark.md``.
"""

from __future__ import annotations

from .fused import FusedScan, fused_path, read_fused, scan_fused
from .leaderboard import check_compatible, render_leaderboard
from .results import (
    METHOD_NAME,
    ResultsRecord,
    check_method_name,
    check_results_paths,
    comparable,
    load_results,
    parse_results,
    read_csv_rows,
    read_results,
    write_results,
)
from .run import Evaluation, evaluate_fused, problems_message
from .score import REFERENCES
from .table import MEAN_ROW, TableRow, render_text, setting_table

__all__ = [
    "MEAN_ROW", "METHOD_NAME", "REFERENCES", "Evaluation", "FusedScan", "ResultsRecord", "TableRow",
    "check_compatible", "check_method_name", "check_results_paths", "comparable", "evaluate_fused", "fused_path",
    "load_results", "parse_results", "problems_message", "read_csv_rows", "read_fused", "read_results",
    "render_leaderboard", "render_text", "scan_fused", "setting_table", "write_results",
]
