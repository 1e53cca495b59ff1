"""Reading parameter ranges of a recipe's ``[degradations.<atom>]`` table, and drawing from them.

Recipe convention: a number is fixed (nothing is drawn); ``[a, b]`` of floats is uniform on ``[a, b]``
(one :meth:`demmi_rf.rng.Stream.uniform` draw u, then ``a + (b - a) * u``); a list of integers is a uniform
choice among them (one :meth:`demmi_rf.rng.Stream.below` draw); for an :data:`~.registry.INTEGER` parameter,
``[a, b]`` of integers is every integer of a..b equally likely (``a + below(b - a + 1)``, the same value from the
same word as the choice among ``[a, a + 1, ..., b]``).
Malformed ranges raise :class:`~demmi_rf.errors.RecipeError` naming ``degradations.<atom>.<key>``.

The ``rng`` argument is a :class:`demmi_rf.rng.Stream` (a numpy Generator is wrapped in one); only its
portable draws are used. :func:`draw_param` draws a parameter by its schema (:class:`.registry.Param`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import RecipeError
from .registry import CHOICE, FIXED, INTEGER, MAX_INTEGER_SPAN, Param, as_stream


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def value(ranges: Mapping[str, Any], key: str, atom: str) -> Any:
    """``ranges[key]``, or a RecipeError naming the missing key."""
    if not isinstance(ranges, Mapping):
        raise RecipeError(f"degradations.{atom}: expected a table of parameter ranges, got {ranges!r}")
    if key not in ranges:
        raise RecipeError(f"degradations.{atom}: missing parameter {key!r} (have: {', '.join(ranges) or 'none'})")
    return ranges[key]


def fixed(ranges: Mapping[str, Any], key: str, atom: str, lo: float = -np.inf, hi: float = np.inf) -> float:
    """A fixed number (no draw), checked to lie in ``[lo, hi]``."""
    v = value(ranges, key, atom)
    if not _is_number(v):
        raise RecipeError(f"degradations.{atom}.{key}: expected a number, got {v!r}")
    return _check(float(v), key, atom, lo, hi)


def uniform(rng: Any, ranges: Mapping[str, Any], key: str, atom: str,
            lo: float = -np.inf, hi: float = np.inf) -> float:
    """A number: fixed if the range is a number, else ``a + (b - a) * u`` for ``[a, b]``, u = ``rng.uniform()``."""
    v = ranges.get(key) if type(ranges) is dict else None
    if type(v) is list and len(v) == 2:
        # The common case, checked with exact type tests: two Python floats with lo <= a <= b <= hi (a NaN fails
        # the comparisons). Anything else (numpy scalars, ints, a fixed number, any error) takes the checks below.
        a, b = v
        if type(a) is float and type(b) is float and lo <= a <= b <= hi:
            return a + (b - a) * as_stream(rng).uniform()
    v = value(ranges, key, atom)
    if _is_number(v):
        return _check(float(v), key, atom, lo, hi)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) for x in v):
        a, b = float(v[0]), float(v[1])
        if a > b:
            raise RecipeError(f"degradations.{atom}.{key}: range [{a}, {b}] has low > high")
        _check(a, key, atom, lo, hi)
        _check(b, key, atom, lo, hi)
        # The multiply and the add are two separate Python float operations: numpy's C ``lower + range * u``
        # (``Generator.uniform``) may be contracted into a fused multiply-add by the compiler on some platforms
        # (e.g. aarch64), which would change the last bit of a drawn parameter.
        return a + (b - a) * as_stream(rng).uniform()
    raise RecipeError(f"degradations.{atom}.{key}: expected a number or [low, high], got {v!r}")


def choice(rng: Any, ranges: Mapping[str, Any], key: str, atom: str,
           lo: int = -(2**62), hi: int = 2**62) -> int:
    """An integer: fixed if the range is an integer, else a uniform choice (one ``rng.below(len)``)."""
    v = ranges.get(key) if type(ranges) is dict else None
    if type(v) is list and v and all(type(x) is int and lo <= x <= hi for x in v):
        return v[as_stream(rng).below(len(v))]  # the common case in exact type tests; else the checks below
    v = value(ranges, key, atom)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(_check(int(v), key, atom, lo, hi))
    if (
        isinstance(v, (list, tuple)) and v
        and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v)
    ):
        for x in v:
            _check(int(x), key, atom, lo, hi)
        return int(v[as_stream(rng).below(len(v))])
    raise RecipeError(f"degradations.{atom}.{key}: expected an integer or a list of integers, got {v!r}")


def integer(rng: Any, ranges: Mapping[str, Any], key: str, atom: str,
            lo: float = -np.inf, hi: float = np.inf) -> int:
    r"""An integer: fixed if the range is an integer, else uniform on a..b (both included) for ``[a, b]``:

    .. math:: v = a + k, \qquad k = \text{below}(b - a + 1) \in \{0, \dots, b - a\}

    (one :meth:`demmi_rf.rng.Stream.below` draw: Lemire's unbiased multiply-shift; the same value, from the same
    word, as :func:`choice` among ``[a, a + 1, ..., b]``)."""
    v = ranges.get(key) if type(ranges) is dict else None
    if type(v) is list and len(v) == 2:  # the common case in exact type tests; anything else: the checks below
        a, b = v
        if type(a) is int and type(b) is int and lo <= a <= b <= hi and b - a < MAX_INTEGER_SPAN:
            return a + as_stream(rng).below(b - a + 1)
    v = value(ranges, key, atom)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(_check(int(v), key, atom, lo, hi))
    if (
        isinstance(v, (list, tuple)) and len(v) == 2
        and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v)
    ):
        a, b = int(v[0]), int(v[1])
        if a > b:
            raise RecipeError(f"degradations.{atom}.{key}: integer range [{a}, {b}] has low > high")
        if b - a + 1 > MAX_INTEGER_SPAN:
            raise RecipeError(f"degradations.{atom}.{key}: integer range [{a}, {b}] spans more than 2**32 values")
        _check(a, key, atom, lo, hi)
        _check(b, key, atom, lo, hi)
        return a + as_stream(rng).below(b - a + 1)
    raise RecipeError(f"degradations.{atom}.{key}: expected an integer or [low, high] of integers, got {v!r}")


def draw_param(rng: Any, ranges: Mapping[str, Any], param: Param, atom: str) -> Any:
    """The value of ``param`` for one sample, drawn as its schema says (``kind``, valid ``[lo, hi]``)."""
    if param.kind == FIXED:
        return fixed(ranges, param.name, atom, lo=param.lo, hi=param.hi)
    if param.kind == CHOICE:
        return choice(rng, ranges, param.name, atom, lo=param.lo, hi=param.hi)
    if param.kind == INTEGER:
        return integer(rng, ranges, param.name, atom, lo=param.lo, hi=param.hi)
    return uniform(rng, ranges, param.name, atom, lo=param.lo, hi=param.hi)


def _check(v: float, key: str, atom: str, lo: float, hi: float) -> float:
    if not (lo <= v <= hi) or v != v:
        raise RecipeError(f"degradations.{atom}.{key}: {v} is outside the valid interval [{lo}, {hi}]")
    return v
