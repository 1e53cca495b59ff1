r"""The one seeded path for every random draw of the toolkit.

Benchmark spec section 4: every draw for a sample comes from its own generator, derived from
``(recipe seed, pair id, setting, modality)`` through :class:`numpy.random.SeedSequence` with a stable hash.

.. math::

    \text{key} = \operatorname{SHA-256}(\text{"demmi-rf/v1"} \,\|\, \text{seed} \,\|\, \text{pair id}
                 \,\|\, \text{setting} \,\|\, \text{modality}),
    \quad G = \text{PCG64}(\text{SeedSequence}(\text{key as eight 32-bit words}))

Python's ``hash`` is never used (it is salted per process), so the same inputs give the same stream on any
machine, in any process, in any order.

Every number the synthesis draws is a documented function of G's raw 64-bit words (``random_raw``, whose
output numpy keeps stable across versions, NEP 19), computed with exact or correctly rounded operations:

* :func:`uniform` — one word w gives (w >> 11)·2⁻⁵³ ∈ [0, 1) (the value of ``Generator.random()``);
* :func:`below` — a uniform integer in [0, n): Lemire's multiply-shift on the low 32 bits of a word (for a
  power-of-two n, the value that ``Generator.integers(n)`` returns as a generator's first 32-bit draw);
* :func:`demmi_rf.ziggurat.normal` — standard normals (the 256-layer ziggurat).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

from .kernel import compiled_routine

_DOMAIN = "demmi-rf/v1"
_SEP = "\x1f"  # ASCII unit separator: cannot occur in a pair id, a setting or a modality name


def seed_material(*parts: object) -> str:
    """The exact string hashed for ``parts`` (recorded in manifests so that anyone can re-derive a stream)."""
    return _SEP.join([_DOMAIN, *(str(p) for p in parts)])


def stable_words(*parts: object) -> list[int]:
    """Eight unsigned 32-bit words of SHA-256 over :func:`seed_material`."""
    return [int(w) for w in _stable_array(*parts)]


def _stable_array(*parts: object) -> np.ndarray:
    """:func:`stable_words` as a uint32 array (each word little-endian from the digest, on any byte order):
    ``SeedSequence`` takes a uint32 array as is, with no per-word conversion of a Python list (same words,
    same entropy, same state; about 20 µs less per generator)."""
    digest = hashlib.sha256(seed_material(*parts).encode("utf-8")).digest()
    return np.frombuffer(digest, dtype="<u4").astype(np.uint32)


def stable_unit(*parts: object) -> float:
    """A stable number in [0, 1) from ``parts`` (used e.g. for hash splits)."""
    w = stable_words(*parts)
    return ((w[0] << 21) ^ (w[1] >> 11)) / float(1 << 53)


def generator(seed: int, pair_id: str, setting: str, modality: str, *extra: object) -> np.random.Generator:
    """The generator for one (seed, pair, setting, modality) stream.

    ``setting`` must be the canonical setting name so that ``haze+noise50`` and ``noise50+haze`` agree.
    ``extra`` parts (none for a stored benchmark: then the key is exactly the v1 key above) are appended to the
    hashed material, e.g. ``("resample", dataset seed, epoch)`` for the fresh draws of
    :func:`resample_parts` (training with ``DeMMIDataset(..., resample="epoch")``).

    When the compiled kernel is built, the ``SeedSequence`` mixing runs there (:class:`_KeyedSeedSequence`, checked
    against numpy once per process): the same generator state, about 8 µs instead of about 40 per generator.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    words = _stable_array(int(seed), pair_id, setting, modality, *extra)
    seed_state = _seed_kernel()
    if seed_state is None:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
    state = np.empty(4, np.uint64)
    seed_state(words, state)
    return np.random.Generator(np.random.PCG64(_KeyedSeedSequence(words, state)))


class _KeyedSeedSequence(ISpawnableSeedSequence):
    """``numpy.random.SeedSequence(words)`` with the four uint64 words a PCG64 is seeded with computed by the
    compiled kernel (the same mixing, exact uint32 arithmetic; :func:`_seed_kernel`): the same generator state
    without the Cython object's ≈ 15 µs of set-up. Anything else (other state sizes, ``spawn``, ``entropy``,
    ``pool``...) is answered by a real ``SeedSequence(words)`` built on first use, and a pickle or copy *is*
    that real ``SeedSequence``."""

    def __init__(self, words: np.ndarray, state: np.ndarray) -> None:
        self._words, self._state, self._real = words, state, None

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words == 4 and dtype is np.uint64:  # what PCG64 asks for
            return self._state.copy()
        return self._sequence().generate_state(n_words, dtype)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        return self._sequence().spawn(n_children)

    def _sequence(self) -> np.random.SeedSequence:
        if self._real is None:
            self._real = np.random.SeedSequence(self._words)
        return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sequence(), name)

    def __reduce__(self) -> tuple:
        return self._sequence().__reduce__()

    def __repr__(self) -> str:
        return repr(self._sequence())


@functools.lru_cache(maxsize=1)
def _seed_kernel() -> Any:
    """The compiled kernel's ``seed_state(words, out)`` (``demmi_rf/_zigfast.c``: numpy's ``SeedSequence`` mixing
    and ``generate_state(4, np.uint64)``), or None: when the kernel is missing, when ``DEMMI_RF_NUMPY_ZIGGURAT=1``
    (every compiled routine's numpy path), or when it does not give numpy's state on a probe (checked once per
    process)."""
    seed_state = compiled_routine("seed_state")
    if seed_state is None:
        return None
    probe = np.random.default_rng(20261130)
    for n in (8, 8, 8, 1, 3, 5, 12):
        words = probe.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        state = np.empty(4, np.uint64)
        seed_state(words, state)
        if not np.array_equal(state, np.random.SeedSequence(words).generate_state(4, np.uint64)):
            return None
    return seed_state


