"""Parsing JSON that may be crafted: bounded nesting, finite numbers, no duplicate keys, a clear error.

:func:`loads` is :func:`json.loads` plus four refusals, each raised as the caller's :class:`DemmiError`
subclass naming the file:

* nesting deeper than ``max_depth`` arrays/objects (the parser's own recursion is bounded by Python's
  recursion limit and its ``RecursionError`` is caught; the depth of what parsed is then measured without
  recursion, so no later recursive walk of the document can overflow);
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow to infinity (``1e999``);
* integers of more than 4300 digits (Python's ``int`` conversion limit: a ``ValueError`` otherwise);
* an object with the same key twice (parsers disagree on which one wins).

The depth of a document is 0 for a scalar and 1 + the largest depth of its members for an array or object.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import DemmiError

#: default nesting bound: the toolkit's own files (cards, recipes, results) nest at most 6 levels
MAX_DEPTH = 64


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (0 for a scalar, 1 + the deepest member for a list or dict),
    computed with an explicit stack (no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            members = item.values()
        elif isinstance(item, list):
            members = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((m, level + 1) for m in members if isinstance(m, (dict, list)))
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows to infinity")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key[:80]!r} appears twice in one object")
        out[key] = value
    return out


def loads(data: bytes | str, where: str, error: type[DemmiError] = DemmiError, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON ``data`` (UTF-8 bytes or text) read from ``where``; ``error(f"{where}: ...")`` when it is not
    UTF-8, not JSON, nests deeper than ``max_depth``, holds a non-finite number, an over-long integer or a
    repeated key (module docstring)."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 text: {exc}") from exc
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise error(f"{where}: JSON nested too deeply (more than {max_depth} levels allowed)") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON: {exc}") from exc
    except ValueError as exc:  # non-finite numbers, repeated keys, over-long integers
        raise error(f"{where}: not valid JSON: {exc}") from exc
    depth = json_depth(value)
    if depth > max_depth:
        raise error(f"{where}: JSON nested {depth} levels deep (at most {max_depth} allowed)")
    return value


__all__ = ["MAX_DEPTH", "json_depth", "loads"]
