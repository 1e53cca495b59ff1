r"""Statistical validation of the toolkit's normal sampler against N(0, 1), with numpy as a control.

    python benchmarks/validate_normal.py [--draws 1e9] [--chunk 4e6] [--seed 20261130] [--json OUT]

Draws ``--draws`` normals through the public sampler (``demmi_rf.ziggurat.normal(rng, chunk)``, float32,
chunk by chunk from one generator) and as many from numpy's ``Generator.standard_normal`` (float64, another
generator of the same seed) as a control, and reports for each, with a standard error, a z-score and a
two-sided p-value where one applies (every expectation is the exact one of N(0, 1), not an estimate):

* moments about the known mean 0: m1 = mean z (SE 1/√N), m2 = mean z² − 1 (SE √(2/N)),
  m3 = mean z³ (SE √(15/N): the skewness), m4 = mean z⁴ − 3 (SE √(96/N): the excess kurtosis);
* an equiprobable-bin χ²: 1000 bins with edges Φ⁻¹(k/1000), k = 1..999 (999 degrees of freedom);
* the mass of each ziggurat layer interval of |z| (``[0, x_255), [x_255, x_254), ..., [x_2, x_1 = r),
  [r, ∞)``) against the exact p_k = erfc(L/√2) − erfc(U/√2) = 2(Φ(U) − Φ(L)): χ² over the 256 intervals (255
  degrees of freedom), the largest |z_k| = |n_k − N p_k| / √(N p_k (1 − p_k)) with its Šidák-corrected
  p-value 1 − (1 − p(|z_k|))²⁵⁶, and the top interval [0, x_255) on its own (where toolkit 0.1.0's defect was);
* tail frequencies P(|z| > t) for t = 3, r, 4, 5 against 2Φ(−t) (binomial SE);
* serial correlation at lags 1..5 across the whole sequence (chunk boundaries included):
  ρ_k = Σ z_j z_{j+k} / (N − k) (SE 1/√(N − k) under independence).

A p-value is "unremarkable" when it is not smaller than what numpy's control shows in the same run and not
below ~10⁻³ given the ~30 p-values per generator. Pure functions compute the statistics from the counts
(:func:`report`); :class:`Accumulator` gathers the counts chunk by chunk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

TAIL_POINTS = (3.0, "r", 4.0, 5.0)
LAGS = 5
EQUI_BINS = 1000


def layer_edges() -> tuple[np.ndarray, np.ndarray]:
    """(ascending interior edges of |z|: x_255 < ... < x_1 = r, the exact masses p_k of the 256 intervals)."""
    from demmi_rf.ziggurat import tables

    x = tables()[0]
    inner = x[255:0:-1].copy()  # x_255 .. x_1
    lower = np.concatenate([[0.0], inner])
    upper = np.concatenate([inner, [np.inf]])
    p = special.erfc(lower / math.sqrt(2)) - special.erfc(upper / math.sqrt(2))
    return inner, p


@dataclass
class Accumulator:
    """Counts and sums of one stream of normals, added chunk by chunk (:meth:`add`)."""

    n: int = 0
    power_sums: list[list[float]] = field(default_factory=lambda: [[], [], [], []])  # per chunk: Σz, Σz², ...
    equi: np.ndarray = field(default_factory=lambda: np.zeros(EQUI_BINS, np.int64))
    layers: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    tails: np.ndarray = field(default_factory=lambda: np.zeros(len(TAIL_POINTS), np.int64))
    lag_sums: list[list[float]] = field(default_factory=lambda: [[] for _ in range(LAGS)])
    lag_n: np.ndarray = field(default_factory=lambda: np.zeros(LAGS, np.int64))
    previous: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def add(self, z: np.ndarray, equi_edges: np.ndarray, inner: np.ndarray, tail_t: np.ndarray) -> None:
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        self.n += z.size
        z2 = z * z
        for k, part in enumerate((z, z2, z2 * z, z2 * z2)):
            self.power_sums[k].append(float(part.sum()))
        self.equi += np.bincount(np.searchsorted(equi_edges, z, side="right"), minlength=EQUI_BINS)
        a = np.abs(z)
        self.layers += np.bincount(np.searchsorted(inner, a, side="right"), minlength=256)
        self.tails += np.array([np.count_nonzero(a > t) for t in tail_t], np.int64)
        ext = np.concatenate([self.previous, z])
        p = self.previous.size
        for k in range(1, LAGS + 1):
            start = max(0, k - p)  # the first z with a predecessor k back
            self.lag_sums[k - 1].append(float(np.dot(z[start:], ext[p - k + start : p - k + z.size])))
            self.lag_n[k - 1] += z.size - start
        self.previous = ext[-LAGS:].copy()


def _row(name: str, value: float, expected: float, se: float) -> dict:
    z = (value - expected) / se
    return {"name": name, "value": value, "expected": expected, "se": se, "z": z,
            "p": float(2 * stats.norm.sf(abs(z)))}


def report(acc: Accumulator, r: float) -> dict:
    """The statistics of one accumulator (a JSON-able dict): rows with value, expectation, SE, z, p."""
    n = acc.n
    m = [math.fsum(s) / n for s in acc.power_sums]
    rows = [
        _row("mean", m[0], 0.0, math.sqrt(1 / n)),
        _row("variance (E z^2)", m[1], 1.0, math.sqrt(2 / n)),
        _row("skewness (E z^3)", m[2], 0.0, math.sqrt(15 / n)),
        _row("kurtosis (E z^4)", m[3], 3.0, math.sqrt(96 / n)),
    ]
    expected = n / EQUI_BINS
    chi_equi = float(((acc.equi - expected) ** 2 / expected).sum())
    _, p_layer = layer_edges()
    e_layer = n * p_layer
    chi_layer = float(((acc.layers - e_layer) ** 2 / e_layer).sum())
    z_layer = (acc.layers - e_layer) / np.sqrt(e_layer * (1 - p_layer))
    worst = int(np.argmax(np.abs(z_layer)))
    p_single = float(2 * stats.norm.sf(abs(z_layer[worst])))
    p_sidak = float(-math.expm1(256 * math.log1p(-p_single))) if p_single < 1 else 1.0
    top = _row("mass of [0, x_255)", acc.layers[0] / n, p_layer[0], math.sqrt(p_layer[0] * (1 - p_layer[0]) / n))
    tails = []
    for t, k in zip(TAIL_POINTS, acc.tails):
        tv = r if t == "r" else t
        p = float(special.erfc(tv / math.sqrt(2)))
        tails.append(_row(f"P(|z| > {'r' if t == 'r' else f'{tv:g}'})", int(k) / n, p, math.sqrt(p * (1 - p) / n)))
    lags = [_row(f"lag-{k + 1} correlation", math.fsum(acc.lag_sums[k]) / int(acc.lag_n[k]), 0.0,
                 math.sqrt(1 / int(acc.lag_n[k]))) for k in range(LAGS)]
    return {
        "n": n,
        "moments": rows,
        "equiprobable_chi2": {"bins": EQUI_BINS, "chi2": chi_equi, "dof": EQUI_BINS - 1,
                              "p": float(stats.chi2.sf(chi_equi, EQUI_BINS - 1))},
        "layers": {"chi2": chi_layer, "dof": 255, "p": float(stats.chi2.sf(chi_layer, 255)),
                   "max_abs_z": float(abs(z_layer[worst])), "max_at_interval": worst,
                   "max_p_sidak": p_sidak, "top_interval": top,
                   "z": [float(v) for v in z_layer]},
        "tails": tails,
        "serial": lags,
    }


def _print_rows(title: str, sides: dict[str, list[dict]]) -> None:
    print(title)
    names = [row["name"] for row in next(iter(sides.values()))]
    for j, name in enumerate(names):
        cells = []
        for label, rows in sides.items():
            row = rows[j]
            cells.append(f"{label}: {row['value']:+.8e} (SE {row['se']:.2e}, z {row['z']:+6.2f}, p {row['p']:.3f})")
        print(f"   {name:<22} expected {rows[j]['expected']:+.8e}")
        for c in cells:
            print(f"      {c}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=float, default=1e9, help="normals per generator (default 1e9)")
    parser.add_argument("--chunk", type=float, default=4e6, help="normals per call (default 4e6)")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--json", default=None, help="write the full report (with all 256 layer z) here")
    args = parser.parse_args(argv)
    total, chunk = int(args.draws), int(args.chunk)
    if total <= 0 or chunk <= 0:
        parser.error("--draws and --chunk must be positive")

    import demmi_rf
    from demmi_rf import ziggurat

    _, _, r, _ = ziggurat.tables()
    inner, _ = layer_edges()
    equi_edges = special.ndtri(np.arange(1, EQUI_BINS) / EQUI_BINS)
    tail_t = np.array([r if t == "r" else t for t in TAIL_POINTS])
    print(f"demmi-rf {demmi_rf.__version__} (sampler backend: {ziggurat.backend()}), numpy {np.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{total:,} draws per generator in chunks of {chunk:,}; seed {args.seed} "
          "(ours: ziggurat.normal(default_rng(seed), chunk) float32; "
          "control: default_rng([seed, 1]).standard_normal(chunk) float64)")
    sys.stdout.flush()
    ours_rng = np.random.default_rng(args.seed)
    ctrl_rng = np.random.default_rng([args.seed, 1])
    accs = {"ours": Accumulator(), "numpy": Accumulator()}
    spent = {"ours": 0.0, "numpy": 0.0}
    t0 = time.perf_counter()
    done, next_log = 0, time.perf_counter() + 60
    while done < total:
        m = min(chunk, total - done)
        c = time.process_time()
        z = ziggurat.normal(ours_rng, m)
        spent["ours"] += time.process_time() - c
        accs["ours"].add(z, equi_edges, inner, tail_t)
        c = time.process_time()
        z = ctrl_rng.standard_normal(m)
        spent["numpy"] += time.process_time() - c
        accs["numpy"].add(z, equi_edges, inner, tail_t)
        done += m
        if time.perf_counter() >= next_log:
            el = time.perf_counter() - t0
            print(f"   {done:,} / {total:,} ({done / total:.1%}), {el:.0f} s, ETA {el * (total - done) / done:.0f} s, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            next_log = time.perf_counter() + 60
    wall = time.perf_counter() - t0
    reports = {k: report(a, r) for k, a in accs.items()}
    print(f"\ndone in {wall:.0f} s wall; CPU in the samplers alone: ours {spent['ours']:.1f} s, "
          f"numpy {spent['numpy']:.1f} s; load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    _print_rows("1. moments about the known mean (value, SE, z, two-sided p)",
                {k: v["moments"] for k, v in reports.items()})
    print("\n2. equiprobable bins (Phi^-1(k/1000) edges)")
    for k, v in reports.items():
        e = v["equiprobable_chi2"]
        print(f"   {k:<6} chi2 = {e['chi2']:.1f} on {e['dof']} dof, p = {e['p']:.3f}")
    print("\n3. mass per ziggurat layer interval of |z| vs exact Phi differences (256 intervals)")
    for k, v in reports.items():
        lay = v["layers"]
        print(f"   {k:<6} chi2 = {lay['chi2']:.1f} on {lay['dof']} dof, p = {lay['p']:.3f}; max |z| = "
              f"{lay['max_abs_z']:.2f} (interval {lay['max_at_interval']}), Sidak p = {lay['max_p_sidak']:.3f}")
    _print_rows("   the top interval [0, x_255) alone", {k: [v["layers"]["top_interval"]] for k, v in reports.items()})
    _print_rows("\n4. tail frequencies P(|z| > t) vs 2 Phi(-t)", {k: v["tails"] for k, v in reports.items()})
    _print_rows("\n5. serial correlation", {k: v["serial"] for k, v in reports.items()})
    ps = {k: [row["p"] for sec in ("moments", "tails", "serial") for row in v[sec]]
          + [v["equiprobable_chi2"]["p"], v["layers"]["p"], v["layers"]["max_p_sidak"],
             v["layers"]["top_interval"]["p"]]
          for k, v in reports.items()}
    print("\nsmallest p-value: " + ", ".join(f"{k} {min(p):.4f} (of {len(p)})" for k, p in ps.items()))
    if args.json:
        meta = {"draws": total, "chunk": chunk, "seed": args.seed, "backend": ziggurat.backend(),
                "version": demmi_rf.__version__, "numpy": np.__version__, "wall_s": wall,
                "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, **reports}, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
