"""Measure the finite-size gap of the ridge deterministic equivalent on a grid (theory/ridge.md "Finite-size gap").

For each (spectrum, d, T/d, lambda) the downstream error after n = 0..2 OLS generators is simulated with many
seeds; the gap |mean/theory - 1| and its upper bound gap + 2 sem/mean are printed with d * upper, whose maximum
is the measured constant c of the bound c/d. The lab states DE_GAP_C = 2 (engine/agreement.py).

    python benchmarks/de_gap_grid.py [seeds]
"""

import sys

import numpy as np

import collapse_jax as cj
from collapse_jax.engine import agreement


def main(seeds: int = 3000) -> float:
    worst = 0.0
    print(f"{'spectrum':>10} {'d':>4} {'T':>5} {'lam':>6} {'n':>2} {'gap':>7} {'upper':>7} {'d*upper':>8}")
    for d in (20, 50):
        for name, spec in (("isotropic", cj.Spectrum.isotropic(d)), ("power law", cj.Spectrum.power_law(d, 1.5, 0.5))):
            for ratio in (0.5, 1.5, 3.0):
                for lam in (0.01, 0.1, 1.0):
                    gen, down = cj.Generators(T0=3 * d), cj.Downstream(T=int(ratio * d), lam=lam)
                    res = cj.simulate(spec, gen, down, 2, seeds, key=7)
                    mean, sem = agreement.mean_sem(res.test_error)
                    th = np.asarray(cj.theory.test_error(spec, gen, down, np.arange(3)))
                    gap = np.abs(mean / th - 1)
                    upper = gap + 2 * sem / np.abs(mean)
                    for n in range(3):
                        print(
                            f"{name:>10} {d:>4} {down.T:>5} {lam:>6} {n:>2} {gap[n]:>7.2%} {upper[n]:>7.2%} "
                            f"{d * upper[n]:>8.2f}",
                            flush=True,
                        )
                    worst = max(worst, float(np.max(d * upper)))
    print(f"largest d * (gap + 2 sem/mean): {worst:.2f} (stated bound: c = {agreement.DE_GAP_C:g})")
    return worst


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
