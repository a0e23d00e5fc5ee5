"""Side-by-side cost of one regression chain over many seeds: a plain numpy loop against cj.simulate.

Setting of the foundation issue: d = 100, T = T0 = 300, 20 generations, OLS generators (the paper's
chain) with an OLS (lam = 0) or ridge (lam = 0.1) downstream model, and a third row with ridge generators
too. The numpy reference runs the same algorithm as the chain: per seed, 20 generator fits on fresh
designs (draw X, np.linalg.solve), and one downstream design, drawn and factored once and solved for the
21 generations' labels. It runs on fewer seeds (its cost is linear in seeds); rates are compared per seed.

    python benchmarks/bench_simulate.py [--seeds 1000] [--numpy-seeds 100] [--memory-seeds 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

D, T, GENERATIONS = 100, 300, 20


def numpy_chain(rng, eig, w0, lam_gen, lam_down, sigma0=1.0, sigma=1.0):
    """One seed, the textbook way: draw X, label, solve, for every generator and downstream fit."""
    sqrt_eig = np.sqrt(eig)

    def fit(w, s, lam):
        X = rng.standard_normal((T, D)) * sqrt_eig
        y = X @ w + s * rng.standard_normal(T)
        return np.linalg.solve(X.T @ X / T + lam * np.eye(D), X.T @ y / T)

    X_down = rng.standard_normal((T, D)) * sqrt_eig
    chol = np.linalg.cholesky(X_down.T @ X_down / T + lam_down * np.eye(D))

    def downstream(w):
        y = X_down @ w + sigma * rng.standard_normal(T)
        fitted = np.linalg.solve(chol.T, np.linalg.solve(chol, X_down.T @ y / T))
        return float(np.sum(eig * (fitted - w0) ** 2))

    w, out = w0, [downstream(w0)]
    for _ in range(GENERATIONS):
        w = fit(w, sigma0, lam_gen)
        out.append(downstream(w))
    return out


def time_numpy(seeds, lam_gen, lam_down):
    import collapse_jax as cj

    spec = cj.Spectrum.isotropic(D)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    errs = [numpy_chain(rng, spec.eigenvalues, spec.w0, lam_gen, lam_down) for _ in range(seeds)]
    return time.perf_counter() - t, np.asarray(errs)


def time_jax(seeds, lam_gen, lam_down, sampler):
    import collapse_jax as cj

    spec = cj.Spectrum.isotropic(D)
    gen = cj.Generators(T0=T, sigma0=1.0, lam=lam_gen if lam_gen > 0 else None)
    down = cj.Downstream(T=T, sigma=1.0, lam=lam_down)
    t = time.perf_counter()
    cj.simulate(spec, gen, down, GENERATIONS, seeds, key=0, sampler=sampler)  # includes compilation
    first = time.perf_counter() - t
    t = time.perf_counter()
    res = cj.simulate(spec, gen, down, GENERATIONS, seeds, key=1, sampler=sampler)
    return first, time.perf_counter() - t, res.test_error


def peak_memory(seeds: int) -> dict:
    """Peak resident memory of a fresh process simulating `seeds` seeds (suffstats, OLS)."""
    code = f"""
import time, jax
jax.config.update("jax_enable_x64", True)
import collapse_jax as cj
cj.engine.use_fused_threefry()
cj.engine.use_one_lapack_thread()  # as the CLI runs: one OpenBLAS thread inside XLA's
t = time.perf_counter()
r = cj.simulate(cj.Spectrum.isotropic({D}), cj.Generators(T0={T}), cj.Downstream(T={T}), {GENERATIONS}, {seeds}, 0)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 2**20
print(time.perf_counter() - t, peak, r.test_error.shape[0])  # VmHWM: this process's own peak (not the parent's)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return dict(seeds=int(out[2]), seconds=float(out[0]), peak_rss_gb=float(out[1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--numpy-seeds", type=int, default=100)
    parser.add_argument("--memory-seeds", type=int, default=100_000)
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    print(f"jax {jax.__version__}, devices {jax.devices()}, float64; d={D}, T=T0={T}, {GENERATIONS} generations")
    rows = []
    for label, lam_gen, lam_down in [("OLS", 0.0, 0.0), ("ridge", 0.0, 0.1), ("ridge-gen", 0.1, 0.1)]:
        t_np, e_np = time_numpy(args.numpy_seeds, lam_gen, lam_down)
        np_rate = args.numpy_seeds / t_np
        for sampler in ("suffstats", "direct"):
            first, t_jax, e_jax = time_jax(args.seeds, lam_gen, lam_down, sampler)
            rate = args.seeds / t_jax
            # the two implementations must agree on the answer, not only be timed
            z = (e_jax[:, -1].mean() - e_np[:, -1].mean()) / np.hypot(
                e_jax[:, -1].std() / np.sqrt(len(e_jax)), e_np[:, -1].std() / np.sqrt(len(e_np))
            )
            rows.append(
                dict(
                    problem=label,
                    sampler=sampler,
                    numpy_seeds_per_s=round(np_rate, 1),
                    jax_seeds_per_s=round(rate, 1),
                    speedup=round(rate / np_rate, 1),
                    first_call_s=round(first, 2),
                    z_final_error_jax_vs_numpy=round(float(z), 2),
                )
            )
            print(json.dumps(rows[-1]))
    print(f"{'problem':10} {'sampler':10} {'numpy seeds/s':>14} {'jax seeds/s':>12} {'speed-up':>9}")
    for r in rows:
        print(
            f"{r['problem']:10} {r['sampler']:10} {r['numpy_seeds_per_s']:>14} {r['jax_seeds_per_s']:>12} "
            f"{r['speedup']:>8}x"
        )
    if args.memory_seeds:
        mem = peak_memory(args.memory_seeds)
        print(
            f"memory: {mem['seeds']} seeds (suffstats, OLS) in {mem['seconds']:.1f}s, "
            f"peak RSS {mem['peak_rss_gb']:.2f} GB"
        )


if __name__ == "__main__":
    main()
