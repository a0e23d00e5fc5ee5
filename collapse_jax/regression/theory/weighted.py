"""Weighted real/synthetic training of OLS fits (derivation: theory/weighted.md).

A fit on n_r real rows (labelled by w0) and n_s synthetic rows (labelled by the previous model w) minimises
w (mean loss on the real rows) + (1 - w) (mean loss on the synthetic rows). For OLS on fresh Gaussian rows the
error stays rotation invariant in whitened coordinates, Cov(w_k - w0) = c_k Sigma^-1 for any spectrum, and

    c_k = gamma(w) c_{k-1} + sigma_k^2 nu(w)                                   [exact recursion]

with gamma, nu expectations over the two fresh Wishart blocks. `step_factors` evaluates them by a deterministic
equivalent [DE] (theory/weighted.md §3), shifted so that the noise term is exact at w = 0, w = n_r/T and w = 1;
`limit_factors` is the large-sample limit gamma = (1 - w)^2, nu = w^2/n_r + (1 - w)^2/n_s; `limit_optimum` the
optimal weight there, w* = (sqrt(k^2 + 4k) - k)/2 with k = n_r/n_s (1/phi at k = 1).

Example:
    >>> import jax
    >>> with jax.enable_x64(True):
    ...     round(float(limit_optimum(1.0)), 6)
    0.618034
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.regression.theory._common import NoFormulaError

_NEWTON = 60  # Newton steps on a concave increasing function from the left: monotone, quadratic near the root


def _fixed_point(n_r, n_s, w, d: int, lam=0.0):
    """(e_r, e_s, tau, S, t2) of the weighted Gram matrix G = sum_i D_i z_i z_i' (+ lam): the leave-one-out weights
    e_g = D_g/(1 + D_g delta) of a real and a synthetic row, tau = n_r e_r + n_s e_s, S = n_r e_r^2 + n_s e_s^2 and
    t2 = tr (G + lam)^-2, with delta = tr (G + lam)^-1 the root of n_r a delta/(1 + a delta) + n_s b delta/(1 + b
    delta) + lam delta = d + 1 (theory/weighted.md §3)."""
    n_r, n_s, w, lam = (jnp.asarray(x, jnp.float64) for x in (n_r, n_s, w, lam))
    a = w / jnp.maximum(n_r, 1.0)  # loss weight per real row
    b = (1 - w) / jnp.maximum(n_s, 1.0)
    D = d + 1.0  # the inverse-Wishart shift: makes nu exact at w = 0, n_r/T, 1 (theory/weighted.md §3)

    def F(delta):  # concave and increasing in delta, F(0) = -D
        return n_r * a * delta / (1 + a * delta) + n_s * b * delta / (1 + b * delta) + lam * delta - D

    def dF(delta):
        return n_r * a / (1 + a * delta) ** 2 + n_s * b / (1 + b * delta) ** 2 + lam

    delta = jax.lax.fori_loop(0, _NEWTON, lambda _, x: x - F(x) / dF(x), jnp.zeros_like(a + b + lam))
    e_r, e_s = a / (1 + a * delta), b / (1 + b * delta)
    tau = n_r * e_r + n_s * e_s
    S = n_r * e_r**2 + n_s * e_s**2
    return e_r, e_s, tau, S, D / ((tau + lam) ** 2 - D * S), D


def step_factors(n_r, n_s, w, d: int):
    """(gamma, nu) of one weighted OLS fit in whitened coordinates [DE, theory/weighted.md §3]: the fit keeps
    gamma of the previous error's second moment and adds sigma^2 nu per coordinate. Differentiable in w.

    Args:
        n_r, n_s: real and synthetic row counts (floats or arrays; n_r + n_s >= d + 2).
        w: the loss weight of the real rows, in [0, 1].
        d: the dimension.

    Returns:
        (gamma, nu), arrays of the broadcast shape.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     g, nu = step_factors(1e8, 1e8, 0.5, 10)
        >>> round(float(g), 6), round(float(nu * 1e8), 6)
        (0.25, 0.5)
    """
    n_r, n_s = jnp.asarray(n_r, jnp.float64), jnp.asarray(n_s, jnp.float64)
    e_r, e_s, tau, S, t2, D = _fixed_point(n_r, n_s, w, d)
    tau_r, tau_s = n_r * e_r, n_s * e_s
    gamma = (tau_s / tau) ** 2 + t2 * (n_r * e_r**2 * (tau_s / tau) ** 2 + n_s * e_s**2 * (tau_r / tau) ** 2)
    return gamma, t2 * S / D


def limit_factors(n_r, n_s, w):
    """(gamma, nu) in the large-sample limit (n_r, n_s >> d): ((1 - w)^2, w^2/n_r + (1 - w)^2/n_s).

    Example:
        >>> limit_factors(100.0, 100.0, 0.5)
        (0.25, 0.005)
    """
    return (1 - w) ** 2, w**2 / n_r + (1 - w) ** 2 / n_s


def limit_optimum(ratio):
    """The weight minimising the large-sample stationary error nu/(1 - gamma), for ratio = n_s/n_r:
    w* = (sqrt(k^2 + 4k) - k)/2 with k = n_r/n_s, the root of w^2 + k w - k = 0 (theory/weighted.md §4).

    Example:
        >>> [round(float(limit_optimum(r)), 6) for r in (1.0, 2.0, 0.5)]
        [0.618034, 0.5, 0.732051]
    """
    k = 1.0 / jnp.asarray(ratio, jnp.float64)
    return (jnp.sqrt(k**2 + 4 * k) - k) / 2


def stationary_scale(n_r, n_s, w, d: int, sigma):
    """c_inf = sigma^2 nu/(1 - gamma), the fixed point of the recursion [DE]; the generators' stationary error is
    c_inf d. Example: ``stationary_scale(100, 100, 0.618, 10, 1.0)``."""
    gamma, nu = step_factors(n_r, n_s, w, d)
    return jnp.asarray(sigma, jnp.float64) ** 2 * nu / (1 - gamma)


def ridge_step(A, B, W, n_r, n_s, w, d: int, lam, sigma):
    """One weighted ridge fit in whitened isotropic coordinates [DE, theory/weighted.md §3]: from A = E||w_prev||^2,
    B = E w0'w_prev and W = ||w0||^2 to (A, B) of the new fit, whose rows are labelled by w0 (real) or w_prev.

    Example:
        >>> import jax
        >>> with jax.enable_x64(True):
        ...     A, B = ridge_step(1.0, 1.0, 1.0, 1e8, 1e8, 0.5, 10, 0.0, 0.0)  # no noise, no penalty: w0 again
        >>> round(float(A), 6), round(float(B), 6)
        (1.0, 1.0)
    """
    n_r, n_s = jnp.asarray(n_r, jnp.float64), jnp.asarray(n_s, jnp.float64)
    e_r, e_s, tau, S, t2, D = _fixed_point(n_r, n_s, w, d, lam)
    p, q = n_r * e_r / tau, n_s * e_s / tau  # the rows' consensus target p w0 + q w_prev
    target_sq, target_w0 = p**2 * W + 2 * p * q * B + q**2 * A, p * W + q * B
    misfit = W - 2 * B + A  # E||w0 - w_prev||^2
    shrink = 1 - 2 * lam / (tau + lam) + lam**2 * t2 / D  # E||(I - lam Q) t||^2 / ||t||^2, per coordinate t2/D
    fluct = t2 * (n_r * e_r**2 * q**2 + n_s * e_s**2 * p**2) * misfit + sigma**2 * t2 * S * d / D
    A_new = target_sq * shrink + fluct
    return A_new, tau / (tau + lam) * target_w0


def ridge_recursion(W, n_r, n_s, w, d: int, lam, sigma):
    """(A_k, B_k) for k = 1..G of weighted ridge generators in whitened isotropic coordinates [DE]; the inputs
    (apart from W = ||w0||^2 and d) are per-generation arrays of length G, lam already divided by Sigma's
    eigenvalue. Example: see `ridge_generator_moments`."""

    def step(carry, xs):
        n_r_k, n_s_k, w_k, lam_k, sigma_k = xs
        A, B = ridge_step(carry[0], carry[1], W, n_r_k, n_s_k, w_k, d, lam_k, sigma_k)
        return (A, B), (A, B)

    xs = tuple(jnp.asarray(x, jnp.float64) for x in (n_r, n_s, w, lam, sigma))
    W = jnp.asarray(W, jnp.float64)
    return jax.lax.scan(step, (W, W), xs)[1]


_BISECTIONS = 100  # log delta in [log 1e-12, log 1e15]: width < 63, halved 100 times, far below float64 resolution


def _spectral_fixed_point(eig, n_r, n_s, w, lam):
    """(e_r, e_s, tau, S, kappa) of the weighted Gram matrix sum_i D_i x_i x_i' + lam with x_i ~ N(0, Sigma) for any
    spectrum (theory/weighted.md §3b): delta = tr Sigma Q is the root of
    N(delta) = rho df_1(lam/tau(delta)), N(delta) = sum_i D_i delta/(1 + D_i delta), tau = sum_i D_i/(1 + D_i delta),
    rho = (d + 1)/d the inverse-Wishart shift, kappa = lam/tau. N - rho df_1 increases in delta (N rises, tau falls,
    kappa rises, df_1 falls), so bisection on log delta finds the one root; one Newton step from the (stopped)
    bisection root carries the implicit-function derivative, so jax.grad in w is that of the solved root."""
    n_r, n_s, w, lam = (jnp.asarray(x, jnp.float64) for x in (n_r, n_s, w, lam))
    a, b = w / jnp.maximum(n_r, 1.0), (1 - w) / jnp.maximum(n_s, 1.0)
    rho = (eig.shape[-1] + 1.0) / eig.shape[-1]

    def H(delta):
        tau = n_r * a / (1 + a * delta) + n_s * b / (1 + b * delta)
        return delta * tau - rho * jnp.sum(eig / (eig + (lam / tau)[..., None]), axis=-1)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = H(jnp.exp(mid)) < 0
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    start = (jnp.log(1e-12) + 0 * (a + b + lam), jnp.log(1e15) + 0 * (a + b + lam))
    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, halve, start)
    root = jax.lax.stop_gradient(jnp.exp(0.5 * (lo + hi)))
    slope = jax.jvp(H, (root,), (jnp.ones_like(root),))[1]  # H acts entry by entry on a batch of roots
    delta = root - H(root) / slope
    e_r, e_s = a / (1 + a * delta), b / (1 + b * delta)
    tau = n_r * e_r + n_s * e_s
    return e_r, e_s, tau, n_r * e_r**2 + n_s * e_s**2, lam / tau


def spectral_ridge_step(eig, w0_sq, w0_m, M_diag, n_r, n_s, w, lam, sigma):
    """One weighted ridge fit on rows x ~ N(0, diag(eig)) [DE, theory/weighted.md §3b]: the real rows are labelled
    by w0, the synthetic ones by the previous model with moments (w0 o m, diag M) (any leading shape, the last
    axis the d eigen-coordinates); returns the new fit's (w0 o m, diag M). At Sigma = c I it is `ridge_step`,
    at lam = 0 the OLS recursion of `step_factors`.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> eig, w0_sq = jnp.array([1.0, 0.1]), jnp.array([1.0, 1.0])
        >>> with jax.enable_x64(True):  # no penalty, no noise, huge samples: w0 again
        ...     b, M = spectral_ridge_step(eig, w0_sq, w0_sq, w0_sq, 1e9, 1e9, 0.5, 0.0, 0.0)
        >>> [round(float(x), 6) for x in M]
        [1.0, 1.0]
    """
    n_r, n_s = jnp.asarray(n_r, jnp.float64), jnp.asarray(n_s, jnp.float64)
    ndim = max(jnp.ndim(M_diag), 1)

    def meet(x):  # the fit's scalars meet the moments, whose last axis is the d coordinates
        return jnp.reshape(x, (1,) * (ndim - 1) + (1,))

    e_r, e_s, tau, S, kap = (meet(x) for x in _spectral_fixed_point(eig, n_r, n_s, w, lam))
    n_r, n_s = meet(n_r), meet(n_s)
    rho = (eig.shape[-1] + 1.0) / eig.shape[-1]
    eig, w0_sq = (jnp.reshape(x, (1,) * (ndim - 1) + (-1,)) for x in (eig, w0_sq))
    p, q = n_r * e_r / tau, n_s * e_s / tau  # the consensus target p w0 + q w_prev
    shrink, g = eig / (eig + kap), eig / (eig + kap) ** 2
    target_sq = p**2 * w0_sq + 2 * p * q * w0_m + q**2 * M_diag  # diag E tt'
    misfit = jnp.sum(eig * (M_diag - 2 * w0_m + w0_sq), axis=-1, keepdims=True)  # E||w_prev - w0||^2_Sigma
    unfit = kap**2 * jnp.sum(g * target_sq, axis=-1, keepdims=True)  # the part of t ridge cannot fit
    denom = tau**2 - rho * S * jnp.sum(shrink**2, axis=-1, keepdims=True)
    rows = (n_r * e_r**2 * q**2 + n_s * e_s**2 * p**2) * misfit  # the rows' disagreement, like label noise
    noise = S * meet(jnp.asarray(sigma, jnp.float64)) ** 2
    c = (rho * S * unfit + rho * rows + noise) / denom
    return shrink * (p * w0_sq + q * w0_m), shrink**2 * target_sq + c * g


def spectral_ridge_recursion(eig, w0, n_r, n_s, w, lam, sigma):
    """(w0 o m_k, diag M_k) for k = 0..G of weighted ridge generators on any spectrum [DE]; the inputs after w0 are
    per-generation arrays of length G. Example: see `ridge_generator_moments`."""
    eig, w0_sq = jnp.asarray(eig, jnp.float64), jnp.asarray(w0, jnp.float64) ** 2

    def step(carry, xs):
        carry = spectral_ridge_step(eig, w0_sq, *carry, *xs)
        return carry, carry

    xs = tuple(jnp.asarray(x, jnp.float64) for x in (n_r, n_s, w, lam, sigma))
    _, (b, M) = jax.lax.scan(step, (w0_sq, w0_sq), xs)
    return jnp.concatenate([w0_sq[None], b]), jnp.concatenate([w0_sq[None], M])


def ridge_generator_moments(spec, gen, n):
    """Moments after weighted ridge generators [DE]. Isotropic spectra: only A_n = E||w_n||^2 and B_n = w0'E w_n
    matter, spread evenly over the coordinates (as for min-norm generators); any other spectrum: the
    per-eigendirection recursion `spectral_ridge_recursion` (theory/weighted.md §3b).

    Example:
        >>> import collapse_jax as cj
        >>> gen = cj.Generators(T0=40, lam=0.1, real_fraction=0.5, real_weight=0.618)
        >>> mom = ridge_generator_moments(cj.Spectrum.power_law(10, beta=1.5, r=0.5), gen, np.arange(3))
        >>> mom.M_diag.shape
        (3, 10)
    """
    from collapse_jax.regression.theory.moments import Moments

    d, G = spec.d, int(np.max(n))
    if not spec.is_isotropic:
        T, sigma, lam = gen.per_generation(G)
        n_r = gen.real_rows(G)
        b, M = spectral_ridge_recursion(spec.eigenvalues, spec.w0, n_r, T - n_r, gen.real_weights(G), lam, sigma)
        return Moments(b[n], M[n])
    T, sigma, lam = gen.per_generation(G)
    c = float(np.asarray(spec.eigenvalues)[0])  # Sigma = c I: whitened w0 is sqrt(c) w0, the penalty lam/c
    W = c * float(np.sum(np.asarray(spec.w0) ** 2))
    n_r = gen.real_rows(G)
    A, B = ridge_recursion(W, n_r, T - n_r, gen.real_weights(G), d, jnp.asarray(lam) / c, jnp.asarray(sigma))
    A, B = jnp.concatenate([jnp.full(1, W), A])[n], jnp.concatenate([jnp.full(1, W), B])[n]
    ones = jnp.ones(np.shape(n) + (d,))
    return Moments(B[..., None] / (c * d) * ones, A[..., None] / (c * d) * ones)


def generator_scale(gen, d: int, generations: int):
    """c_0..c_N of Cov(w_n - w0) = c_n Sigma^-1 for weighted OLS generators [DE]. Example: see `generator_moments`."""
    T, sigma, _ = gen.per_generation(generations)
    if gen.lam is not None:
        raise NoFormulaError("real_weight with ridge generators (lam) has no formula in the lab; simulate instead")
    if gen.fixed:
        raise NoFormulaError("real_weight with fixed=True has no formula in the lab; simulate instead")
    if np.any(T < d + 2):
        raise NoFormulaError(
            f"real_weight has a formula for OLS generators, T0 >= d+2 = {d + 2}, got T0 = {int(T.min())}; "
            "over-parameterised weighted fits: simulate instead"
        )
    n_r = gen.real_rows(generations)
    gamma, nu = step_factors(n_r, T - n_r, gen.real_weights(generations), d)
    return scale_recursion(gamma, jnp.asarray(sigma, jnp.float64) ** 2 * nu)


def scale_recursion(gamma, noise):
    """c_0 = 0, c_k = gamma_k c_{k-1} + noise_k: the per-generation arrays to c_0..c_N."""

    def step(c, xs):
        c = xs[0] * c + xs[1]
        return c, c

    _, c = jax.lax.scan(step, jnp.zeros((), jnp.float64), (gamma, noise))
    return jnp.concatenate([jnp.zeros(1), c])


def generator_moments(spec, gen, n):
    """Moments (m = w0, M = w0 w0' + c_n Sigma^-1) after weighted OLS generators, for each entry of n [DE].

    Example:
        >>> import collapse_jax as cj
        >>> gen = cj.Generators(T0=40, real_fraction=0.5, real_weight=0.618)
        >>> mom = cj.theory.moments.generator_moments(cj.Spectrum.isotropic(10), gen, np.arange(3))
        >>> mom.M_diag.shape
        (3, 10)
    """
    from collapse_jax.regression.theory.moments import Moments, along_last

    if gen.lam is not None and not gen.fixed:
        return ridge_generator_moments(spec, gen, n)
    c = generator_scale(gen, spec.d, int(np.max(n)))[n]
    eig = along_last(jnp.asarray(spec.eigenvalues, jnp.float64), c.ndim + 1)
    w0_sq = along_last(jnp.asarray(spec.w0, jnp.float64) ** 2, c.ndim + 1)
    return Moments(w0_sq + 0 * c[..., None], w0_sq + c[..., None] / eig)


def downstream_error(d: int, gen_err, down):
    """E test error of a weighted downstream OLS fit whose T rows hold s = round(p T) synthetic ones [DE]:
    gamma gen_err + sigma^2 nu d (the generators enter through their error only, whatever their law)."""
    if not np.all(np.asarray(down.lam) == 0):
        raise NoFormulaError("real_weight (downstream) with lam > 0 needs the moments: use ridge_downstream_error")
    if down.T < d + 2:
        raise NoFormulaError(f"real_weight (downstream) has a formula for T >= d+2 = {d + 2}, got T = {down.T}")
    s = down.synthetic_rows()
    gamma, nu = step_factors(down.T - s, s, down.real_weight, d)
    return gamma * gen_err + jnp.asarray(down.sigma, jnp.float64) ** 2 * nu * d


def ridge_downstream_error(eig, w0, mom, down):
    """E test error of a weighted downstream ridge fit whose T rows hold s = round(p T) synthetic ones, labelled by
    the generators' output with moments `mom` [DE, theory/weighted.md §3b]: one `spectral_ridge_step` from mom,
    then E||w - w0||^2_Sigma. At lam = 0 it equals `downstream_error` (to rounding).

    Example:
        >>> import collapse_jax as cj
        >>> spec, down = cj.Spectrum.power_law(10, beta=1.5, r=0.5), cj.Downstream(
        ...     T=40, lam=0.1, synthetic_fraction=0.5, real_weight=0.7)
        >>> gen = cj.Generators(T0=40, lam=0.1, real_fraction=0.5, real_weight=0.618)
        >>> mom = ridge_generator_moments(spec, gen, np.arange(3))
        >>> ridge_downstream_error(spec.eigenvalues, spec.w0, mom, down).shape
        (3,)
    """
    eig, w0_sq = jnp.asarray(eig, jnp.float64), jnp.asarray(w0, jnp.float64) ** 2
    s = down.synthetic_rows()
    b, M = spectral_ridge_step(eig, w0_sq, mom.w0_m, mom.M_diag, down.T - s, s, down.real_weight, down.lam, down.sigma)
    eig, w0_sq = (jnp.reshape(x, (1,) * (M.ndim - 1) + (-1,)) for x in (eig, w0_sq))
    return jnp.sum(eig * (M - 2 * b + w0_sq), axis=-1)
