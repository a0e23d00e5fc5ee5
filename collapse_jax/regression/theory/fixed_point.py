"""The effective regularisation kappa of ridge on Gaussian data, the fixed point every deterministic equivalent
stands on (theory/ridge.md). Its own module so that the moments (ridge generators) and the downstream errors both
import it without importing each other.

kappa(lam, T) is the root of kappa - lam = kappa df_1(kappa) / T. It is solved by bisection on log kappa (robust for
any spectrum, fixed cost, so it vmaps) and differentiated implicitly, so jax.grad and jax.hessian with respect to
lam, T or the spectrum are exact for the solved root.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse_jax.engine import checks

_BISECTIONS = 80  # log-bracket width < 80, so 80 halvings reach float64 resolution


def df(eigenvalues, kappa, m: int):
    """Degrees of freedom df_m(kappa) = tr Sigma^m (Sigma + kappa)^-m."""
    return jnp.sum((eigenvalues / (eigenvalues + kappa)) ** m, axis=-1)


def _residual(kappa, eigenvalues, lam, T):
    return kappa - lam - kappa * df(eigenvalues, kappa, 1) / T


def kappa(eigenvalues, lam, T):
    """The effective regularisation: the root kappa >= lam of kappa - lam = kappa df_1(kappa)/T.

    kappa = 0 when lam = 0 and d < T (OLS); for lam = 0 and d > T it solves df_1(kappa) = T (min-norm).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(kappa(jnp.ones(100), 0.0, 50.0)), 6)  # isotropic, phi = 2: kappa = phi - 1
        1.0
    """
    checks.real_array("eigenvalues", eigenvalues, lo=0.0, lo_open=True, ndim=(1, 2, 3))
    checks.real_array("lam", lam, lo=0.0, ndim=(0,))  # one root per call: vmap for many
    checks.real_array("T", T, lo=0.0, lo_open=True, ndim=(0,))
    return _kappa(jnp.asarray(eigenvalues), jnp.asarray(lam), jnp.asarray(T))


@jax.custom_jvp
@jax.jit  # one program per shape: evaluated eagerly, the bisection loop would compile anew at every call
def _kappa(eigenvalues, lam, T):
    # g(k) = k (1 - df_1(k)/T) <= k, and g(k) >= k - tr(Sigma)/T: the root lies in [lo, lam + tr Sigma/T].
    # Below lo = 1e-12 min(eig), df_1 > d - 1, so g(lo) < 0 whenever d > T, and g(lo) <= lo <= lam always.
    tiny = 1e-12 * jnp.min(eigenvalues)
    lo = jnp.where(lam > 0, jnp.minimum(lam, tiny), tiny)
    hi = lam + jnp.sum(eigenvalues) / T

    def halve(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        below = _residual(jnp.exp(mid), eigenvalues, lam, T) < 0
        return jnp.where(below, mid, a), jnp.where(below, b, mid)

    a, b = jax.lax.fori_loop(0, _BISECTIONS, halve, (jnp.log(lo), jnp.log(hi)))
    root = jnp.exp(0.5 * (a + b))
    return jnp.where(_residual(lo, eigenvalues, lam, T) >= 0, 0.0, root)  # no positive root: kappa = 0


@_kappa.defjvp
def _kappa_jvp(primals, tangents):
    eigenvalues, lam, T = primals
    k = _kappa(eigenvalues, lam, T)
    # Implicit function theorem on the residual: dk = -(dR/dtheta . dtheta) / (dR/dk), dR/dk = 1 - df_2/T.
    _, r_dot = jax.jvp(lambda e, l, t: _residual(k, e, l, t), primals, tangents)
    return k, -r_dot / (1.0 - df(eigenvalues, k, 2) / T)
