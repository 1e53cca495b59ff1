"""Literal sha256 values of the synthesis' bytes: the normal sampler and a few degrade() outputs.

These are pinned the way scikit-image pins its legacy values: literal hex strings, computed once and written
here. The synthesis is the project's reason to exist, so ANY change of these bits is a deliberate event: it
needs a toolkit version bump and a CHANGELOG.md entry saying which versions give which content hashes (and
the baseline tables regenerated). Never update a literal here to make a test pass without that.

History: pinned at the fix of the sampler's uint8 layer-index wrap (toolkit 0.1.0 had it: 255 + 1 -> 0 in the
top layer's wedge test), which changed the noise and stripe bits of 0.1.0.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from demmi_rf import degrade, ziggurat
from demmi_rf.recipe import load_recipe
from demmi_rf.samples import sample_root
from demmi_rf.sources import discover, read_pair

# (seed of default_rng, shape, scale) -> sha256 of ziggurat.normal(default_rng(seed), shape, scale).tobytes()
NORMAL_PINS: dict[tuple[int, int | tuple[int, ...], float], str] = {
    (20261130, 1_000_003, 1.0): "28aebe4f94c80516567ecd217d625a35dc0208fe04a546778b8087dda1f4f292",
    (5, (48, 64, 3), 25.0): "b17e447a85b2fe0b598cf643bb442f5265b29f8ffc2a1e2c3cc5b73c6e68ccd0",
    (7, (480, 640, 3), 50.0): "87f1200f8f11c4912f0e44e484fc3b606b7ee175a7e6d288754a2b9bfa225ba4",
    (11, 17, 15.0): "b9c0a78f8a42875b2de16f0988bb277d50a22cd6b03f32c95e83728f1e4a4fd5",
}

# (embedded pair id, v1 setting) -> sha256 of vis.tobytes() + ir.tobytes() of degrade(vis, ir, setting, v1 seed)
DEGRADE_PINS: dict[tuple[str, str], str] = {
    ("msrs/00004N", "noise15"): "a86344986ac9eb46ad464956257f0efb79bdd35ac5e2dba0c3e87b7d83d81ca5",
    ("msrs/00004N", "noise50"): "cf2680d88a8db55244cd4b83f3e22ae9357589076276abdbc434e56648b76d79",
    ("msrs/00004N", "stripe"): "a995c8633f796e85a790facd1d21d3098885cccc806c05499dd2da72fd0c4db3",
    ("msrs/00004N", "haze"): "9f9a38c7a1fe919a06cbd1b5c9467d2926eaa20b2de3e349bda0c9c76dda3941",
    ("msrs/00004N", "defocus"): "f74dd3ce72417f6f56a4a318f11a7845970c71821d3ae5e7f52dd5fa58971b96",
    ("msrs/00004N", "defocus+haze"): "2778487a2030e9b84cdf2f614a5fa76c67f2d627ff0fcf054c972294cec9ff4d",
    ("msrs/00004N", "noise50+haze+stripe"): "2227069f4111e9f5fbba57209959c65e6470686ce6278eede771f38f1a1dbd0c",
    ("msrs/00004N", "noise50+defocus+haze+stripe"):
        "68d1e8362bd5dbb0f906afeaf040fe2fc127b7bcdba3809b587b5d2d74c601d4",
    ("tno/07", "noise15"): "a217bf9150befa6c8a0c764a0a991eea1d2ffaa4adac1d8d70fb08de1cc9d9d1",
    ("tno/07", "noise50"): "47d4a8acf629759e3d43f25ab8ec6baf92db533f7d8017b1aaba6422e7bed533",
    ("tno/07", "stripe"): "2e8531c93ca54b97547ba8400b18a5492964691986a4219cd173fb4aeeeaceb3",
    ("tno/07", "haze"): "9afe5ab5a6fc654f271b5527fb35bce11d4e4668deb79ba84e1c5fafc10d7228",
    ("tno/07", "defocus"): "719bd1f04b408516ae62f55a78bf1e3d493aac2aa1a53fae83d2b052e9d75e54",
    ("tno/07", "defocus+haze"): "acbb7b96531e2831b4d708d204a27aa4b7cfbd3128fabf10bd2ca53c5d94072d",
    ("tno/07", "noise50+haze+stripe"): "efe1a6c1dfdeeea6734ce757bf47e73fd30dc60770c2d9541e1a0d1c42c5c58a",
    ("tno/07", "noise50+defocus+haze+stripe"): "9381f2a845f7dcbd13f03760673dd246976c800bea0c6b7e736fda7ea39d5c66",
}

# Computes every pinned value and prints them as JSON; run here and in a subprocess with numpy's SIMD off.
_COMPUTE = """
import hashlib, json, sys
import numpy as np
from demmi_rf import degrade, ziggurat
from demmi_rf.recipe import load_recipe
from demmi_rf.samples import sample_root
from demmi_rf.sources import discover, read_pair

