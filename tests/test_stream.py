"""The narrow random stream atoms receive (:class:`demmi_rf.rng.Stream`): the same values as the module's
scalar draws and the sampler, consumed in call order, and nothing else exposed."""

from __future__ import annotations

import numpy as np
import pytest

from demmi_rf import ziggurat
from demmi_rf.rng import Stream, below, generator, uniform


def _pair():
    return generator(7, "msrs/00004N", "haze", "vis"), generator(7, "msrs/00004N", "haze", "vis")


def test_vector_uniforms_equal_scalar_uniforms_in_order():
    a, b = _pair()
    got = Stream(a).uniforms(1000)
    want = np.array([uniform(b) for _ in range(1000)])
    assert got.dtype == np.float64 and np.array_equal(got, want)
    assert got.min() >= 0.0 and got.max() < 1.0


def test_mixed_calls_consume_the_stream_like_the_module_functions():
    a, b = _pair()
    s = Stream(a)
    got = (s.uniform(), s.below(6), s.normal((4, 5), 3.0).tobytes(), s.uniforms(3).tobytes(), s.uniform())
    want = (uniform(b), below(b, 6), ziggurat.normal(b, (4, 5), 3.0).tobytes(),
            np.array([uniform(b) for _ in range(3)]).tobytes(), uniform(b))
    assert got == want


def test_the_stream_exposes_only_portable_draws():
    s = Stream(generator(0, "p", "clean", "ir"))
    public = {name for name in dir(s) if not name.startswith("_")}
    assert public == {"uniform", "uniforms", "below", "raw_below", "normal"}
    with pytest.raises(AttributeError):
        s.x = 1  # __slots__: nothing can be attached
    with pytest.raises(TypeError):
        Stream(np.random.default_rng(0).bit_generator)
    with pytest.raises(ValueError):
        s.uniforms(-1)
