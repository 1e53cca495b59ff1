"""Timings of the atoms beyond v1 (issue 14 section 2) against the closest public implementations, same process.

    python benchmarks/bench_atoms_extended.py [--repeat 101] [--all-cores] [--no-float]

The package timed is the one ``import demmi_rf`` finds (printed in the first line): with an editable install that
is the install's tree whatever the working directory, so to time another commit check it out with
``git worktree add`` and run its script with ``PYTHONPATH=<that worktree>``.

On one 640x480 pair (MSRS ``00004N``: RGB VIS, 1-channel IR), pinned to one core (``cv2.setNumThreads(1)`` and
CPU affinity where the OS allows it) unless ``--all-cores``. Three comparisons, all timed in the same run:

1. **The target: as a user calls both, uint8 in, uint8 out, one sample.** Each atom through
   ``demmi_rf.degrade(vis, ir, atom, seed, pair_id=...)`` (setting parse, the sample's SHA-256-keyed stream,
   the parameter draws from the atom's default ranges, the model, clip + round; a new pair id per call, so every
   call draws fresh parameters) against each anchor as a user calls it, ``transform(image=...)`` on uint8 (its
   own parameter draws included). Like with like: same image, same dtype in and out, one fresh draw each. An
   atom alone in its chain takes its ``apply_uint8`` path (``docs/degradations.md`` section 7, "Speed").
2. **The per-call floor and the pixel work**: the same calls, ours and the anchors', on a 32x32 crop of the
   pair, i.e. everything but the pixel work (ours: parse, stream derivation, draws, 256-level tables; theirs:
   their draws and dispatch). The floor bounds what any pixel code can reach against an anchor whose whole call
   is a table look-up; "pixel" is (call - floor) ours over (call - floor) theirs, the model's work alone
   compared (a difference of minima: rougher than the ratios of whole calls).
3. **Float32 contract** (``--no-float`` skips it): the atom's ``run`` (draws + ``apply``) on float32 0-255, no
   rounding, against the anchor on float32 [0, 1] (albumentations' float path). Informational: the anchors'
   float paths are not the ones a user of uint8 images runs, and the atom's float path is the one a mixture
   takes (atoms after the first work on float32).

=================  =====================================================================================
atom               anchor (albumentations unless said)
=================  =====================================================================================
``motion``         ``MotionBlur(blur_limit=(5, 15), allow_shifted=False)`` (lengths 5..15, any angle)
``rain``           ``RandomRain(drop_length=20, drop_width=1, blur_value=7)``
``jpeg``           ``ImageCompression(quality_range=(20, 60))`` (it hands the RGB image to OpenCV, which reads
                   BGR: other bytes, see ``docs/degradations.md`` section 7, "Speed") and ImageNet-C's
                   ``jpeg_compression`` computation through Pillow (:func:`imagenet_c_jpeg`, q 20..60:
                   colour-correct, ``jpeg``'s bytes)
``overexposure``   ``RandomGamma(gamma_limit=(60, 90))`` (a tone curve alone: the strictest anchor)
``lowlight``       ``Compose([RandomGamma(180-260), GaussNoise(std 2-6)])`` (tone curve and noise) and
                   ``RandomGamma`` alone
``lowcontrast``    ``RandomBrightnessContrast(contrast_limit=(-0.6, -0.4))`` on the IR image
``ir_noise``       ``GaussNoise(std 5-20)`` on the IR image
``stripe_gain``    EMS's public stripe generator (its computation on the IR image, :func:`ems_stripe`: per-pixel
                   and tiled per-column float64 normals, saturated to uint8; albumentations has no stripe
                   transform) and ``GaussNoise(std 3-5)`` alone (the per-pixel term only: less work than the atom)
=================  =====================================================================================

All functions are timed in interleaved rounds (one call of each per round, shuffled order; see
``bench_degradations.py``) on process CPU time: minimum over rounds and, in brackets, the median; ratios are
ours / anchor. **The target (each atom at most its anchor's time) is judged on the means**, printed last: the
expected CPU time per call over each side's own parameter draws, outliers included, which is what a user pays per
sample. A minimum is each side's cheapest draw in its luckiest round: for an atom whose time depends on a drawn
parameter (``jpeg``'s quality, ``motion``'s length) it compares two different draws, and for the ~0.1 ms calls
a few undisturbed rounds decide it, so minima near 1 move by ±0.1 from run to run on a shared VM; they and the
medians are printed for the record. Only ratios from the same run are meaningful. A run of 101 rounds takes about
15 s. ``bench_matched_params.py`` times ``jpeg`` and ``motion`` at matched parameters.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pin_one_core  # noqa: E402
from bench_degradations import MEAN, _ms, interleaved  # noqa: E402

#: atom -> its anchors, the closest first
PAIRS = {
    "motion": ["MotionBlur 5-15"],
    "rain": ["RandomRain"],
    "jpeg": ["ImageCompression q20-60", "ImageNet-C JPEG q20-60"],
    "overexposure": ["RandomGamma"],
    "lowlight": ["RandomGamma+GaussNoise", "RandomGamma"],
    "lowcontrast": ["RandomBrightnessContrast (IR)"],
    "ir_noise": ["GaussNoise 5-20 (IR)"],
    "stripe_gain": ["EMS stripe (IR)", "GaussNoise 3-5 (IR)"],
}


def ems_stripe(image: np.ndarray) -> np.ndarray:
    """The computation of EMS's public stripe generator (``XunpengYi/EMS``,
    ``EMS_make_degradation_func/main_vis_strikp_noise.py``, the closest public implementation of ``stripe_gain``'s
    model), written here from its formula on one channel: σ_G ~ U(3, 5), a float64 N(0, σ_G²) per pixel, β ~ U(3, 8),
    a float64 N(0, β²) per column tiled down the rows, both added to the image (numpy's global generator, as the
    script), then saturated to uint8 as its ``cv2.imwrite`` does (clip, round). It has no column gain term, so it does
    less work than ``stripe_gain``."""
    std_g = np.random.uniform(3, 5)
    noise_g = np.random.normal(0, std_g, image.shape)
    beta = np.random.uniform(3, 8)
    columns = np.tile(np.random.normal(0, beta, image.shape[1]), (image.shape[0], 1))
    return np.clip(np.rint(image + noise_g + columns), 0, 255).astype(np.uint8)


def imagenet_c_jpeg(image: np.ndarray) -> np.ndarray:
    """The computation of ImageNet-C's ``jpeg_compression`` (Hendrycks & Dietterich, ICLR 2019; as
    ``bethgelab/imagecorruptions``' ``corrupt()`` runs it on a uint8 array: ``PIL.Image.fromarray``, ``save`` as
    JPEG at quality q into a ``BytesIO``, ``PIL.Image.open``, back to a uint8 array), written here with q uniform on
    20..60 like ``ImageCompression``'s range (its own severities use q = 25, 18, 15, 10, 7; numpy's global generator
    draws q). Colour-correct: Pillow encodes RGB as RGB, and its libjpeg-turbo gives ``jpeg``'s bytes
    (``tests/test_atoms_extended.py`` compares them)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=int(np.random.randint(20, 61)))
    return np.asarray(Image.open(out))


