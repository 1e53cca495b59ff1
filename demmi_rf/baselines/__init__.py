"""Built-in classical fusion baselines (``demmi baseline NAME``), pure functions on uint8 arrays.

=================  ===================================================================================
name               what it is
=================  ===================================================================================
``average``        ``(Y + IR) / 2`` per pixel on the degraded inputs (:mod:`.simple`)
``max``            ``max(Y, IR)`` per pixel on the degraded inputs (:mod:`.simple`)
``laplacian``      Laplacian-pyramid fusion of the degraded inputs (:mod:`.pyramid`)
``cascade``        restoration chosen by the sample's known atoms, then Laplacian-pyramid fusion
                   (:mod:`.cascade`): knows *which* atoms, never the drawn parameters
``oracle-clean``   Laplacian-pyramid fusion of the *clean* sources: not a method (it reads the references),
                   the ceiling a perfect restoration followed by this classical fusion would reach
=================  ===================================================================================

All fuse the VIS luminance with the IR image and keep the VIS chroma (:mod:`._color`), so an RGB VIS gives
an RGB fused image and a gray one a gray image. Each is deterministic: the same inputs give the same bytes.

Registry: :func:`names`, :func:`get` -> :class:`Baseline` with ``.arrays`` (what to read from the dataset)
and ``.run(BaselineInput) -> uint8``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DemmiError, unknown_name

__all__ = ["Baseline", "BaselineInput", "names", "get"]


@dataclass(frozen=True)
class BaselineInput:
    """What a baseline may see of one sample.

    ``vis`` (HxW or HxWx3 uint8) and ``ir`` (HxW uint8) are the degraded inputs; ``atoms`` the sample's setting
    atoms (canonical names, empty for ``clean``); ``vis_clean``/``ir_clean`` are given only to baselines that
    declare them (``oracle-clean``); ``ranges`` is the recipe's ``degradations`` table (public in the card).
    """

    vis: np.ndarray | None = None
    ir: np.ndarray | None = None
    atoms: tuple[str, ...] = ()
    vis_clean: np.ndarray | None = None
    ir_clean: np.ndarray | None = None
    ranges: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: ``name``, one-line ``summary``, the dataset ``arrays`` it reads, and ``fn``."""

    name: str
    summary: str
    arrays: tuple[str, ...]
    fn: Callable[[BaselineInput], np.ndarray]

    def run(self, inp: BaselineInput) -> np.ndarray:
        """The fused uint8 image of one sample (same height and width as the inputs)."""
        missing = [a for a in self.arrays if getattr(inp, a) is None]
        if missing:
            raise ValueError(f"baseline {self.name!r} needs the array(s) {', '.join(missing)}")
        return self.fn(inp)


def _average(inp: BaselineInput) -> np.ndarray:
    from .simple import fuse_average

    return fuse_average(inp.vis, inp.ir)


def _max(inp: BaselineInput) -> np.ndarray:
    from .simple import fuse_max

    return fuse_max(inp.vis, inp.ir)


def _laplacian(inp: BaselineInput) -> np.ndarray:
    from .pyramid import fuse_laplacian

    return fuse_laplacian(inp.vis, inp.ir)


def _cascade(inp: BaselineInput) -> np.ndarray:
    from .cascade import cascade

    return cascade(inp.vis, inp.ir, tuple(inp.atoms), inp.ranges)


def _oracle_clean(inp: BaselineInput) -> np.ndarray:
    from .pyramid import fuse_laplacian

    return fuse_laplacian(inp.vis_clean, inp.ir_clean)


_REGISTRY: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("average", "pixel-wise mean of the VIS luminance and the IR image (degraded inputs)",
                 ("vis", "ir"), _average),
        Baseline("max", "pixel-wise maximum of the VIS luminance and the IR image (degraded inputs)",
                 ("vis", "ir"), _max),
        Baseline("laplacian", "Laplacian-pyramid fusion (max-abs details, averaged base) of the degraded inputs",
                 ("vis", "ir"), _laplacian),
        Baseline("cascade", "restoration chosen by the known atoms (NLM, Richardson-Lucy, dark channel prior, "
                 "column destriping, inverse tone curves, streak opening, deblocking), then Laplacian-pyramid "
                 "fusion", ("vis", "ir"), _cascade),
        Baseline("oracle-clean", "Laplacian-pyramid fusion of the CLEAN sources (reads the references: a "
                 "ceiling, not a method)", ("vis_clean", "ir_clean"), _oracle_clean),
    )
}


def names() -> tuple[str, ...]:
    """Registered baseline names, in documentation order."""
    return tuple(_REGISTRY)


def get(name: str) -> Baseline:
    """The :class:`Baseline` called ``name``; a :class:`~demmi_rf.errors.DemmiError` lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DemmiError(unknown_name("baseline", name, _REGISTRY)) from None
