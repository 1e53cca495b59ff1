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

The words are numpy's PCG64 words (O'Neill, *PCG: A family of simple fast space-efficient statistically good
algorithms for random number generation*, 2014; XSL-RR 128/64):

.. math:: s_{k+1} = s_k M + c \bmod 2^{128}, \qquad
          w_k = \operatorname{rotr}_{64}(\operatorname{hi}(s_{k+1}) \oplus \operatorname{lo}(s_{k+1}),\;
          s_{k+1} \gg 122)

(M the 128-bit PCG multiplier, c = 2·initseq + 1 the increment). Where the optional compiled kernel is built,
:func:`keyed_stream` and :func:`raw_words` / :func:`raw_below` compute these words there (checked against
numpy's ``random_raw`` once per process; the same words, and the generator left at the same position).
"""

from __future__ import annotations

import functools
import hashlib
import sys
from typing import Any

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

from .kernel import compiled_module, compiled_routine

_DOMAIN = "demmi-rf/v1"
_SEP = "\x1f"  # ASCII unit separator: cannot occur in a pair id, a setting or a modality name


def seed_material(*parts: object) -> str:
    """The exact string hashed for ``parts`` (recorded in manifests so that anyone can re-derive a stream)."""
    return _SEP.join((_DOMAIN, *map(str, parts)))


def stable_words(*parts: object) -> list[int]:
    """Eight unsigned 32-bit words of SHA-256 over :func:`seed_material`."""
    return [int(w) for w in _stable_array(*parts)]


def _stable_array(*parts: object) -> np.ndarray:
    """:func:`stable_words` as a uint32 array (each word little-endian from the digest, on any byte order):
    ``SeedSequence`` takes a uint32 array as is, with no per-word conversion of a Python list (same words,
    same entropy, same state; about 20 µs less per generator)."""
    return _words_of(hashlib.sha256(seed_material(*parts).encode("utf-8")).digest())


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
    return keyed_generator(seed_material(int(seed), pair_id, setting, modality, *extra))


def keyed_generator(material: str) -> np.random.Generator:
    """``PCG64(SeedSequence(SHA-256(material) as eight little-endian 32-bit words))`` in a Generator: the
    generator of the stream whose :func:`seed_material` is ``material`` (:func:`generator` after its checks)."""
    return _generator_of(hashlib.sha256(material.encode("utf-8")).digest())


def _generator_of(digest: bytes) -> np.random.Generator:
    """The Generator seeded with the words of a SHA-256 ``digest`` (:func:`keyed_generator`)."""
    seed_state = _seed_kernel()
    if seed_state is None:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(_words_of(digest))))
    state = np.empty(4, np.uint64)
    # the kernel reads native uint32 words: the digest's bytes are the little-endian words as they are
    seed_state(digest if _LITTLE_ENDIAN else _words_of(digest), state)
    return np.random.Generator(np.random.PCG64(_KeyedSeedSequence(digest, state)))


_LITTLE_ENDIAN = sys.byteorder == "little"


def _words_of(digest: bytes) -> np.ndarray:
    """The eight 32-bit words of a SHA-256 digest, each little-endian (on any byte order), as a native uint32
    array: ``SeedSequence`` takes it as is, with no per-word conversion of a Python list."""
    return np.frombuffer(digest, dtype="<u4").astype(np.uint32)


class _KeyedSeedSequence(ISpawnableSeedSequence):
    """``numpy.random.SeedSequence(words of digest)`` with the four uint64 words a PCG64 is seeded with computed by
    the compiled kernel (the same mixing, exact uint32 arithmetic; :func:`_seed_kernel`): the same generator state
    without the Cython object's ≈ 15 µs of set-up. Anything else (a second state request, other state sizes,
    ``spawn``, ``entropy``, ``pool``...) is answered by a real ``SeedSequence(words)`` built on first use, and a
    pickle or copy *is* that real ``SeedSequence``."""

    def __init__(self, digest: bytes, state: np.ndarray) -> None:
        self._digest, self._state, self._real = digest, state, None

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        state = self._state
        if state is not None and n_words == 4 and dtype is np.uint64:  # what PCG64 asks for, once
            self._state = None  # handed over: a later request is answered by the real sequence
            return state
        return self._sequence().generate_state(n_words, dtype)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        return self._sequence().spawn(n_children)

    def _sequence(self) -> np.random.SeedSequence:
        if self._real is None:
            self._real = np.random.SeedSequence(_words_of(self._digest))
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


#: below this many words a bit generator's own ``random_raw`` is quicker than handing the state over
_KERNEL_MIN_WORDS = 256
_MASK64 = (1 << 64) - 1


def raw_words(bitgen: np.random.BitGenerator, n: int) -> np.ndarray:
    """The next ``n`` raw 64-bit words of ``bitgen`` as a uint64 array: ``bitgen.random_raw(n)``, the same words
    and the same position afterwards. For a PCG64 and n >= 256 the compiled kernel's ``pcg64_fill`` computes
    them (:func:`_pcg_kernel`, checked against numpy once per process) on four interleaved chains: about 1.3 times
    faster than numpy's ``random_raw`` on this project's VM (the 128-bit multiplications bound both)."""
    kernel = _pcg_kernel() if n >= _KERNEL_MIN_WORDS and type(bitgen) is np.random.PCG64 else None
    if kernel is None:
        return bitgen.random_raw(n)
    out = np.empty(n, np.uint64)
    _run_on_state(bitgen, kernel.pcg64_fill, out)
    return out


def raw_below(bitgen: np.random.BitGenerator, n: int, threshold: int, out: np.ndarray) -> np.ndarray:
    """``out[:] = random_raw(n) < threshold`` for ``0 <= threshold < 2**64`` into a C-contiguous bool ``out`` of
    n elements (the same words consumed), without the uint64 temporary when the compiled kernel's
    ``pcg64_below`` is usable (:func:`raw_words`' conditions). Returns ``out``."""
    _check_mask(out, n)
    kernel = _pcg_kernel() if n >= _KERNEL_MIN_WORDS and type(bitgen) is np.random.PCG64 else None
    if kernel is not None:
        _run_on_state(bitgen, kernel.pcg64_below, threshold, out.view(np.uint8))
        return out
    limit = np.uint64(threshold)
    for start in range(0, n, _BELOW_BLOCK):  # a uint64 temporary that stays in L2, not one of n words
        stop = min(n, start + _BELOW_BLOCK)
        np.less(bitgen.random_raw(stop - start), limit, out=out[start:stop])
    return out


def _check_mask(out: np.ndarray, n: int) -> None:
    """``ValueError`` unless ``out`` can hold :func:`raw_below`'s mask of ``n`` words."""
    if out.dtype != np.bool_ or out.size != n or not out.flags.c_contiguous:
        raise ValueError(f"raw_below needs a C-contiguous bool array of {n} elements")


def _count(n: Any, what: str) -> int:
    """``n`` as an int, or ``ValueError`` naming ``what`` unless it is a non-negative integer (not a bool)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what}() needs a non-negative integer count, got {n!r}")
    return int(n)


#: words per block of :func:`raw_below`'s numpy path (no effect on the values: the stream's order is kept)
_BELOW_BLOCK = 1 << 15


def _run_on_state(bitgen: np.random.PCG64, routine: Any, *args: Any) -> None:
    """``routine(state, *args)`` on the PCG64's 128-bit state and increment as 4 uint64 words (state high, state
    low, inc high, inc low), then the advanced state written back (the increment and numpy's buffered 32-bit
    word, ``has_uint32`` / ``uinteger``, unchanged: ``random_raw`` does not touch them), under the generator's
    lock as ``random_raw`` takes it."""
    with bitgen.lock:
        full = bitgen.state
        inner = full["state"]
        s, inc = inner["state"], inner["inc"]
        words = np.array([s >> 64, s & _MASK64, inc >> 64, inc & _MASK64], dtype=np.uint64)
        routine(words, *args)
        _set_position(bitgen, full, words)


def _set_position(bitgen: np.random.PCG64, full: dict[str, Any], words: np.ndarray) -> None:
    """Move ``bitgen`` to the 128-bit state ``words[0]`` (high), ``words[1]`` (low): ``full`` is its ``state``
    dictionary, whose increment and buffered 32-bit word are kept (only the position moves)."""
    full["state"]["state"] = (int(words[0]) << 64) | int(words[1])
    bitgen.state = full


@functools.lru_cache(maxsize=1)
def _pcg_kernel() -> Any:
    """The compiled kernel with ``pcg64_fill`` and ``pcg64_below``, or None: when the kernel is missing, when
    ``DEMMI_RF_NUMPY_ZIGGURAT=1``, or when either does not give numpy's words and leave the generator where
    ``random_raw`` leaves it, on a probe (checked once per process)."""
    module = compiled_module()
    if module is None or not hasattr(module, "pcg64_fill") or not hasattr(module, "pcg64_below"):
        return None
    for seed, n in ((20261130, 4099), (1, 256), (2**63 + 5, 1000)):
        ours, ref = np.random.PCG64(seed), np.random.PCG64(seed)
        np.random.Generator(ours).integers(0, 2**32, dtype=np.uint32)  # a buffered 32-bit word must survive
        np.random.Generator(ref).integers(0, 2**32, dtype=np.uint32)
        want = ref.random_raw(n)
        got = np.empty(n, np.uint64)
        _run_on_state(ours, module.pcg64_fill, got)
        t = int(want[n // 2])
        less = np.empty(n, np.uint8)
        _run_on_state(ours, module.pcg64_below, t, less)
        again = ref.random_raw(n)
        if not (np.array_equal(got, want) and np.array_equal(less.astype(bool), again < np.uint64(t))
                and ours.state == ref.state and ours.random_raw(3).tolist() == ref.random_raw(3).tolist()):
            return None
    return module


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
    return _lemire(rng.bit_generator.random_raw, n)


def _lemire(raw: Any, n: int) -> int:
    """:func:`below` on the words of ``raw()`` (a bit generator's ``random_raw``, one word a call)."""
    if type(n) is not int and (isinstance(n, bool) or not isinstance(n, (int, np.integer))) or not 1 <= n <= 2**32:
        raise ValueError(f"below() needs an integer n in [1, 2**32], got {n!r}")
    n = int(n)
    reject_below = (2**32 - n) % n
    while True:
        m = (int(raw()) & 0xFFFFFFFF) * n
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
    * :meth:`raw_below` — for the next n raw words w, whether w < t (:func:`raw_below`);
    * :meth:`normal` — float32 N(0, scale²) draws (:func:`demmi_rf.ziggurat.normal`).

    Draws are consumed in call order; two streams built from the same generator state give the same values.

    :func:`keyed_stream` (what :func:`demmi_rf.degrade` uses) makes the stream of :func:`keyed_generator` without
    building the numpy Generator: the compiled kernel holds the PCG64 state and gives the same words, and the
    Generator is built at the current position only when a draw needs numpy's bit generator (:meth:`normal`).
    """

    __slots__ = ("_gen", "_raw", "_pcg")

    def __init__(self, rng: np.random.Generator):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"Stream wraps a numpy Generator, got {type(rng).__name__}")
        self._gen: np.random.Generator | None = rng
        self._raw = rng.bit_generator.random_raw  # a generator's bit generator never changes: bound once
        # a keyed stream's kernel-held state: PCG64 state and increment (words 0-3), the SeedSequence's generate_state
        # (4-7) and the SHA-256 digest (8-11), for the Generator built when a draw needs it
        self._pcg: np.ndarray | None = None

    @property
    def _rng(self) -> np.random.Generator:
        """The numpy Generator of this stream, at the stream's current position (built on first use for a stream
        of :func:`keyed_stream`; every later draw then goes through it)."""
        if self._gen is None:
            self._materialize()
        return self._gen

    def _materialize(self) -> None:
        pcg = self._pcg
        bitgen = np.random.PCG64(_KeyedSeedSequence(pcg[8:12].tobytes(), pcg[4:8].copy()))  # as keyed_generator
        _set_position(bitgen, bitgen.state, pcg)  # the increment is the seeded one; only the position moves
        self._gen = np.random.Generator(bitgen)
        self._raw = bitgen.random_raw
        self._pcg = None

    def uniform(self) -> float:
        """One uniform number in [0, 1) (53 random bits, exact): the value of :func:`uniform`."""
        return (self._raw() >> 11) * 2.0**-53

    def uniforms(self, n: int) -> np.ndarray:
        """``n`` uniform float64 numbers in [0, 1): ``(w >> 11) · 2⁻⁵³`` for the next n raw words, in order."""
        n = _count(n, "uniforms")
        if self._pcg is not None:
            words = np.empty(n, np.uint64)
            _pcg_kernel().pcg64_fill(self._pcg[:4], words)
        else:
            words = raw_words(self._gen.bit_generator, n)
        return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def below(self, n: int) -> int:
        """A uniform integer in [0, n), 1 ≤ n ≤ 2³² (no bias)."""
        return _lemire(self._raw, n)

    def raw_below(self, n: int, threshold: int, out: np.ndarray | None = None) -> np.ndarray:
        """For the next ``n`` raw words w, in order, ``w < threshold`` (0 ≤ threshold < 2⁶⁴) as a bool array
        (``out``, C-contiguous of n elements, when given): an integer comparison, exact (e.g. ``uniforms(n) < ρ``
        written on the words, :func:`demmi_rf.degradations.rain.drop_threshold`)."""
        n = _count(n, "raw_below")
        if not (isinstance(threshold, (int, np.integer)) and 0 <= threshold < 2**64):
            raise ValueError(f"raw_below() needs a threshold in [0, 2**64), got {threshold!r}")
        out = np.empty(n, np.bool_) if out is None else out
        if self._pcg is None:
            return raw_below(self._gen.bit_generator, n, int(threshold), out)
        _check_mask(out, n)
        _pcg_kernel().pcg64_below(self._pcg[:4], int(threshold), out.view(np.uint8))
        return out

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


def keyed_stream(material: str) -> Stream:
    """``Stream(keyed_generator(material))``: the same draws. With the compiled kernel (:func:`_light_kernel`) the
    PCG64 state is seeded and held by the kernel (``pcg64_keyed``: SHA-256, the ``SeedSequence`` mixing and PCG64's
    seeding in one call; ``pcg64_next``), which skips building numpy's
    ``PCG64`` and ``Generator`` for the streams that never need them (a few scalar draws and table work)."""
    kernel = _light_kernel()
    if kernel is None:
        return Stream(keyed_generator(material))
    pcg = np.empty(12, np.uint64)  # PCG64 state and increment, the SeedSequence's 4 words, the SHA-256 digest
    kernel.pcg64_keyed(material.encode("utf-8"), pcg)
    stream = object.__new__(Stream)
    stream._gen = None
    stream._pcg = pcg
    stream._raw = functools.partial(kernel.pcg64_next, pcg)
    return stream


@functools.lru_cache(maxsize=1)
def _light_kernel() -> Any:
    """The compiled kernel for :func:`keyed_stream`, or None (then a Generator is built as before): when the
    PCG64 routines are refused (:func:`_pcg_kernel`), or when ``pcg64_keyed`` / ``pcg64_next`` do not give
    hashlib's digest and numpy's state and words on a probe (materials of every SHA-256 padding case)."""
    module = compiled_module()
    if (module is None or _pcg_kernel() is not module or not hasattr(module, "pcg64_keyed")
            or not hasattr(module, "pcg64_next")):
        return None
    for n in (0, 1, 31, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200):  # SHA-256's padding cases, non-ASCII text
        material = ("démmi\x1f" * 40)[:n]
        digest = hashlib.sha256(material.encode("utf-8")).digest()
        ref = np.random.PCG64(np.random.SeedSequence(_words_of(digest)))
        pcg = np.empty(12, np.uint64)
        module.pcg64_keyed(material.encode("utf-8"), pcg)
        inner = ref.state["state"]
        if ((int(pcg[0]) << 64) | int(pcg[1]), (int(pcg[2]) << 64) | int(pcg[3])) != (inner["state"], inner["inc"]):
            return None
        if pcg[8:12].tobytes() != digest or not np.array_equal(pcg[4:8], ref.seed_seq.generate_state(4, np.uint64)):
            return None
        if [module.pcg64_next(pcg) for _ in range(5)] != ref.random_raw(5).tolist():
            return None
    return module


def _ziggurat() -> Any:
    """:mod:`demmi_rf.ziggurat`, imported on first use (it imports OpenCV) and then kept (no per-call import)."""
    global _ZIGGURAT  # noqa: PLW0603
    if _ZIGGURAT is None:
        from . import ziggurat  # noqa: PLC0415

        _ZIGGURAT = ziggurat
    return _ZIGGURAT


_ZIGGURAT: Any = None
