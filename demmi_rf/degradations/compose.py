"""Composition: degrade one registered IR/VIS pair under one setting (benchmark spec sections 2-4).

For each modality that the setting changes:

1. one generator ``demmi_rf.rng.generator(seed, pair_id, canonical setting name, modality)``, wrapped once in
   the narrow :class:`demmi_rf.rng.Stream` that every atom of the chain receives;
2. the image is converted to float32 on the 0-255 scale;
3. the modality's atoms run in application order (ascending ``stage`` of their specs; VIS: haze -> defocus ->
   noise; IR: stripe), each first drawing its scalar parameters, then applying its model (which may draw
   per-pixel / per-column values), so the draw order within a modality is the application order;
4. clip to [0, 255] and round half to even (``np.rint``) to uint8, once, at the end.

A modality the setting does not change is returned as the very input array (bit-identical, no copy). The
generators depend only on (seed, pair id, setting, modality): a sample's pixels do not depend on which other
settings are built, in which order, or by how many workers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..rng import Stream, keyed_stream, seed_material
from ..settings import Setting, cached, parse_setting, remember
from ._arrays import _UINT8, quantize, scratch
from .registry import as_stream
from .registry import default_ranges as _registry_defaults

__all__ = ["degrade", "DegradedPair", "default_ranges", "run_chain"]


@dataclass(frozen=True, eq=False)
class DegradedPair:
    """The result of :func:`degrade`.

    ``vis``/``ir`` are uint8 with the input shapes (an unchanged modality is the input array itself);
    ``setting`` the canonical setting name; ``params`` maps each atom of the setting (canonical order) to its
    drawn scalar parameters (plain JSON values).
    """

    vis: np.ndarray
    ir: np.ndarray
    setting: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    pair_id: str = ""
    seed: int | None = None

    @classmethod
    def _record(cls, vis: np.ndarray, ir: np.ndarray, setting: str, params: dict[str, dict[str, Any]],
                pair_id: str, seed: int | None) -> DegradedPair:
        """The record of :func:`degrade`, every field given (the same object as the dataclass ``__init__`` makes,
        without its six frozen ``object.__setattr__`` calls: about a microsecond per call)."""
        record = object.__new__(cls)
        record.__dict__.update(vis=vis, ir=ir, setting=setting, params=params, pair_id=pair_id, seed=seed)
        return record

    @property
    def changed(self) -> tuple[str, ...]:
        """The modalities this setting changed (``("vis",)``, ``("ir",)``, both or none)."""
        s = parse_setting(self.setting)
        return tuple(m for m, c in (("vis", s.changes_vis), ("ir", s.changes_ir)) if c)

    @property
    def seed_material(self) -> dict[str, str]:
        """For each changed modality, the exact string hashed into its generator (see :mod:`demmi_rf.rng`)."""
        if self.seed is None:
            return {}
        return {m: seed_material(self.seed, self.pair_id, self.setting, m) for m in self.changed}


def default_ranges() -> dict[str, dict[str, Any]]:
    """The default parameter ranges of every registered atom (each :class:`~.registry.Param`'s ``default``; a
    fresh copy per call). For the v1 atoms these are the ``demmi-rf-v1`` recipe's ``[degradations.*]`` tables
    (``tests/test_registry.py`` checks that they agree), so the synthesis never loads a recipe."""
    return _registry_defaults()


def _check_inputs(vis: Any, ir: Any, depth: Any) -> None:
    if (type(vis) is np.ndarray and type(ir) is np.ndarray and vis.dtype is _UINT8 and ir.dtype is _UINT8
            and ir.ndim == 2 and ir.size and depth is None and vis.shape[:2] == ir.shape
            and (vis.ndim == 2 or (vis.ndim == 3 and vis.shape[2] == 3))):
        return  # the common case, in exact type tests; anything else gets the checks and messages below
    if not isinstance(vis, np.ndarray) or vis.dtype != np.uint8:
        raise TypeError(f"vis must be a uint8 numpy array, got {_describe(vis)}")
    if not isinstance(ir, np.ndarray) or ir.dtype != np.uint8:
        raise TypeError(f"ir must be a uint8 numpy array, got {_describe(ir)}")
    if not (vis.ndim == 2 or (vis.ndim == 3 and vis.shape[2] == 3)):
        raise ValueError(f"vis must be H x W x 3 (RGB) or H x W (gray), got shape {vis.shape}")
    if ir.ndim != 2:
        hint = " (squeeze the channel axis)" if ir.ndim == 3 and ir.shape[2] == 1 else ""
        raise ValueError(f"ir must be H x W (one channel), got shape {ir.shape}{hint}")
    if vis.shape[:2] != ir.shape:
        raise ValueError(f"vis and ir differ in size: vis {vis.shape[:2]} vs ir {ir.shape} (H, W)")
    if min(ir.shape) < 1:
        raise ValueError(f"empty images: shape {ir.shape}")
    if depth is not None and np.shape(depth) != ir.shape:
        raise ValueError(f"depth map has shape {np.shape(depth)}, expected the pair's H x W {ir.shape}")


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"array of dtype {a.dtype} and shape {a.shape}"
    return type(a).__name__


def run_chain(
    image: np.ndarray, setting: Setting, modality: str, rng: Stream | np.random.Generator,
    ranges: Mapping[str, Any], depth: np.ndarray | None = None, *, buffer: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Apply the ``modality`` atoms of ``setting`` in application order to ``image`` (any real dtype), all
    drawing from one :class:`~demmi_rf.rng.Stream` (a Generator is wrapped once); returns the float32 result
    (not clipped, not rounded) and ``{atom: drawn params}``. ``buffer`` (a writeable C-contiguous float32 array of
    the image's shape) receives the float32 image and the atoms work in it (the result may be it); without one
    a new array is used."""
    stream = as_stream(rng)
    if buffer is not None:
        if buffer.dtype != np.float32 or buffer.shape != image.shape or not buffer.flags.c_contiguous \
                or not buffer.flags.writeable:
            raise ValueError(f"buffer must be a writeable C-contiguous float32 array of shape {image.shape}")
        np.copyto(buffer, image)
        work = buffer
    else:
        work = image.astype(np.float32)
    drawn: dict[str, dict[str, Any]] = {}
    for atom in setting.chain(modality):
        extra = {"depth": depth} if (atom.family == "haze" and depth is not None) else {}
        table = setting.atom_ranges(atom.name, ranges)  # the recipe's table, with a severity level laid over it
        work, drawn[atom.name] = atom.run(work, stream, table, inplace=True, **extra)
    return work, drawn