RESAMPLE = "resample"


def resample_parts(dataset_seed: int, epoch: int) -> tuple[object, ...]:
    r"""The extra key parts of a fresh draw (training with ``resample="epoch"``): ``("resample", dataset seed,
    epoch)``, so that

    .. math::

        \text{key} = \operatorname{SHA-256}(\text{"demmi-rf/v1"} \,\|\, \text{seed} \,\|\, \text{pair id}
                     \,\|\, \text{setting} \,\|\, \text{modality} \,\|\, \text{"resample"} \,\|\,
                     \text{dataset seed} \,\|\, \text{epoch})

    (parts joined by U+001F, integers in decimal). The stored benchmark's key has no extra parts, so no fresh
    draw can coincide with it by construction (the hashed strings differ)."""
    for name, value in (("dataset seed", dataset_seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return (RESAMPLE, int(dataset_seed), int(epoch))


def uniform(rng: np.random.Generator) -> float:
    """A uniform number in [0, 1): (w >> 11) · 2⁻⁵³ for the next raw word w (53 random bits, exact)."""
    return (int(rng.bit_generator.random_raw()) >> 11) * 2.0**-53


def below(rng: np.random.Generator, n: int) -> int:
    r"""A uniform integer in [0, n) for 1 ≤ n ≤ 2³², without bias (Lemire, *Fast random integer generation in
    an interval*, ACM TOMACS 29(1), 2019):

    .. math:: m = x\,n,\quad x = w \bmod 2^{32}\ \text{(the low half of the next raw word w)},\qquad
              \text{result} = \lfloor m / 2^{32} \rfloor

    drawing a new word while m mod 2³² < (2³² − n) mod n (never for a power of two).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 2**32:
        raise ValueError(f"below() needs an integer n in [1, 2**32], got {n!r}")
    n = int(n)
    reject_below = (2**32 - n) % n
    while True:
        m = (int(rng.bit_generator.random_raw()) & 0xFFFFFFFF) * n
        if m & 0xFFFFFFFF >= reject_below:
            return m >> 32


class Stream:
    """The narrow random stream a degradation atom receives: nothing but documented functions of raw words.

    It wraps one sample stream's generator (:func:`generator`) and exposes only the portable draws, so an atom
    cannot reach numpy's version-dependent samplers (``Generator.normal``, ``.integers`` on other sizes,
    ``.choice``...) by accident: the portability rule is enforced by the type an atom is given.

    * :meth:`uniform` — (w >> 11)·2⁻⁵³ ∈ [0, 1) for the next raw word w (:func:`uniform`);
    * :meth:`uniforms` — n of those, in stream order (vectorised; the same values as n calls of :meth:`uniform`);
    * :meth:`below` — an unbiased integer in [0, n) (:func:`below`, Lemire's method);
    * :meth:`normal` — float32 N(0, scale²) draws (:func:`demmi_rf.ziggurat.normal`).

    Draws are consumed in call order; two streams built from the same generator state give the same values.
    """

    __slots__ = ("_rng",)

    def __init__(self, rng: np.random.Generator):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"Stream wraps a numpy Generator, got {type(rng).__name__}")
        self._rng = rng

    def uniform(self) -> float:
        """One uniform number in [0, 1) (53 random bits, exact)."""
        return uniform(self._rng)

    def uniforms(self, n: int) -> np.ndarray:
        """``n`` uniform float64 numbers in [0, 1): ``(w >> 11) · 2⁻⁵³`` for the next n raw words, in order."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"uniforms() needs a non-negative integer count, got {n!r}")
        words = self._rng.bit_generator.random_raw(int(n)).astype(np.uint64, copy=False)
        return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def below(self, n: int) -> int:
        """A uniform integer in [0, n), 1 ≤ n ≤ 2³² (no bias)."""
        return below(self._rng, n)

    def normal(self, shape: int | tuple[int, ...], scale: float = 1.0, *, add_to: np.ndarray | None = None
               ) -> np.ndarray:
        """float32 normals N(0, scale²) of ``shape`` from the toolkit's ziggurat sampler.

        With ``add_to`` (a writeable C-contiguous float32 array of that shape) the draws are added to it in place
        and it is returned: the same bits as ``add_to + normal(shape, scale)`` without the temporary array
        (:func:`demmi_rf.ziggurat.add_normal`)."""
        ziggurat = _ziggurat()
        if add_to is not None:
            want = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
            if add_to.shape != want:
                raise ValueError(f"normal(add_to=...) needs an array of shape {want}, got {add_to.shape}")
            return ziggurat.add_normal(self._rng, add_to, scale)
        return ziggurat.normal(self._rng, shape, scale)


def _ziggurat() -> Any:
    """:mod:`demmi_rf.ziggurat`, imported on first use (it imports OpenCV) and then kept (no per-call import)."""
    global _ZIGGURAT  # noqa: PLW0603
    if _ZIGGURAT is None:
        from . import ziggurat  # noqa: PLC0415

        _ZIGGURAT = ziggurat
    return _ZIGGURAT


_ZIGGURAT: Any = None
