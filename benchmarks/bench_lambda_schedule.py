"""What a lambda that changes with n costs against one lambda for every n (latency issue, item 3).

The adaptive rule and optimised schedules give the downstream model a different lambda at every generation n.
With one lambda, each seed factors its downstream system once; with a lambda per n the chain either factors it
once per n (a Cholesky per n) or reduces it once to tridiagonal form and solves every n from that
(`regression/samplers.py`, `Reduced`; theory/samplers.md "One design, many lambdas"). This script times the
three side by side in one process, in CPU seconds and wall seconds, for each size, and prints the ratios to one
lambda: the row the issue asks for is "reduction / one lambda" (target 1.5x or less).

    python benchmarks/bench_lambda_schedule.py [--seeds 40] [--generations 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

# (d, downstream T, generators' T0): the suffstats path (T >= d) and the dual path (T < d); (800, 256) is the
# issue's case
SIZES = [(100, 300, 300), (400, 200, 800), (400, 800, 800), (800, 256, 1600), (800, 512, 1600), (800, 1600, 1600)]


def best_of(fn, repeats: int):
    """Best (CPU s, wall s) of `repeats` calls."""
    out = []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        out.append((time.process_time() - c, time.perf_counter() - w))
    return min(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import jax

    import collapse_jax as cj
    from collapse_jax.engine import use_fused_threefry, use_one_lapack_thread
    from collapse_jax.regression import samplers

    jax.config.update("jax_enable_x64", True)
    use_fused_threefry()  # as the CLI runs
    use_one_lapack_thread()  # as the CLI runs: one OpenBLAS thread inside XLA's
    G = args.generations
    lams = np.geomspace(0.01, 0.1, G + 1)  # a different lambda at every n = 0..G
    print(f"jax {jax.__version__}, {args.seeds} seeds, {G} generations, power law (beta = 2, r = 0.5), float64")
    print(
        "| d | T | T0 | one lambda s (CPU / wall) | Cholesky per n | one reduction | Cholesky per n / one | reduction / one |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d, T, T0 in SIZES:
        spec, gen = cj.Spectrum.power_law(d, 2.0, 0.5), cj.Generators(T0=T0)
        times = {}
        for label, lam, forced in [("one", 0.03, None), ("per_n", lams, 10**9), ("reduced", lams, 1)]:
            if forced is not None:  # force one route whatever the chain's rule would pick
                samplers.SHIFTS_MIN = samplers.SHIFTS_MIN_WORK = forced
            jax.clear_caches()  # the rule is read when a program is traced
            down = cj.Downstream(T=T, lam=lam)
            run = lambda spec=spec, gen=gen, down=down: cj.simulate(spec, gen, down, G, args.seeds, key=1)
            run()  # compile
            times[label] = best_of(run, args.repeats)
        one, per_n, red = times["one"], times["per_n"], times["reduced"]
        print(
            f"| {d} | {T} | {T0} | {one[0]:.2f} / {one[1]:.2f} | {per_n[0]:.2f} / {per_n[1]:.2f} | "
            f"{red[0]:.2f} / {red[1]:.2f} | {per_n[0] / one[0]:.2f}x | {red[0] / one[0]:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
