"""Cost of the theory on a grid and of simulation at d = 2000 (power-law spectra, issue 3).

1. The deterministic equivalent on 10,000 (lambda, T, n) points, one vmapped call, against a numpy loop
   that solves the same kappa fixed point point by point (scipy-free bisection, same iteration count).
2. Simulation with d = 2000 (power law beta = 2, r = 0.5), T0 = 2d OLS generators (multivariate-t steps),
   downstream T in {100, 1000} (< d: direct dual solve), 5 generations: seeds per second.

    python benchmarks/bench_theory.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
import collapse_jax as cj  # noqa: E402
from collapse_jax.regression.theory import moments, ridge  # noqa: E402


def numpy_kappa(ev, lam, T, iters=80):
    lo, hi = np.log(min(lam, 1e-12 * ev.min())), np.log(lam + ev.sum() / T)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        k = np.exp(mid)
        if k - lam - k * np.sum(ev / (ev + k)) / T < 0:
            lo = mid
        else:
            hi = mid
    return np.exp(0.5 * (lo + hi))


def theory_grid(d=1000):
    spec = cj.Spectrum.power_law(d, 2.0, 0.5)
    gen = cj.Generators(T0=2 * d, sigma0=1.0)
    lams, Ts, ns = np.logspace(-6, 1, 25), np.logspace(1, 4, 20), np.arange(20)
    L, TT, N = (a.ravel() for a in np.meshgrid(lams, Ts, ns, indexing="ij"))
    mom = moments.generator_moments(spec, gen, N)
    ev, w0 = jnp.asarray(spec.eigenvalues), jnp.asarray(spec.w0)
    f = jax.jit(jax.vmap(lambda m, T, lam: ridge.test_error(ev, w0, m, T, 0.5, lam)))
    args = (mom, jnp.asarray(TT), jnp.asarray(L))
    t = time.perf_counter()
    f(*args).block_until_ready()
    first = time.perf_counter() - t
    t = time.perf_counter()
    out = f(*args).block_until_ready()
    warm = time.perf_counter() - t
    sample = np.random.default_rng(0).choice(L.size, 200, replace=False)
    t = time.perf_counter()
    for i in sample:
        numpy_kappa(np.asarray(spec.eigenvalues), L[i], TT[i])
    np_per_point = (time.perf_counter() - t) / sample.size
    print(
        f"theory grid: {L.size} (lambda, T, n) points at d={d}: first call {first:.2f}s (compile), "
        f"then {warm * 1e3:.0f} ms ({L.size / warm:,.0f} points/s); numpy loop (kappa alone) "
        f"{np_per_point * 1e3:.2f} ms/point -> {np_per_point * L.size / warm:.0f}x; all finite: "
        f"{bool(np.all(np.isfinite(out)))}"
    )


def simulation_d2000(seeds=64):
    d = 2000
    spec = cj.Spectrum.power_law(d, 2.0, 0.5)
    for T in (100, 1000):
        gen, down = cj.Generators(T0=2 * d, sigma0=1.0), cj.Downstream(T=T, sigma=0.5, lam=T ** -(2 / 3))
        t = time.perf_counter()
        cj.simulate(spec, gen, down, 5, seeds, key=0)
        first = time.perf_counter() - t
        t = time.perf_counter()
        res = cj.simulate(spec, gen, down, 5, seeds, key=1)
        warm = time.perf_counter() - t
        th = cj.theory.metrics(spec, gen, down, np.arange(6))
        z = np.abs(res.zscore(th).test_error).max()
        print(
            f"simulation d={d}, T={T}, 5 generations: {seeds / warm:.1f} seeds/s (first call {first:.1f}s), "
            f"max |z| vs theory over n = 0..5 at {seeds} seeds: {z:.2f}"
        )


if __name__ == "__main__":
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    theory_grid()
    simulation_d2000()
