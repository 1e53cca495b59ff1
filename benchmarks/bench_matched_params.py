"""The two atoms whose cost depends on a drawn parameter, timed at matched parameters against their anchors.

    python benchmarks/bench_matched_params.py [--repeat 101]

``bench_atoms_extended.py`` draws every parameter from the atoms' default ranges and the anchors' own ranges, and
compares minima over rounds: for an atom whose time depends on a parameter that is the cheapest draw of each side.
Here both sides get the same parameter, on the same 640x480 pair (MSRS ``00004N``), pinned to one core, all
functions in interleaved rounds (``bench_degradations.interleaved``: process CPU time, minimum and median):

* ``jpeg`` at qualities 20, 40 and 60: ``degrade(..., "jpeg")`` with the quality fixed by ``ranges=``;
  ``ImageCompression(quality_range=(q, q))`` on the RGB image as a user calls it (it hands RGB to OpenCV, which
  reads BGR: the luma weights fall on the wrong channels); the same transform made colour-correct for an RGB image
  (``cv2.cvtColor`` to BGR before, back to RGB after: what ``jpeg`` computes, see its docstring, "Colour order");
  and the bare codec call (``cv2.imencode`` + ``cv2.imdecode`` of the array as it is), the floor of both.
* ``motion`` at lengths 5, 9 and 15 (angle drawn by each side): ``degrade(..., "motion")`` with the length fixed
  against ``MotionBlur(blur_limit=(L, L), allow_shifted=False)``.

Ratios are ours / anchor (minima, medians in brackets); only ratios from the same run are meaningful.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pin_one_core  # noqa: E402
from bench_degradations import interleaved  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=101, help="interleaved rounds")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    import albumentations as A
    import cv2
    import numpy as np

    import demmi_rf
    from demmi_rf import degrade
    from demmi_rf.degradations import extended  # noqa: F401 - registers the atoms
    from demmi_rf.recipe import load_recipe
    from demmi_rf.samples import sample_root
    from demmi_rf.sources import discover, read_pair

    cores = pin_one_core()
    seed = load_recipe("demmi-rf-v1").seed
    record = [r for r in discover(sample_root(), check="none").pairs if r.pair_id == "msrs/00004N"][0]
    pair = read_pair(record)
    vis, ir = pair.vis, pair.ir
    print(f"demmi-rf {demmi_rf.__version__}, opencv {cv2.__version__}, albumentations {A.__version__}; {cores}; "
          f"{args.repeat} interleaved rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    counter = iter(range(10**9))
    bgr = np.empty_like(vis)

    def ours(setting: str, ranges: dict) -> Callable[[], object]:
        return lambda: degrade(vis, ir, setting, seed, pair_id=f"bench/{next(counter)}", ranges=ranges)

    def colour_correct(t: object) -> Callable[[], object]:
        def run() -> object:
            out = t(image=cv2.cvtColor(vis, cv2.COLOR_RGB2BGR, dst=bgr))["image"]
            return cv2.cvtColor(out, cv2.COLOR_BGR2RGB, dst=out)
        return run

    fns: dict[str, Callable[[], object]] = {}
    qualities, lengths = (20, 40, 60), (5, 9, 15)
    for q in qualities:
        t = A.ImageCompression(quality_range=(q, q), p=1.0)
        fns[f"jpeg {q} ours"] = ours("jpeg", {"jpeg": {"quality": [q]}})
        fns[f"jpeg {q} anchor"] = lambda t=t: t(image=vis)
        fns[f"jpeg {q} anchor colour-correct"] = colour_correct(t)
        fns[f"jpeg {q} codec"] = lambda q=q: cv2.imdecode(cv2.imencode(".jpg", vis, [cv2.IMWRITE_JPEG_QUALITY, q])[1],
                                                          cv2.IMREAD_UNCHANGED)
    for length in lengths:
        t = A.MotionBlur(blur_limit=(length, length), allow_shifted=False, p=1.0)
        fns[f"motion {length} ours"] = ours("motion", {"motion": {"length": [length], "angle": [0.0, 180.0]}})
        fns[f"motion {length} anchor"] = lambda t=t: t(image=vis)
    times = interleaved(fns, args.repeat)

    def cell(key: str, base: str) -> str:
        (a, am), (b, bm) = times[key], times[base]
        return f"{a * 1e3:6.2f} ({am * 1e3:6.2f}) ms  {a / b:.2f} ({am / bm:.2f})"

    print("\njpeg: ms min (median), then ratio to the anchor on minima (medians)")
    for q in qualities:
        base = f"jpeg {q} anchor"
        print(f"q={q:<3} ours {cell(f'jpeg {q} ours', base)} | colour-correct anchor "
              f"{cell(f'jpeg {q} anchor colour-correct', base)} | bare codec {cell(f'jpeg {q} codec', base)}")
        print(f"       ours / colour-correct anchor: "
              f"{times[f'jpeg {q} ours'][0] / times[f'jpeg {q} anchor colour-correct'][0]:.2f} "
              f"({times[f'jpeg {q} ours'][1] / times[f'jpeg {q} anchor colour-correct'][1]:.2f})")
    print("\nmotion: ms min (median), then ratio to the anchor on minima (medians)")
    for length in lengths:
        base = f"motion {length} anchor"
        print(f"L={length:<3} ours {cell(f'motion {length} ours', base)} | anchor "
              f"{times[base][0] * 1e3:6.2f} ({times[base][1] * 1e3:6.2f}) ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
