"""Cost of each data strategy against the number of generations n, one process, float64, 2 CPU cores.

Regression chain, d = 50, T0 = 75, T = 100 (OLS downstream), 1000 seeds: replace (multivariate-t steps),
replace with 20% real rows (drawn designs), accumulate (Bartlett blocks into a carried d x d Gram matrix and
X'y: O(d^2) memory per seed whatever n), accumulate with a fixed design, and accumulate-subsample (a pool of
n T0 rows per seed, a uniform subset each generation). Compilation is timed apart (first call) from the run
(second call, other key). Per seed and generation the table gives microseconds and the bytes a seed carries.

    python benchmarks/bench_strategies.py [--seeds 1000] [--generations 10 20 40]
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import collapse_jax as cj  # noqa: E402

cj.engine.use_fused_threefry()  # as the CLI runs (same draws, faster); importing the package does not
cj.engine.use_one_lapack_thread()  # as the CLI runs: one OpenBLAS thread inside XLA's

D, T0, T = 50, 75, 100
VARIANTS = {
    "replace": dict(),
    "replace, 20% real": dict(real_fraction=0.2),
    "accumulate": dict(strategy="accumulate"),
    "accumulate, fixed": dict(strategy="accumulate", fixed=True),
    "accumulate_subsample": dict(strategy="accumulate_subsample"),
}


def carried_bytes(label, n):
    """What one seed keeps between generations (float64)."""
    if label.startswith("accumulate_subsample"):
        return 8 * (n * T0 + T0) * (D + 1)
    if label.startswith("accumulate"):
        return 8 * (D * D + D + 1)
    return 8 * D


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--generations", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args()
    spec, down = cj.Spectrum.isotropic(D), cj.Downstream(T=T, sigma=0.5)
    print(
        f"d = {D}, T0 = {T0}, T = {T}, {args.seeds} seeds, {jax.local_device_count()} device(s), jax {jax.__version__}"
    )
    print(f"{'strategy':>22} {'n':>4} {'compile+run s':>14} {'run s':>7} {'us / seed / gen':>16} {'bytes / seed':>13}")
    for label, options in VARIANTS.items():
        gen = cj.Generators(T0=T0, sigma0=1.0, **options)
        for n in args.generations:
            t = time.perf_counter()
            cj.simulate(spec, gen, down, n, args.seeds, key=0)
            first = time.perf_counter() - t
            t = time.perf_counter()
            cj.simulate(spec, gen, down, n, args.seeds, key=1)
            run = time.perf_counter() - t
            print(
                f"{label:>22} {n:>4} {first:>14.2f} {run:>7.2f} {1e6 * run / (args.seeds * n):>16.1f} "
                f"{carried_bytes(label, n):>13}"
            )


if __name__ == "__main__":
    main()
