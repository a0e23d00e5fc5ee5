"""Side-by-side cost of the KRR chain on the digits: numpy and scikit-learn loops over seeds against
collapse_jax.kernels.krr_chain.

Setting of the kernel issue: 1797 digits, RBF kernel (lengthscale 3), 297 held out, T0 = T = 300,
20 generations, a grid of 10 downstream lambdas, 200 seeds (numpy/sklearn on fewer seeds, compared per seed).
- "numpy, same algorithm": per seed, the chain's own algorithm (one eigendecomposition of the downstream kernel,
  every lambda and generation by matrix products; each generator a Cholesky solve).
- "scikit-learn KernelRidge": the loop one would write with sklearn (kernel="precomputed"): a fit per
  generator, and a downstream fit per (generation, lambda).
The kernel matrix is computed once for all (0.4 s) and is not part of the timings.

    python benchmarks/bench_kernels.py
"""

from __future__ import annotations

import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from collapse_jax.engine import use_fused_threefry, use_one_lapack_thread  # noqa: E402
from collapse_jax.kernels import kernel_matrix, krr_chain, load_digits, split  # noqa: E402

use_fused_threefry()  # as the CLI runs (same draws, faster); importing the package does not
use_one_lapack_thread()  # as the CLI runs: one OpenBLAS thread inside XLA's

T0 = T = 300
G, SEEDS, SIGMA0, LAM_GEN = 20, 200, 0.2, 1e-3
LAMS = np.logspace(-4, 0, 10)


def numpy_chain(rng, K_PP, K_QP, Y_P, Y_Q):
    Np = len(K_PP)
    D = rng.integers(0, Np, T)
    e, U = np.linalg.eigh(K_PP[np.ix_(D, D)])
    KQU = K_QP[:, D] @ U
    errors = np.empty((G + 1, LAMS.size))

    def downstream(y):
        pred = np.einsum("qt,ltc->lqc", KQU, (U.T @ y)[None] / (e[None, :, None] + T * LAMS[:, None, None]))
        return np.mean(np.sum((pred - Y_Q[None]) ** 2, -1), -1)

    errors[0] = downstream(Y_P[D])
    S_prev, alpha = None, None
    for n in range(1, G + 1):
        S = rng.integers(0, Np, T0)
        y = (Y_P[S] if n == 1 else K_PP[np.ix_(S, S_prev)] @ alpha) + SIGMA0 * rng.standard_normal((T0, Y_P.shape[1]))
        chol = np.linalg.cholesky(K_PP[np.ix_(S, S)] + T0 * LAM_GEN * np.eye(T0))
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
        S_prev = S
        errors[n] = downstream(K_PP[np.ix_(D, S)] @ alpha)
    return errors


def sklearn_chain(rng, K_PP, K_QP, Y_P, Y_Q):
    from sklearn.kernel_ridge import KernelRidge

    Np = len(K_PP)
    D = rng.integers(0, Np, T)
    errors = np.empty((G + 1, LAMS.size))

    def downstream(y):
        return [
            np.mean(
                np.sum(
                    (
                        KernelRidge(alpha=T * lam, kernel="precomputed").fit(K_PP[np.ix_(D, D)], y).predict(K_QP[:, D])
                        - Y_Q
                    )
                    ** 2,
                    -1,
                )
            )
            for lam in LAMS
        ]

    errors[0] = downstream(Y_P[D])
    model, S_prev = None, None
    for n in range(1, G + 1):
        S = rng.integers(0, Np, T0)
        y = (Y_P[S] if n == 1 else model.predict(K_PP[np.ix_(S, S_prev)])) + SIGMA0 * rng.standard_normal((T0, 10))
        model = KernelRidge(alpha=T0 * LAM_GEN, kernel="precomputed").fit(K_PP[np.ix_(S, S)], y)
        S_prev = S
        errors[n] = downstream(model.predict(K_PP[np.ix_(D, S)]))
    return errors


def main():
    data = load_digits()
    K = kernel_matrix("rbf", data.X, lengthscale=3.0)
    pool, test = split(data, test=297)
    parts = K[np.ix_(pool, pool)], K[np.ix_(test, pool)], data.Y[pool], data.Y[test]
    print(f"devices: {jax.devices()}")
    kw = dict(T0=T0, T=T, generations=G, sigma0=SIGMA0, lam=LAMS, lam_gen=LAM_GEN)
    t = time.perf_counter()
    krr_chain(K, data.Y, pool, test, seeds=SEEDS, key=0, **kw)
    first = time.perf_counter() - t
    t = time.perf_counter()
    out = krr_chain(K, data.Y, pool, test, seeds=SEEDS, key=1, **kw)
    t_jax = time.perf_counter() - t
    rows = [("collapse_jax krr_chain", SEEDS, t_jax, out.test_error[:, :, -1])]
    rng = np.random.default_rng(0)
    for name, fn, seeds in (("numpy, same algorithm", numpy_chain, 40), ("scikit-learn KernelRidge", sklearn_chain, 5)):
        t = time.perf_counter()
        errs = np.stack([fn(rng, *parts) for _ in range(seeds)])
        rows.append((name, seeds, time.perf_counter() - t, errs[:, -1, :]))
    print(f"digits, T0 = T = {T0}, {G} generations, {LAMS.size} lambdas; first JAX call (compile + run) {first:.1f}s")
    print(
        "| implementation | seeds timed | seconds | seeds/s | time for 200 seeds | JAX speed-up | error n=20, λ=1e-2 |"
    )
    print("|---|---|---|---|---|---|---|")
    rate_jax = SEEDS / t_jax
    for name, seeds, secs, final in rows:
        rate = seeds / secs
        print(
            f"| {name} | {seeds} | {secs:.1f} | {rate:.2f} | {SEEDS / rate:.0f} s | **{rate_jax / rate:.1f}x** | "
            f"{final[:, 6].mean():.4f} ± {final[:, 6].std(ddof=1) / np.sqrt(len(final)):.4f} |"
        )


if __name__ == "__main__":
    main()
