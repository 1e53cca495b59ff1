"""DeMMI-RF degradations as albumentations transforms (optional extra: ``pip install demmi-rf[albu]``).

Each transform calls the very ``draw``/``apply`` functions that :func:`demmi_rf.degrade` uses, so a pipeline
gets the benchmark's formulas, with albumentations' own seeding:

    >>> import albumentations as A
    >>> from demmi_rf.albu import DemmiHaze, DemmiNoise
    >>> aug = A.Compose([DemmiHaze(), DemmiNoise(sigma=25)], seed=42)   # reproducible, like any A.Compose

* The transforms are derived from the atom registry (:mod:`demmi_rf.degradations.registry`): :class:`DemmiAtom`
  works for any registered atom, third-party ones included (``DemmiAtom("dim", gain=0.7)``); ``DemmiNoise``,
  ``DemmiHaze``, ``DemmiDefocus`` and ``DemmiStripe`` are its v1 forms with named arguments.
* Randomness comes only from the transform's ``self.random_generator`` (seeded by ``A.Compose(seed=...)``),
  read through a :class:`demmi_rf.rng.Stream`: first the atom's scalar parameters (in the atom's draw order),
  then, when an atom's ``apply`` draws (its spec's ``random_apply``: noise, stripe), one integer ``rng_seed``
  that seeds a fresh ``numpy.random.default_rng`` for the per-pixel / per-column draws. The applied parameters
  ``{"atom_params": [...], "rng_seed": ...}`` are therefore complete (``save_applied_params``,
  ``ReplayCompose``), and ``atom.apply(image, default_rng(rng_seed), **atom_params)`` reproduces the output.
* Parameter ranges default to the atoms' default ranges (for the v1 atoms: the ``demmi-rf-v1`` recipe's), or
  to a recipe's (``recipe=``); give a number (fixed) or a ``(low, high)`` / list (drawn) to override. They are
  checked against the atom's parameter schema when the transform is built. All values are on the 0-255 scale,
  whatever the image dtype.
* uint8 images: float32 arithmetic, clip and round half to even once at the end (as in ``degrade``).
  float32 images are taken as albumentations' [0, 1] convention: scaled by 255, degraded, scaled back and
  clipped to [0, 1] (no rounding).
* Differences from :func:`demmi_rf.degrade`: the random stream is albumentations', not the benchmark's
  ``(seed, pair, setting, modality)`` stream, so pixels differ from a built dataset (the distribution is
  the same); haze's A is the mean of the (first) input image; no user depth map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

try:
    import albumentations as A
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "demmi_rf.albu needs albumentations: pip install 'demmi-rf[albu]' (or albumentations>=1.4)"
    ) from exc

from .degradations import AtomSpec, as_stream, get
from .degradations._arrays import quantize
from .errors import RecipeError
from .settings import parse_setting

__all__ = ["DemmiAtom", "DemmiNoise", "DemmiHaze", "DemmiDefocus", "DemmiStripe", "DemmiSetting", "from_recipe"]

_RNG_SEED_HIGH = 2**63 - 1


def _range_value(v: Any) -> Any:
    """Normalise a user range: tuples become lists (the recipe's form); numbers stay numbers."""
    if isinstance(v, (tuple, list)):
        return [x.item() if isinstance(x, np.generic) else x for x in v]
    return v.item() if isinstance(v, np.generic) else v


class _DemmiTransform(A.ImageOnlyTransform):
    """A chain of DeMMI atoms applied to one image (base of every transform here)."""

    def __init__(self, p: float = 1.0):
        super().__init__(p=p)
        self._chain: list[tuple[AtomSpec, dict[str, Any]]] = []

    # --- configuration ---------------------------------------------------------------------------------
    def _set_chain(self, chain: Sequence[tuple[AtomSpec, Mapping[str, Any]]]) -> None:
        checked = []
        for atom, ranges in chain:
            ranges = {k: _range_value(v) for k, v in ranges.items()}
            problems = atom.range_problems(ranges)  # the schema: checked now, not at the first image
            if problems:
                raise RecipeError("; ".join(problems))
            checked.append((atom, ranges))
        self._chain = checked

    @staticmethod
    def _ranges(atom: str, overrides: Mapping[str, Any], recipe: str | None) -> dict[str, Any]:
        if recipe is None:
            base = get(atom).default_ranges
        else:
            from .recipe import load_recipe

            table = load_recipe(recipe).degradations
            if atom not in table:
                raise RecipeError(f"recipe {recipe!r} has no [degradations.{atom}] table")
            base = table[atom]
        out = dict(base)
        out.update({k: v for k, v in overrides.items() if v is not None})
        return out

    @property
    def needs_rng(self) -> bool:
        return any(atom.random_apply for atom, _ in self._chain)

    # --- albumentations protocol -----------------------------------------------------------------------
    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"] if "image" in data else data["images"][0]
        probe = _to_255(image)
        stream = as_stream(self.random_generator)
        drawn = [atom.draw(stream, probe, ranges, atom=atom.name) for atom, ranges in self._chain]
        seed = int(self.random_generator.integers(0, _RNG_SEED_HIGH)) if self.needs_rng else None
        return {"atom_params": drawn, "rng_seed": seed}

    def apply(self, img: np.ndarray, atom_params: list[dict[str, Any]], rng_seed: int | None, **_: Any):
        rng = as_stream(np.random.default_rng(rng_seed)) if rng_seed is not None else None
        work = _to_255(img)
        for (atom, _r), p in zip(self._chain, atom_params):
            work = atom.apply(work, rng, inplace=True, **p)
        return _from_255(work, img.dtype)


def _to_255(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32)
    if img.dtype == np.float32:
        return img * np.float32(255.0)
    raise TypeError(f"DeMMI transforms take uint8 (0-255) or float32 (0-1) images, got dtype {img.dtype}")


def _from_255(work: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return quantize(work)
    work *= np.float32(1.0 / 255.0)
    np.clip(work, 0.0, 1.0, out=work)
    return work


class DemmiAtom(_DemmiTransform):
    """Any registered atom (its spec's draw and apply): ``DemmiAtom("haze")``, ``DemmiAtom("noise25", sigma=(10,
    30))``, ``DemmiAtom("dim", gain=0.7)`` for a third-party atom. Keyword arguments override the parameter ranges
    (by the names of the atom's schema); the rest come from ``recipe`` or the atom's defaults."""

    def __init__(self, atom: str, recipe: str | None = None, p: float = 1.0, **ranges: Any):
        super().__init__(p=p)
        spec = get(atom)
        unknown = sorted(set(ranges) - set(spec.param_names))
        if unknown:
            raise RecipeError(f"atom {atom!r} has no parameter(s) {', '.join(unknown)} "
                              f"(parameters: {', '.join(spec.param_names)})")
        self.atom, self.recipe, self.ranges = atom, recipe, dict(ranges)
        self._set_chain([(spec, self._ranges(atom, ranges, recipe))])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("atom", "recipe", "ranges")

    def get_transform_init_args(self) -> dict[str, Any]:
        return {"atom": self.atom, "recipe": self.recipe, **self.ranges}


class DemmiNoise(_DemmiTransform):
    """Additive white Gaussian noise ``y = x + σ n`` (0-255 scale); ``sigma`` a number or ``(low, high)``
    (the benchmark's levels are 15, 25 and 50: ``from_recipe("noise50")``)."""

    def __init__(self, sigma: float | Sequence[float], p: float = 1.0):
        super().__init__(p=p)
        self.sigma = sigma
        self._set_chain([(get("noise25"), {"sigma": _range_value(sigma)})])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma",)


class DemmiHaze(_DemmiTransform):
    """Scattering-model haze ``I = J t + A (1 - t)``, A = mean(J), radial pseudo-depth (see
    :mod:`demmi_rf.degradations.haze`). Ranges default to the v1 recipe."""

    def __init__(
        self,
        beta: float | Sequence[float] | None = None,
        focal_x: float | Sequence[float] | None = None,
        focal_y: float | Sequence[float] | None = None,
        t_min: float | None = None,
        recipe: str | None = None,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.beta, self.focal_x, self.focal_y, self.t_min, self.recipe = beta, focal_x, focal_y, t_min, recipe
        over = {"beta": beta, "focal_x": focal_x, "focal_y": focal_y, "t_min": t_min}
        self._set_chain([(get("haze"), self._ranges("haze", over, recipe))])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("beta", "focal_x", "focal_y", "t_min", "recipe")


class DemmiDefocus(_DemmiTransform):
    """Disk defocus softened by a 3x3 Gaussian, reflect-101 borders; ``radius`` an int or a list of ints
    (uniform choice). Ranges default to the v1 recipe."""

    def __init__(
        self,
        radius: int | Sequence[int] | None = None,
        alias_sigma: float | None = None,
        recipe: str | None = None,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.radius, self.alias_sigma, self.recipe = radius, alias_sigma, recipe
        over = {"radius": radius, "alias_sigma": alias_sigma}
        self._set_chain([(get("defocus"), self._ranges("defocus", over, recipe))])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("radius", "alias_sigma", "recipe")


class DemmiStripe(_DemmiTransform):
    """IR column stripes ``y = x + o_c (+ g_c x)``; ``offset_std`` s (number or ``(low, high)``) and
    ``gain_std`` s_g. Ranges default to the v1 recipe."""

    def __init__(
        self,
        offset_std: float | Sequence[float] | None = None,
        gain_std: float | None = None,
        recipe: str | None = None,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.offset_std, self.gain_std, self.recipe = offset_std, gain_std, recipe
        over = {"offset_std": offset_std, "gain_std": gain_std}
        self._set_chain([(get("stripe"), self._ranges("stripe", over, recipe))])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("offset_std", "gain_std", "recipe")


class DemmiSetting(_DemmiTransform):
    """A whole setting's chain on one modality, e.g. ``DemmiSetting("noise50+defocus+haze")`` on VIS
    (haze -> defocus -> noise, rounded once at the end) or ``DemmiSetting("stripe", modality="ir")``."""

    def __init__(self, setting: str, modality: str = "vis", recipe: str | None = None, p: float = 1.0):
        super().__init__(p=p)
        self.setting, self.modality, self.recipe = setting, modality, recipe
        parsed = parse_setting(setting)
        chain = parsed.chain(modality)
        if not chain:
            raise ValueError(f"setting {parsed.name!r} changes nothing on {modality!r}")
        # an atom with a severity level (``haze.s3``) draws from that level laid over the recipe's table
        self._set_chain([(atom, parsed.atom_ranges(atom.name, {atom.name: self._ranges(atom.name, {}, recipe)}))
                         for atom in chain])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("setting", "modality", "recipe")


_V1_CLASSES = {"haze": DemmiHaze, "defocus": DemmiDefocus, "stripe": DemmiStripe}


def from_recipe(atom: str, recipe: str | None = None, p: float = 1.0) -> _DemmiTransform:
    """The transform for one atom with the recipe's ranges (``from_recipe("noise50")``); the atom's default
    ranges without a recipe. v1 atoms get their named class, any other registered atom a :class:`DemmiAtom`."""
    a = get(atom)
    if a.family == "noise" and a.name in ("noise15", "noise25", "noise50"):
        return DemmiNoise(sigma=_DemmiTransform._ranges(atom, {}, recipe)["sigma"], p=p)
    if a.name in _V1_CLASSES:
        return _V1_CLASSES[a.name](recipe=recipe, p=p)
    return DemmiAtom(atom, recipe=recipe, p=p)
