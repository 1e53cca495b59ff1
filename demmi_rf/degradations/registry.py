r"""The atom registry: one self-describing :class:`AtomSpec` per degradation atom, registered where it is defined.

The pattern is BasicSR's ``basicsr/utils/registry.py`` (a named :class:`Registry`, a ``register`` call that
refuses a duplicate name). Everything that used to list the atoms by hand is derived from the specs:

* the atom names and the canonical order of a setting's name (:func:`canonical_key`);
* the application chain of each modality (``stage``);
* recipe validation of parameter ranges (:func:`range_problems`, from each :class:`Param`'s schema, no draws);
* contact-sheet labels (:meth:`AtomSpec.describe`), the albumentations transforms (:mod:`demmi_rf.albu`), the
  model's multi-hot label vector (:func:`label_order`; :mod:`demmi_rf.torch.atoms`) and the cascade's dispatch
  (:mod:`demmi_rf.baselines.cascade`, by ``family``).

Orders (all derived, none depends on which atoms are installed or in which order they registered):

* **application** within a modality: ascending ``stage`` (v1: haze 10 < defocus 20 < noise 30 on VIS; stripe 30 on
  IR). Two atoms of different families may not share a modality and a stage: the physical order must be explicit;
* **canonical setting name**: VIS before IR, then *descending* stage, then name, i.e. the name reads like a function
  composition, outermost first: ``noise50+defocus+haze`` is noise(defocus(haze(x))). For v1 this is exactly
  ``noise15, noise25, noise50, defocus, haze, stripe``;
* **label vector**: ascending ``label_index`` (v1: noise15 0, noise25 1, noise50 2, haze 3, defocus 4, stripe 5,
  TG-ECNet's order), then atoms without one in canonical order.

At most one atom of each ``family`` may appear in a setting (v1: one noise level).

Third-party atoms: :func:`register_atom` (documented in ``docs/degradations.md``, section "Adding an atom"), or
an entry point in the group ``demmi_rf.atoms`` whose object is an :class:`AtomSpec`, a sequence of them, or a
module that registers its atoms on import. Entry points are loaded once, lazily, on the first lookup; one that
fails to load is skipped with a :class:`RuntimeWarning` naming it (the rest of the toolkit keeps working).
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import AtomRegistryError, RecipeError
from ..rng import Stream

__all__ = [
    "AtomSpec", "Param", "Registry", "ATOMS", "FIXED", "UNIFORM", "CHOICE", "INTEGER", "MODALITIES", "CLEAN",
    "ENTRY_POINT_GROUP",
    "STAGE_SCENE", "STAGE_OPTICS", "STAGE_SENSOR", "STAGE_PROCESSING", "register_atom", "unregister_atom",
    "canonical_key", "label_order", "range_problems", "check_ranges", "default_ranges", "codec_libraries",
]

CLEAN = "clean"
MODALITIES = ("vis", "ir")
ENTRY_POINT_GROUP = "demmi_rf.atoms"

#: how a recipe range is drawn: a number, no draw
FIXED = "fixed"
#: a number (fixed) or ``[a, b]``: ``a + (b - a)·u``, one :meth:`demmi_rf.rng.Stream.uniform` draw u
UNIFORM = "uniform"
#: an integer (fixed) or a non-empty list of integers: a uniform choice, one :meth:`~demmi_rf.rng.Stream.below`
CHOICE = "choice"
#: an integer (fixed) or ``[a, b]`` of integers: every integer of a..b (both included) equally likely,
#: ``a + k`` with k one :meth:`~demmi_rf.rng.Stream.below` (b − a + 1) draw; the same value, from the same word,
#: as a :data:`CHOICE` among ``[a, a + 1, ..., b]``
INTEGER = "integer"
_KINDS = (FIXED, UNIFORM, CHOICE, INTEGER)
_INTEGER_KINDS = (CHOICE, INTEGER)
#: the widest integer range one ``below`` draw covers
MAX_INTEGER_SPAN = 2**32

#: suggested stages of the physical chain (any integer works; these leave room in between)
STAGE_SCENE, STAGE_OPTICS, STAGE_SENSOR, STAGE_PROCESSING = 10, 20, 30, 40

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Param:
    """The schema of one parameter of an atom's recipe table ``[degradations.<atom>]``.

    ``kind`` says how a recipe value is drawn (:data:`FIXED`, :data:`UNIFORM`, :data:`CHOICE`, :data:`INTEGER`);
    every value (a bound of a range, each choice) must lie in the valid interval ``[lo, hi]``; ``default`` is the
    range used when no recipe is given (for the v1 atoms: the ``demmi-rf-v1`` recipe's value); ``doc`` one line
    for humans. The integer kinds (:data:`CHOICE`, :data:`INTEGER`) take integer values only and their bounds
    ``lo``, ``hi`` must be integers (or infinite).
    """

    name: str
    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    default: Any = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise AtomRegistryError(f"parameter {self.name!r}: kind must be one of {', '.join(_KINDS)}, "
                                    f"got {self.kind!r}")
        if not (_is_number(self.lo) and _is_number(self.hi)):
            raise AtomRegistryError(f"parameter {self.name!r}: the valid interval's bounds must be numbers, got "
                                    f"[{self.lo!r}, {self.hi!r}]")
        if not (self.lo <= self.hi):
            raise AtomRegistryError(f"parameter {self.name!r}: empty valid interval [{self.lo}, {self.hi}]")
        if self.kind in _INTEGER_KINDS:
            for bound in (self.lo, self.hi):
                if not (_is_int(bound) or (isinstance(bound, float) and (math.isinf(bound) or bound.is_integer()))):
                    raise AtomRegistryError(f"parameter {self.name!r}: a {self.kind} parameter takes integers, so "
                                            f"its valid interval's bounds must be integers, got {bound!r}")

    @property
    def type(self) -> type:
        """``int`` for the integer kinds (:data:`CHOICE`, :data:`INTEGER`), ``float`` otherwise (the type of a drawn
        value)."""
        return int if self.kind in _INTEGER_KINDS else float

    def problem(self, value: Any, atom: str) -> str | None:
        """Why ``value`` is not a valid range for this parameter (a message naming
        ``degradations.<atom>.<name>``), or None."""
        where = f"degradations.{atom}.{self.name}"
        if self.kind == FIXED:
            if not _is_number(value):
                return f"{where} must be a number, got {value!r}"
            return self._outside(float(value), where)
        if self.kind == UNIFORM:
            if _is_number(value):
                return self._outside(float(value), where)
            if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(x) for x in value):
                a, b = float(value[0]), float(value[1])
                if not a <= b:
                    return f"{where}: range [{a}, {b}] has its bounds reversed (low > high)"
                return self._outside(a, where) or self._outside(b, where)
            return f"{where} must be a number or [low, high], got {value!r}"
        if self.kind == INTEGER:
            if _is_int(value):
                return self._outside(int(value), where)
            if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(x) for x in value):
                a, b = int(value[0]), int(value[1])
                if not a <= b:
                    return f"{where}: integer range [{a}, {b}] has its bounds reversed (low > high)"
                if b - a + 1 > MAX_INTEGER_SPAN:
                    return f"{where}: integer range [{a}, {b}] spans more than 2**32 values"
                return self._outside(a, where) or self._outside(b, where)
            return f"{where} must be an integer or [low, high] of integers, got {value!r}"
        if _is_int(value):
            return self._outside(int(value), where)
        if isinstance(value, (list, tuple)) and value and all(_is_int(x) for x in value):
            for x in value:
                bad = self._outside(int(x), where)
                if bad:
                    return bad
            return None
        return f"{where} must be an integer or a non-empty list of integers, got {value!r}"

    def _outside(self, v: float, where: str) -> str | None:
        if not (self.lo <= v <= self.hi) or v != v:
            return f"{where}: {v} is outside the valid interval [{self.lo}, {self.hi}]"
        return None

    def check(self, value: Any, atom: str) -> None:
        """:class:`~demmi_rf.errors.RecipeError` when :meth:`problem` finds one."""
        bad = self.problem(value, atom)
        if bad:
            raise RecipeError(bad)


@dataclass(frozen=True)
class AtomSpec:
    """Everything the toolkit knows about one atom.

    Attributes:
        name: the atom's name in settings (lower case letters, digits, ``_``, ``-``), e.g. ``"haze"``.
        family: the implementing model; at most one atom per family in a setting (``noise15/25/50``: ``noise``).
            The cascade baseline dispatches on it.
        modality: ``"vis"`` or ``"ir"``.
        stage: position in the modality's physical chain (ascending = applied first; :data:`STAGE_SCENE` ...).
        params: the parameter schema of its recipe table.
        draw: ``draw(stream, image, ranges, atom=name, **kw) -> dict``: the per-sample scalar parameters (plain
            JSON values) drawn from ``ranges`` with a :class:`demmi_rf.rng.Stream`.
        apply: ``apply(image, stream, inplace=False, **params) -> ndarray``: the model on a float32 0-255 image,
            no clipping or rounding; any per-pixel randomness from ``stream``.
        summary: one line describing the model (docs, ``--help``).
        label: contact-sheet text, a :meth:`str.format` template over the drawn parameters
            (``"haze b={beta:.2f}"``); empty = the atom's name.
        label_index: position in the model's multi-hot label vector (v1: 0-5); None = after the indexed atoms.
        severity: the severity ladder, one recipe table (param -> range) per level, mildest first (optional).
        random_apply: whether ``apply`` draws from the stream (noise, stripe) or is a deterministic function of
            the image and the drawn parameters (haze, defocus).
        codec: None for a portable atom (its bytes follow from the toolkit's own arithmetic, the same on every
            machine: section 3 of ``docs/degradations.md``); for a *codec-dependent* atom, whose bytes depend on
            the build of a third-party codec library (``jpeg``: OpenCV's libjpeg-turbo), a function
            ``codec() -> str`` naming that library as the running process has it, to be recorded beside the
            data (:func:`codec_libraries`).
        apply_uint8: optional fast path for a chain of this atom alone on a uint8 image:
            ``apply_uint8(image, stream, **params) -> uint8`` must return exactly
            ``quantize(apply(image as float32, stream, **params))`` (the composition's clip and round) and
            consume the same draws; :func:`demmi_rf.degrade` uses it when the atom is the only one of its
            modality's chain, calling ``draw`` with the uint8 image (so an atom with a fast path draws the same
            parameters from a uint8 and a float32 image; ``tests/test_atoms_extended.py`` checks both for every
            shipped atom).
    """

    name: str
    family: str
    modality: str
    stage: int
    params: tuple[Param, ...]
    draw: Callable[..., dict]
    apply: Callable[..., np.ndarray]
    summary: str = ""
    label: str = ""
    label_index: int | None = None
    severity: tuple[Mapping[str, Any], ...] = field(default=())
    random_apply: bool = True
    codec: Callable[[], str] | None = None
    apply_uint8: Callable[..., np.ndarray] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "severity", tuple(self.severity))
        problems = _spec_problems(self)
        if problems:
            raise AtomRegistryError(f"atom spec {self.name!r}: " + "; ".join(problems))

    # --- derived --------------------------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"atom {self.name!r} has no parameter {name!r} (has: {', '.join(self.param_names)})")

    @property
    def codec_dependent(self) -> bool:
        """Whether the atom's bytes depend on a codec library's build (``codec`` is set), not only on the toolkit."""
        return self.codec is not None

    @property
    def module(self) -> ModuleType:
        """The module that defines ``draw`` (for the v1 atoms ``demmi_rf.degradations.<family>``)."""
        return sys.modules[self.draw.__module__]

    @property
    def default_ranges(self) -> dict[str, Any]:
        """``{param: default range}`` (a fresh copy; lists stay lists)."""
        return {p.name: (list(p.default) if isinstance(p.default, (list, tuple)) else p.default)
                for p in self.params}

    def range_problems(self, ranges: Any) -> list[str]:
        """Every problem of a recipe table for this atom, from the schema alone (nothing is drawn): not a table,
        a missing or unknown parameter, a value of the wrong shape or outside its valid interval."""
        atom = self.name
        if not isinstance(ranges, Mapping):
            return [f"degradations.{atom} must be a table of parameters, got {type(ranges).__name__}"]
        problems = []
        for key in ranges:
            if key not in self.param_names:
                problems.append(f"degradations.{atom}: unknown parameter {key!r} "
                                f"(parameters: {', '.join(self.param_names) or 'none'})")
        for p in self.params:
            if p.name not in ranges:
                problems.append(f"degradations.{atom}: missing parameter {p.name!r} "
                                f"(have: {', '.join(map(str, ranges)) or 'none'})")
                continue
            bad = p.problem(ranges[p.name], atom)
            if bad:
                problems.append(bad)
        return problems

    def describe(self, params: Mapping[str, Any]) -> str:
        """The contact-sheet label of drawn ``params`` (``label`` formatted; the name when there is none)."""
        if not self.label:
            return self.name
        try:
            return self.label.format(**params)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            return self.name

    # --- the two calls (a numpy Generator is wrapped in a Stream once here) ---------------------------------
    def run(self, image: np.ndarray, stream: Any, ranges: Mapping[str, Any], **kw: Any) -> tuple[np.ndarray, dict]:
        """``draw`` then ``apply`` with one :class:`~demmi_rf.rng.Stream`: returns ``(float32 image, params)``.
        ``kw`` (e.g. haze ``depth=``) goes to both; ``inplace=True`` lets ``apply`` reuse a float32 buffer."""
        stream = as_stream(stream)
        inplace = kw.pop("inplace", False)
        params = self.draw(stream, image, ranges, atom=self.name, **kw)
        return self.apply(image, stream, inplace=inplace, **params, **kw), params


def as_stream(rng: Any) -> Any:
    """A :class:`demmi_rf.rng.Stream` for ``rng`` (a Stream is returned as is, a numpy Generator wrapped)."""
    if isinstance(rng, Stream):
        return rng
    if isinstance(rng, np.random.Generator):
        return Stream(rng)
    raise TypeError(f"an atom draws from a demmi_rf.rng.Stream (or a numpy Generator), got {type(rng).__name__}")


def _spec_problems(spec: AtomSpec) -> list[str]:
    problems = []
    if not isinstance(spec.name, str) or not spec.name or not set(spec.name) <= _NAME_CHARS \
            or spec.name == CLEAN or not spec.name[0].isalpha():
        problems.append("name must be a non-empty string of a-z, 0-9, '_' or '-' starting with a letter, not "
                        f"{CLEAN!r}")
    if not isinstance(spec.family, str) or not spec.family:
        problems.append("family must be a non-empty string")
    if spec.modality not in MODALITIES:
        problems.append(f"modality must be one of {', '.join(MODALITIES)}, got {spec.modality!r}")
    if not _is_int(spec.stage):
        problems.append(f"stage must be an integer, got {spec.stage!r}")
    if spec.label_index is not None and (not _is_int(spec.label_index) or spec.label_index < 0):
        problems.append(f"label_index must be a non-negative integer or None, got {spec.label_index!r}")
    if not callable(spec.draw) or not callable(spec.apply):
        problems.append("draw and apply must be callables")
    if spec.codec is not None and not callable(spec.codec):
        problems.append(f"codec must be None (portable) or a callable naming the codec library, got {spec.codec!r}")
    if spec.apply_uint8 is not None and not callable(spec.apply_uint8):
        problems.append(f"apply_uint8 must be None or a callable, got {spec.apply_uint8!r}")
    names = [p.name for p in spec.params if isinstance(p, Param)]
    if len(names) != len(spec.params):
        problems.append("params must be Param records")
    elif len(set(names)) != len(names):
        problems.append(f"parameter names repeat: {names}")
    else:
        defaults = {p.name: p.default for p in spec.params}
        for p in spec.params:
            bad = p.problem(p.default, spec.name if isinstance(spec.name, str) else "?")
            if bad:
                problems.append(f"default {bad}")
        for level, table in enumerate(spec.severity, 1):
            if not isinstance(table, Mapping):
                problems.append(f"severity level {level} must be a table of ranges")
                continue
            merged = {**defaults, **table}
            for bad in AtomSpec.range_problems(spec, merged):
                problems.append(f"severity level {level}: {bad}")
    return problems


def canonical_key(spec: AtomSpec) -> tuple[int, int, str]:
    """Sort key of the canonical setting name: VIS first, then descending stage, then name (see module doc)."""
    return (MODALITIES.index(spec.modality), -int(spec.stage), spec.name)


class Registry:
    """A named table of :class:`AtomSpec` (BasicSR's registry pattern): :meth:`register` refuses a duplicate
    name (:class:`~demmi_rf.errors.AtomRegistryError`), lookups load the ``demmi_rf.atoms`` entry points once."""

    def __init__(self, name: str, entry_point_group: str | None = None, lazy: Mapping[str, str] | None = None):
        self.name = name
        self._specs: dict[str, AtomSpec] = {}
        # atom name -> module that registers it on import: atoms that ship with the package but are loaded only
        # when something names them (so they do not enter every v1 user's atom list and label vector)
        self._lazy = dict(lazy or {})
        self._group = entry_point_group
        self._plugins_loaded = entry_point_group is None
        self._lock = threading.RLock()
        self._plugin_errors: list[str] = []
        #: bumped by every register / unregister: caches of parsed settings key on it (demmi_rf.settings)
        self.generation = 0

    def register(self, spec: AtomSpec) -> AtomSpec:
        """Add ``spec``; returns it (usable on a module-level spec). Refuses a name already registered, a second
        label index, or another family at an occupied (modality, stage)."""
        if not isinstance(spec, AtomSpec):
            raise AtomRegistryError(f"{self.name}: register() takes an AtomSpec, got {type(spec).__name__}")
        with self._lock:
            old = self._specs.get(spec.name)
            if old is not None:
                raise AtomRegistryError(f"{self.name}: an atom named {spec.name!r} is already registered "
                                        f"(family {old.family!r}); choose another name")
            for other in self._specs.values():
                if spec.label_index is not None and other.label_index == spec.label_index:
                    raise AtomRegistryError(f"{self.name}: atom {spec.name!r}: label index {spec.label_index} is "
                                            f"already {other.name!r}'s")
                if (other.modality, other.stage) == (spec.modality, spec.stage) and other.family != spec.family:
                    raise AtomRegistryError(
                        f"{self.name}: atom {spec.name!r}: stage {spec.stage} of the {spec.modality} chain is "
                        f"already {other.name!r}'s (family {other.family!r}); choose a stage before or after it"
                    )
            self._specs[spec.name] = spec
            self.generation += 1
        return spec

    def unregister(self, name: str) -> AtomSpec:
        """Remove and return the atom ``name`` (for tests and plugin reloads)."""
        with self._lock:
            try:
                spec = self._specs.pop(name)
            except KeyError:
                raise AtomRegistryError(f"{self.name}: no atom named {name!r} to unregister") from None
            self.generation += 1
            return spec

    def _ensure_plugins(self) -> None:
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True  # before loading: a plugin may look atoms up while it registers
            self._plugin_errors = load_entry_points(self, self._group or ENTRY_POINT_GROUP)

    def reload_plugins(self) -> list[str]:
        """Load the entry points again (atoms already registered are kept); returns the load problems."""
        with self._lock:
            self._plugins_loaded = False
        self._ensure_plugins()
        return list(self._plugin_errors)

    @property
    def plugin_errors(self) -> tuple[str, ...]:
        """Entry points that failed to load (each also reported as a RuntimeWarning)."""
        self._ensure_plugins()
        return tuple(self._plugin_errors)

    def get(self, name: str) -> AtomSpec:
        """The spec called ``name`` (KeyError when unknown; :func:`demmi_rf.degradations.get` gives the
        user-facing :class:`~demmi_rf.errors.SettingError`)."""
        self._ensure_plugins()
        if isinstance(name, str) and name not in self._specs and name in self._lazy:
            module = importlib.import_module(self._lazy[name])  # registers it on first import
            spec = getattr(module, "SPEC", None)
            if name not in self._specs and isinstance(spec, AtomSpec) and spec.name == name:
                self.register(spec)  # imported before, then unregistered (tests do that): register it again
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        try:
            self.get(name)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return False
        return True

    def available(self) -> tuple[str, ...]:
        """Registered names plus the shipped atoms that load on first use (for messages and listings)."""
        self._ensure_plugins()
        return tuple(sorted(set(self._specs) | set(self._lazy)))

    def specs(self) -> tuple[AtomSpec, ...]:
        """Every spec in canonical setting-name order."""
        self._ensure_plugins()
        return tuple(sorted(self._specs.values(), key=canonical_key))

    def __iter__(self) -> Iterator[AtomSpec]:
        return iter(self.specs())

    def __len__(self) -> int:
        self._ensure_plugins()
        return len(self._specs)


def load_entry_points(registry: Registry, group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Load every entry point of ``group`` into ``registry`` (sorted by distribution and name, so the outcome
    does not depend on the order of ``sys.path``). The object may be an :class:`AtomSpec`, a sequence of them
    or a module that registered its atoms on import; a spec already registered (the module registered it) is
    not registered twice. Returns one message per entry point that failed, each also warned."""
    from importlib.metadata import entry_points  # noqa: PLC0415 - only when a lookup needs the plugins

    errors: list[str] = []
    try:
        found = list(entry_points(group=group))
    except Exception as exc:  # pragma: no cover - a broken metadata folder on sys.path
        found = []
        errors.append(f"entry points of group {group!r} could not be listed: {exc}")
    seen: set[tuple[str, str]] = set()
    for ep in sorted(found, key=lambda e: (getattr(e.dist, "name", "") or "", e.name, e.value)):
        if (ep.name, ep.value) in seen:  # the same distribution on sys.path twice
            continue
        seen.add((ep.name, ep.value))
        where = f"entry point {ep.name!r} = {ep.value!r} (group {group!r})"
        try:
            obj = ep.load()
            for spec in _specs_of(obj):
                if registry._specs.get(spec.name) is not spec:
                    registry.register(spec)
        except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, never fatal
            errors.append(f"{where}: {type(exc).__name__}: {exc}")
    for message in errors:
        warnings.warn(f"demmi_rf: degradation atom plugin skipped: {message}", RuntimeWarning, stacklevel=3)
    return errors


def _specs_of(obj: Any) -> list[AtomSpec]:
    import types  # noqa: PLC0415

    if isinstance(obj, AtomSpec):
        return [obj]
    if isinstance(obj, types.ModuleType):
        return []  # importing it registered its atoms
    if isinstance(obj, (list, tuple)) and all(isinstance(s, AtomSpec) for s in obj):
        return list(obj)
    raise AtomRegistryError(f"expected an AtomSpec, a list of them or a module, got {type(obj).__name__}")


#: atoms beyond v1 that ship with the package (issue 14; ``docs/degradations.md`` section 7): each registers when
#: its module is imported, which a lookup by name does on first use, in any process (pool and dask workers too)
SHIPPED_LAZY: dict[str, str] = {
    "lowlight": "demmi_rf.degradations.lowlight", "overexposure": "demmi_rf.degradations.exposure",
    "motion": "demmi_rf.degradations.motion", "rain": "demmi_rf.degradations.rain",
    "jpeg": "demmi_rf.degradations.jpeg", "lowcontrast": "demmi_rf.degradations.ir_contrast",
    "ir_noise": "demmi_rf.degradations.ir_noise", "stripe_gain": "demmi_rf.degradations.ir_stripe_gain",
}
#: the toolkit's atom registry
ATOMS = Registry("degradation atoms", ENTRY_POINT_GROUP, lazy=SHIPPED_LAZY)


def register_atom(spec: AtomSpec) -> AtomSpec:
    """Register ``spec`` in :data:`ATOMS` (the public API for third-party atoms); returns it."""
    return ATOMS.register(spec)


def unregister_atom(name: str) -> AtomSpec:
    """Remove an atom from :data:`ATOMS` (tests, plugin reloads); returns its spec."""
    return ATOMS.unregister(name)


def label_order(specs: Iterable[AtomSpec] | None = None) -> tuple[str, ...]:
    """Atom names in the model's label-vector order: ascending ``label_index``, then the rest canonically."""
    specs = ATOMS.specs() if specs is None else tuple(specs)
    indexed = sorted((s for s in specs if s.label_index is not None), key=lambda s: s.label_index)
    rest = sorted((s for s in specs if s.label_index is None), key=canonical_key)
    return tuple(s.name for s in (*indexed, *rest))


def range_problems(table: Any, used: Sequence[str] = ()) -> list[str]:
    """Problems of a recipe's ``degradations`` table, from the registered schemas (nothing is drawn): unknown
    atoms, malformed tables (:meth:`AtomSpec.range_problems`), and atoms in ``used`` without a table."""
    if not isinstance(table, Mapping):
        return [f"'degradations' must be a table of atoms, got {type(table).__name__}"]
    problems = []
    for atom in sorted(table, key=str):
        if atom not in ATOMS:
            from ..errors import did_you_mean  # noqa: PLC0415

            names = [s.name for s in ATOMS.specs()]
            problems.append(f"degradations: unknown atom {atom!r}{did_you_mean(str(atom), names)} "
                            f"(known: {', '.join(names)})")
            continue
        problems.extend(ATOMS.get(atom).range_problems(table[atom]))
    for atom in sorted(set(used)):
        if atom in ATOMS and atom not in table:
            problems.append(f"degradations: no parameters for atom {atom!r}, used by the settings")
    return problems


def check_ranges(table: Any, used: Sequence[str] = ()) -> None:
    """:class:`~demmi_rf.errors.RecipeError` listing :func:`range_problems`, if any."""
    problems = range_problems(table, used)
    if problems:
        raise RecipeError("; ".join(problems))


def codec_libraries(names: Iterable[str] | None = None) -> dict[str, str]:
    """``{atom: codec library}`` for the codec-dependent atoms among ``names`` (default: every registered atom), in
    canonical order, e.g. ``{"jpeg": "build-libjpeg-turbo (ver 3.1.2-70)"}``: what to record beside data built with
    them, since their bytes are reproducible only with the same codec build. Portable atoms are left out."""
    specs = ATOMS.specs() if names is None else tuple(sorted((ATOMS.get(n) for n in names), key=canonical_key))
    return {s.name: str(s.codec()) for s in specs if s.codec is not None}


def default_ranges(names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{atom: {param: default range}}`` for ``names`` (default: every registered atom). For the v1 atoms
    these are the ``demmi-rf-v1`` recipe's tables (a test checks that they agree)."""
    specs = ATOMS.specs() if names is None else tuple(ATOMS.get(n) for n in names)
    return {s.name: s.default_ranges for s in specs}
