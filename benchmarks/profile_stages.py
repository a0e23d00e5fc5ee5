"""Where the time of the two chains that miss their speed target goes, stage by stage, JAX beside numpy.

Each stage of the regression chain (d = 100, T = T0 = 300, ridge downstream) and of the 1-D Gaussian chain
(M = 100, 1000 generations) is timed on its own for 2,000 seeds at once: JAX jitted and vmapped over seeds,
numpy on stacks with one BLAS thread. Rates are best of 5, float64. The GFlop/s column says how close each
linear-algebra kernel comes to the machine (one Zen 4 core: about 40 GFlop/s in numpy's stacked GEMM).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_stages.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve

jax.config.update("jax_enable_x64", True)

from collapse_jax.engine import use_fused_threefry, use_one_lapack_thread  # noqa: E402
from collapse_jax.engine.rng import log_gamma  # noqa: E402
from collapse_jax.regression import samplers  # noqa: E402

use_fused_threefry()  # as the CLI runs (same draws, faster); importing the package does not
use_one_lapack_thread()  # as the CLI runs: one OpenBLAS thread inside XLA's

S, D, T, G = 2000, 100, 300.0, 20
M, G_GAUSS = 100, 1000


def best(fn, *args, repeats=5):
    fn(*args)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    keys = jax.random.split(jax.random.key(0), S)
    L = jax.jit(jax.vmap(lambda k: samplers.bartlett(k, D, T)))(keys)
    A = L @ jnp.swapaxes(L, -1, -2) / T + 0.1 * jnp.eye(D)
    C = jnp.linalg.cholesky(A)
    B = jax.random.normal(jax.random.key(1), (S, D, G + 1))
    Ln, An, Bn = (np.asarray(x) for x in (L, A, B))
    rng = np.random.default_rng(0)
    below = np.tril_indices(D, -1)
    n_low = below[0].size
    gemm, chol, solve = 2 * D**3, D**3 / 3, 2 * D * D * (G + 1)  # flops per seed (solve: two triangles)

    stages = [
        (
            "regression: d(d-1)/2 normals",
            None,
            jax.jit(jax.vmap(lambda k: jax.random.normal(k, (n_low,)))),
            (keys,),
            lambda: rng.standard_normal((S, n_low)),
            (),
        ),
        (
            "regression: d chi-squares",
            None,
            jax.jit(jax.vmap(lambda k: log_gamma(k, (T - jnp.arange(D)) / 2))),
            (keys,),
            lambda: rng.chisquare(T - np.arange(D), (S, D)),
            (),
        ),
        (
            "regression: L L' (GEMM)",
            gemm,
            jax.jit(lambda L: L @ jnp.swapaxes(L, -1, -2)),
            (L,),
            lambda: Ln @ Ln.transpose(0, 2, 1),
            (),
        ),
        (
            "regression: Cholesky",
            chol,
            jax.jit(lambda A: cho_factor(A, lower=True)[0]),
            (A,),
            lambda: np.linalg.cholesky(An),
            (),
        ),
        (
            "regression: 21 right-hand sides (two triangles)",
            solve,
            jax.jit(jax.vmap(lambda C, B: cho_solve((C, True), B))),
            (C, B),
            lambda: np.linalg.solve(An, Bn),
            (),
        ),
        (
            "Gaussian: 1000 chi-squares per seed",
            None,
            jax.jit(jax.vmap(lambda k: log_gamma(k, jnp.full(G_GAUSS, (M - 1) / 2)))),
            (keys,),
            lambda: np.log(rng.chisquare(M - 1, (S, G_GAUSS))),
            (),
        ),
        (
            "Gaussian: 1000 normals per seed",
            None,
            jax.jit(jax.vmap(lambda k: jax.random.normal(k, (G_GAUSS,)))),
            (keys,),
            lambda: rng.standard_normal((S, G_GAUSS)),
            (),
        ),
    ]
    print(
        f"jax {jax.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, {S} seeds, float64, "
        f"numpy BLAS threads {os.environ['OPENBLAS_NUM_THREADS']} (numpy's solve stage is LU with 21 right-hand "
        "sides, as the peer calls it)\n"
    )
    print("| stage | jax ms | numpy ms | jax / numpy time | jax GFlop/s | numpy GFlop/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, flops, jfn, jargs, nfn, nargs in stages:
        tj, tn = best(jfn, *jargs), best(nfn, *nargs)
        rate = (lambda t, flops=flops: f"{flops * S / t / 1e9:.1f}") if flops else (lambda t: "-")
        print(f"| {name} | {tj * 1e3:.1f} | {tn * 1e3:.1f} | {tj / tn:.2f} | {rate(tj)} | {rate(tn)} |", flush=True)


if __name__ == "__main__":
    main()