normal_keys, degrade_keys = json.loads(sys.argv[1])
seed = load_recipe("demmi-rf-v1").seed
records = {rec.pair_id: rec for rec in discover(sample_root()).pairs}
normals = [hashlib.sha256(ziggurat.normal(np.random.default_rng(s), tuple(sh) if isinstance(sh, list) else sh,
                                          sc).tobytes()).hexdigest() for s, sh, sc in normal_keys]
pairs, degraded = {}, []
for pid, setting in degrade_keys:
    p = pairs.setdefault(pid, read_pair(records[pid]))
    o = degrade(p.vis, p.ir, setting, seed, pair_id=pid)
    degraded.append(hashlib.sha256(o.vis.tobytes() + o.ir.tobytes()).hexdigest())
print(json.dumps({"backend": ziggurat.backend(), "normal": normals, "degrade": degraded}))
"""


@pytest.mark.parametrize(("key", "digest"), list(NORMAL_PINS.items()), ids=[str(k) for k in NORMAL_PINS])
def test_normal_bits_are_pinned(key, digest):
    seed, shape, scale = key
    z = ziggurat.normal(np.random.default_rng(seed), shape, scale)
    assert hashlib.sha256(z.tobytes()).hexdigest() == digest


def test_add_normal_gives_the_pinned_normals_added():
    """add_normal adds exactly the pinned normals (to a zero target: 0 + z = z bit for bit)."""
    seed, shape, scale = 7, (480, 640, 3), 50.0
    target = ziggurat.add_normal(np.random.default_rng(seed), np.zeros(shape, np.float32), scale)
    assert hashlib.sha256(target.tobytes()).hexdigest() == NORMAL_PINS[(seed, shape, scale)]


@pytest.fixture(scope="module")
def pinned_pairs():
    records = {rec.pair_id: rec for rec in discover(sample_root()).pairs}
    return {pid: read_pair(records[pid]) for pid in {pid for pid, _ in DEGRADE_PINS}}


@pytest.mark.parametrize(("key", "digest"), list(DEGRADE_PINS.items()), ids=["|".join(k) for k in DEGRADE_PINS])
def test_degrade_bits_are_pinned(key, digest, pinned_pairs):
    pid, setting = key
    p = pinned_pairs[pid]
    o = degrade(p.vis, p.ir, setting, load_recipe("demmi-rf-v1").seed, pair_id=pid)
    assert hashlib.sha256(o.vis.tobytes() + o.ir.tobytes()).hexdigest() == digest


def test_the_pins_hold_with_numpy_simd_disabled_and_the_numpy_sampler_path():
    """The same literals from a fresh process with every dispatched numpy SIMD extension disabled
    (``NPY_DISABLE_CPU_FEATURES``), OpenCV's optimised code paths off, one OpenCV thread and the sampler's
    numpy common case forced (``DEMMI_RF_NUMPY_ZIGGURAT=1``), whatever this process uses."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    dispatched = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    prelude = "import cv2\ncv2.setUseOptimized(False)\ncv2.setNumThreads(1)\nassert not cv2.useOptimized()\n"
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(dispatched), "DEMMI_RF_NUMPY_ZIGGURAT": "1"}
    keys = json.dumps([[list(k) for k in NORMAL_PINS], [list(k) for k in DEGRADE_PINS]])
    out = subprocess.run([sys.executable, "-c", prelude + _COMPUTE, keys], capture_output=True, text=True,
                         check=True, env=env)
    got = json.loads(out.stdout)
    assert got["backend"] == "numpy"
    assert got["normal"] == list(NORMAL_PINS.values())
    assert got["degrade"] == list(DEGRADE_PINS.values())