class _Function:
    """A plain function in the place of an albumentations transform (``t(image=x)``)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn

    def __call__(self, *, image: np.ndarray) -> np.ndarray:
        return self.fn(image)


def _ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
    return f"{a[0] / b[0]:.2f} ({a[1] / b[1]:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=101, help="interleaved rounds")
    parser.add_argument("--all-cores", action="store_true", help="do not pin to one core")
    parser.add_argument("--no-float", action="store_true", help="skip the float32-contract comparison")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # albumentations' version check and deprecation chatter

    import albumentations as A
    import cv2
    import numpy as np

    import demmi_rf
    from demmi_rf import degrade, ziggurat
    from demmi_rf.degradations import extended, get  # importing extended registers the atoms
    from demmi_rf.recipe import load_recipe
    from demmi_rf.samples import sample_root
    from demmi_rf.sources import discover, read_pair

    cores = "all cores" if args.all_cores else pin_one_core()
    seed = load_recipe("demmi-rf-v1").seed
    record = [r for r in discover(sample_root(), check="none").pairs if r.pair_id == "msrs/00004N"][0]
    pair = read_pair(record)
    vis, ir = pair.vis, pair.ir
    tiny_vis, tiny_ir = np.ascontiguousarray(vis[:32, :32]), np.ascontiguousarray(ir[:32, :32])
    print(f"demmi-rf {demmi_rf.__version__}, numpy {np.__version__}, opencv {cv2.__version__}, "
          f"albumentations {A.__version__}; {cores}; package {Path(demmi_rf.__file__).parent} "
          f"(sampler kernel: {ziggurat.backend()})")
    print(f"pair {record.pair_id}: VIS {vis.shape}, IR {ir.shape}; {args.repeat} interleaved rounds, CPU ms min "
          f"(median); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; atoms: "
          f"{', '.join(extended.NAMES)}; uint8 fast path (apply_uint8): "
          f"{', '.join(n for n in extended.NAMES if getattr(get(n), 'apply_uint8', None)) or 'none'}\n")

    counter = iter(range(10**9))

    def ours(setting: str, v: np.ndarray, i: np.ndarray) -> Callable[[], object]:
        return lambda: degrade(v, i, setting, seed, pair_id=f"bench/{next(counter)}")

    anchors = {
        "MotionBlur 5-15": (A.MotionBlur(blur_limit=(5, 15), allow_shifted=False, p=1.0), vis),
        "RandomRain": (A.RandomRain(drop_length=20, drop_width=1, blur_value=7, p=1.0), vis),
        "ImageCompression q20-60": (A.ImageCompression(quality_range=(20, 60), p=1.0), vis),
        "RandomGamma": (A.RandomGamma(gamma_limit=(60, 90), p=1.0), vis),
        "RandomGamma+GaussNoise": (A.Compose([A.RandomGamma(gamma_limit=(180, 260), p=1.0),
                                              A.GaussNoise(std_range=(2 / 255, 6 / 255), p=1.0)], seed=0), vis),
        "RandomBrightnessContrast (IR)": (A.RandomBrightnessContrast(brightness_limit=(0.0, 0.0),
                                                                     contrast_limit=(-0.6, -0.4), p=1.0), ir),
        "GaussNoise 5-20 (IR)": (A.GaussNoise(std_range=(5 / 255, 20 / 255), p=1.0), ir),
        "GaussNoise 3-5 (IR)": (A.GaussNoise(std_range=(3 / 255, 5 / 255), p=1.0), ir),
        "EMS stripe (IR)": (_Function(ems_stripe), ir),
        "ImageNet-C JPEG q20-60": (_Function(imagenet_c_jpeg), vis),
    }
    np.random.seed(0)  # the EMS anchor's global generator
    for t, _ in anchors.values():
        if hasattr(t, "set_random_seed"):
            t.set_random_seed(0)
    public = {k: (lambda t=t, img=img: t(image=img)) for k, (t, img) in anchors.items()}
    public_floor = {f"floor {k}": (lambda t=t, img=img: t(image=tiny_vis if img is vis else tiny_ir))
                    for k, (t, img) in anchors.items()}
    fns = {**{a: ours(a, vis, ir) for a in PAIRS}, **{f"floor {a}": ours(a, tiny_vis, tiny_ir) for a in PAIRS},
           **public, **public_floor}
    times = interleaved(fns, args.repeat)

    def pixel(atom: str, key: str) -> str:
        mine = times[atom][0] - times[f"floor {atom}"][0]
        theirs = times[key][0] - times[f"floor {key}"][0]
        return f"{mine / theirs:.2f}" if theirs > 0 else "n/a"

    print("1. uint8 -> uint8 as a user calls both (the target, on the means below: ratio <= 1); 2. per-call floor "
          "(32x32 crop) and the pixel work alone")
    print(f"{'atom':<13} {'ours':<14} {'our floor':<14} anchor: time, floor -> ratio on minima (medians); pixel")
    verdicts = {}
    for atom, keys in PAIRS.items():
        cells = [f"{k} {_ms(times[k])}, {_ms(times[f'floor {k}'])} -> {_ratio(times[atom], times[k])}; pixel "
                 f"{pixel(atom, k)}" for k in keys]
        verdicts[atom] = times[atom][0] / times[keys[0]][0]
        print(f"{atom:<13} {_ms(times[atom]):<14} {_ms(times[f'floor {atom}']):<14} " + " | ".join(cells))
    means = {a: MEAN[a] / MEAN[keys[0]] for a, keys in PAIRS.items()}
    print("\nmeans (the expected CPU time per call over the rounds' draws, outliers included), ours / closest anchor: "
          + ", ".join(f"{a} {r:.2f}" for a, r in means.items()))
    print(f"target (means <= 1) met: {', '.join(a for a, r in means.items() if r <= 1) or 'none'}; not met: "
          f"{', '.join(a for a, r in means.items() if r > 1) or 'none'}; minima over 1 in this run: "
          f"{', '.join(f'{a} {r:.2f}' for a, r in verdicts.items() if r > 1) or 'none'}")

    if args.no_float:
        return 0
    # ---- 3. float32 in, float32 out, no rounding (the atom's run alone; anchors on float32 [0, 1]) --------------
    from demmi_rf.degradations._arrays import quantize
    from demmi_rf.rng import Stream

    vis_f, ir_f = vis.astype(np.float32), ir.astype(np.float32)
    vis_1, ir_1 = vis_f / 255.0, ir_f / 255.0  # albumentations' float convention
    stream = Stream(np.random.default_rng(0))
    bufs = {"vis": vis_f.copy(), "ir": ir_f.copy()}

    def atom_alone(name: str) -> Callable[[], object]:
        spec = get(name)
        src = vis_f if spec.modality == "vis" else ir_f
        buf = bufs[spec.modality]

        def run() -> object:
            np.copyto(buf, src)
            return spec.run(buf, stream, spec.default_ranges, inplace=True)
        return run

    # albumentations' float convention is [0, 1]; the EMS anchor computes on the 0-255 scale, as its script
    floats = {k: (t, (vis_f if img is vis else ir_f) if isinstance(t, _Function) else (vis_1 if img is vis else ir_1))
              for k, (t, img) in anchors.items()}
    same = {a: keys[0] for a, keys in PAIRS.items()}
    fns = {**{f"atom {a}": atom_alone(a) for a in same},
           **{f"f32 {k}": (lambda t=t, img=img: t(image=img)) for k, (t, img) in floats.items()},
           "floor VIS": lambda: quantize(vis.astype(np.float32)), "floor IR": lambda: quantize(ir.astype(np.float32))}
    t2 = interleaved(fns, args.repeat)
    print("\n3. float32 contract: the atom's run on float32 0-255 (no rounding) vs the anchor on float32 [0, 1]")
    for atom, k in same.items():
        mine, theirs = t2[f"atom {atom}"], t2[f"f32 {k}"]
        print(f"{atom:<13} {_ms(mine):<14} {k} {_ms(theirs)} -> {_ratio(mine, theirs)}")
    print(f"uint8 -> float32 -> clip, rint, uint8 of a whole image (a float chain's conversions): "
          f"VIS {_ms(t2['floor VIS'])}, IR {_ms(t2['floor IR'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