#: the largest scratch buffer kept per thread and modality (float32 elements: 256 MiB); larger images use a new array
_SCRATCH_MAX = 1 << 26


def _scratch(modality: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A per-thread float32 work buffer of ``shape`` for :func:`degrade`'s float chain (:func:`._arrays.scratch`),
    reused across calls (the chain's result is quantised into a new uint8 array before the next call can reuse
    it), so that a call does not fault in fresh pages for its work image; None above :data:`_SCRATCH_MAX`."""
    if math.prod(shape) > _SCRATCH_MAX:
        return None
    return scratch(f"degrade.{modality}", shape)


def _alone_uint8(atom: Any, image: np.ndarray, stream: Stream, table: Mapping[str, Any]
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """An atom alone in its chain on a uint8 image, through its ``apply_uint8`` (the same draws and bytes as
    ``quantize(atom.apply(float32(image)))``, without the float32 image): ``(uint8 image, drawn params)``."""
    params = atom.draw(stream, image, table, atom=atom.name)
    result = atom.apply_uint8(image, stream, **params)
    if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != image.shape:
        raise TypeError(f"atom {atom.name!r}: apply_uint8 must return a uint8 array of the image's shape "
                        f"{image.shape}, got {_describe(result)}")
    return result, params


@dataclass(frozen=True)
class _Step:
    """How :func:`degrade` runs one modality of a setting: when its chain is one atom with a uint8 path
    (``apply_uint8``), that atom and its default table (the atoms' default ranges with the setting's severity level
    laid over them; each call hands the atom a fresh copy of the table, as :meth:`Setting.atom_ranges`), else
    None for both (the float chain runs)."""

    modality: str
    alone: Any
    alone_defaults: dict[str, Any] | None


#: Setting -> its canonical name and steps (:func:`demmi_rf.settings.remember`: bounded like the setting caches,
#: used only while the registry's generation is unchanged, so a register / unregister of any atom re-plans)
_PLANS: dict[Setting, tuple[int, tuple[str, tuple[_Step, ...]]]] = {}


def _plan(s: Setting) -> tuple[str, tuple[_Step, ...]]:
    """The canonical name of ``s`` and its steps for the modalities it changes (VIS, then IR), cached per registry
    generation."""
    hit = cached(_PLANS, s)
    if hit is not None:
        return hit
    steps = []
    for modality in ("vis", "ir"):
        chain = s.chain(modality)
        if not chain:
            continue
        alone = chain[0] if len(chain) == 1 and chain[0].apply_uint8 is not None else None
        defaults = s.atom_ranges(alone.name, _registry_defaults((alone.name,))) if alone is not None else None
        steps.append(_Step(modality, alone, defaults))
    plan = (s.name, tuple(steps))
    remember(_PLANS, s, plan)
    return plan


def degrade(
    vis: np.ndarray,
    ir: np.ndarray,
    setting: str | Setting,
    seed: int,
    *,
    pair_id: str,
    depth: np.ndarray | None = None,
    ranges: Mapping[str, Mapping[str, Any]] | None = None,
    stream_extra: tuple[object, ...] = (),
) -> DegradedPair:
    """Degrade the registered pair ``(vis, ir)`` under ``setting`` (e.g. ``"noise50+haze+stripe"``).

    Args:
        vis: uint8 H x W x 3 (RGB) or H x W (gray).
        ir: uint8 H x W.
        setting: a setting string (any atom order) or a parsed :class:`~demmi_rf.settings.Setting`.
        seed: the recipe seed (non-negative int).
        pair_id: the pair's stable id ``<source>/<stem>``; part of the generator key.
        depth: optional H x W depth map (larger = farther) replacing haze's radial pseudo-depth.
        ranges: per-atom parameter ranges as in a recipe's ``[degradations.*]`` tables; ``None`` = the atoms'
            default ranges (:func:`default_ranges`: the v1 recipe's for the v1 atoms).
        stream_extra: extra parts of the generator key (:func:`demmi_rf.rng.generator`); empty (the default) for
            the stored benchmark, ``demmi_rf.rng.resample_parts(dataset_seed, epoch)`` for a fresh training draw.

    Randomness: VIS atoms draw from ``Stream(generator(seed, pair_id, setting.name, "vis"))`` in the order
    haze -> defocus -> noise, IR atoms from ``Stream(generator(..., "ir"))``. Arithmetic is float32 on 0-255; each
    modality is clipped and rounded (half to even) to uint8 once, at the end of its chain.

    Raises:
        SettingError: unknown atom, two noise levels, empty setting (lists the valid names).
        TypeError / ValueError: wrong dtype or shape, mismatched sizes, bad depth map.
        RecipeError: ``ranges`` lacks an atom's table or holds a malformed range.
    """
    s = parse_setting(setting)
    _check_inputs(vis, ir, depth)
    if not (type(seed) is int and seed >= 0) and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(pair_id, str) or not pair_id:
        raise ValueError(f"pair_id must be a non-empty string like 'msrs/00004N', got {pair_id!r}")
    drawn: dict[str, dict[str, Any]] = {}
    out = {"vis": vis, "ir": ir}
    seed = int(seed)
    name, steps = _plan(s)
    for step in steps:
        modality = step.modality
        image = out[modality]
        stream = keyed_stream(seed_material(seed, pair_id, name, modality, *stream_extra))
        alone = step.alone
        if alone is not None and not (alone.family == "haze" and depth is not None):
            table = dict(step.alone_defaults) if ranges is None else s.atom_ranges(alone.name, ranges)
            out[modality], drawn[alone.name] = _alone_uint8(alone, image, stream, table)
            continue
        if ranges is None:
            ranges = _registry_defaults(s.atoms)
        work, d = run_chain(image, s, modality, stream, ranges, depth if modality == "vis" else None,
                            buffer=_scratch(modality, image.shape))
        out[modality] = quantize(work)
        drawn.update(d)
    params = {atom: drawn[atom] for atom in s.atoms}
    return DegradedPair._record(out["vis"], out["ir"], name, params, pair_id, seed)
