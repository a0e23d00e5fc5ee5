"""Three ways to predict the held-out points from a KRR model on pool points, K_QP[:, idx] @ coef, for 100 seeds
in one compiled program: gather columns of K_QP (the lab before issue 26), gather rows of K_PQ (the lab now,
kernels/chain.py `_predict`), or scatter the coefficients onto the whole pool and take one matrix product over the
seeds (fastest at small pools, not used: the shared product rounds a seed's numbers by the batch's size, so a
seed's result would depend on its chunk).

    python benchmarks/bench_krr_predictions.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

SEEDS = 100
# (held-out Q, pool P, outputs C, points T): the power-law test, the digits, an MNIST-like pool, two large pools
SHAPES = [
    (2000, 2000, 1, 200),
    (297, 1500, 10, 300),
    (1000, 5000, 10, 1000),
    (1000, 10000, 10, 300),
    (1000, 20000, 10, 100),
]


def columns(K_QP, K_PQ, idx, coef):
    return K_QP[:, idx] @ coef


def rows(K_QP, K_PQ, idx, coef):
    return jnp.tensordot(K_PQ[idx], coef, (0, 0))


def scatter(K_QP, K_PQ, idx, coef):
    return jnp.tensordot(K_PQ, jnp.zeros((K_PQ.shape[0], coef.shape[1])).at[idx].add(coef), (0, 0))


def best_of(fn, *args, repeats=3):
    fn = jax.jit(fn)
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {SEEDS} seeds per program, best of 3 (ms)\n")
    print("| Q | P | C | T | P C / T | gather columns of K_QP | gather rows of K_PQ | scatter + one product |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for Q, P, C, T in SHAPES:
        K_QP = jnp.asarray(rng.normal(size=(Q, P)))
        K_PQ = K_QP.T.copy()
        idx, coef = rng.integers(0, P, (SEEDS, T)), rng.normal(size=(SEEDS, T, C))
        ms = [
            best_of(jax.vmap(way, (None, None, 0, 0)), K_QP, K_PQ, idx, coef) * 1e3 for way in (columns, rows, scatter)
        ]
        print(f"| {Q} | {P} | {C} | {T} | {P * C / T:.0f} | {ms[0]:.0f} | {ms[1]:.0f} | {ms[2]:.0f} |")


if __name__ == "__main__":
    main()
