"""Closed-form predictions, in float64, with the shapes and names of the simulation's `Metrics`.

`test_error(spec, gen, down, n)` picks the strongest formula that applies:

* exact (theory/moments.md "OLS generators"): downstream OLS (lam = 0, T >= d+2) after OLS generators, or after
  min-norm generators on an isotropic spectrum (theory/overparam.md); and downstream min-norm (lam = 0, T <= d-2) on
  an isotropic spectrum;
* deterministic equivalent (theory/ridge.md "Composition with any generators") for a ridge downstream (lam > 0) or an
  anisotropic min-norm downstream;
* data strategies (theory/strategies.md, `theory.strategies`): accumulate (fresh or fixed design) and real rows mixed
  into
  OLS generators exactly; a downstream real/synthetic mixture exactly for OLS, by a deterministic equivalent
  for ridge.

Where none applies it raises `NoFormulaError` (a ValueError) rather than return a number it cannot back.

Example:
    >>> import collapse_jax as cj
    >>> spec = cj.Spectrum.isotropic(100)
    >>> # sigma^2 d/(T-d-1) + n sigma0^2 d/(T0-d-1) = 100/200 + 2 * 100/200
    >>> round(float(cj.theory.test_error(spec, cj.Generators(T0=301), cj.Downstream(T=301, lam=0.0), 2)), 12)
    1.5
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.agreement import Z_MAX, agreement, de_gap  # the lab's one rule (engine/agreement.py)
from collapse_jax.engine.checks import Instance, Int, checked
from collapse_jax.engine.compilation_cache import remembered, stored_closure
from collapse_jax.regression.metrics import Metrics
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum
from collapse_jax.regression.theory import moments, overparam, powerlaw, projection, ridge, strategies, weighted
from collapse_jax.regression.theory._common import NoFormulaError, float64
from collapse_jax.regression.theory.powerlaw import (
    crossover_T,
    ell_crit,
    error_exponent,
    fast_exponent,
    sigma_eff2,
    slow_exponent,
)
from collapse_jax.regression.theory.ridge import isotropic_test_error, kappa

__all__ = [
    "Z_MAX",
    "NoFormulaError",
    "agreement",
    "compiled_metrics",
    "crossover_T",
    "de_gap",
    "df",
    "ell_crit",
    "error_exponent",
    "fast_exponent",
    "formula_kind",
    "generator_error",
    "isotropic_test_error",
    "kappa",
    "metrics",
    "metrics_and_kind",
    "moments",
    "overparam",
    "powerlaw",
    "projection",
    "ridge",
    "sigma_eff2",
    "slow_exponent",
    "strategies",
    "test_error",
    "weighted",
]


@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
)
def metrics(spec: Spectrum, gen: Generators, down: Downstream, n) -> Metrics:
    """Expected test and generator errors after n generations: the strongest formula that applies.

    Exact where one exists, a deterministic equivalent otherwise (ridge models, ridge generators); in float64.
    `metrics_and_kind` returns the same numbers with the kind of the formulas that computed them.

    Args:
        spec: the covariance spectrum and teacher.
        gen: the generators' chain.
        down: the downstream ridge model; a lambda schedule is resolved per generation.
        n: an int or an int array of generations.

    Returns:
        Metrics whose fields have n's shape, with the names of `simulate`'s results.

    Raises:
        NoFormulaError: the lab has no formula for this config (a ValueError; `formula_kind` says "none").
        ValueError: a bad argument, named with its allowed range.

    Example:
        >>> import collapse_jax as cj
        >>> m = cj.theory.metrics(cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40), [0, 1, 2])
        >>> m.test_error.shape, float(m.generator_error[0])
        ((3,), 0.0)
    """
    return metrics_and_kind(spec, gen, down, n)[0]


@float64
@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
)
def metrics_and_kind(spec: Spectrum, gen: Generators, down: Downstream, n) -> tuple[Metrics, str]:
    """The predictions of `metrics` and the kind of the formulas that computed them.

    Each branch that computes a value names its kind, so the kind cannot drift from the value: a deterministic
    equivalent anywhere in the chain of formulas (ridge generators, a ridge downstream) makes the whole a DE.

    Args:
        spec: the covariance spectrum and teacher.
        gen: the generators' chain.
        down: the downstream ridge model; a lambda schedule is resolved per generation.
        n: an int or an int array of generations.

    Returns:
        (Metrics, kind) with kind "exact" or "DE".

    Raises:
        NoFormulaError: the lab has no formula for this config.

    Example:
        >>> import collapse_jax as cj
        >>> m, kind = cj.theory.metrics_and_kind(cj.Spectrum.isotropic(10), cj.Generators(T0=40),
        ...                                      cj.Downstream(T=40, lam=0.1), [0, 1])
        >>> kind, m.test_error.shape
        ('DE', (2,))
    """
    n = moments.generations_array(n, gen)
    down = down.resolved(int(n.max()))
    mom, gen_kind = moments.generator_moments_and_kind(spec, gen, n)
    gen_err = moments.generator_error(spec, mom)
    lam = down.lam
    assert not callable(lam)  # resolved above
    if np.ndim(lam) == 0:
        test, down_kind = _downstream_error(spec, mom, gen_err, down)
        return Metrics(test, gen_err), _weakest(gen_kind, down_kind)
    # one lambda per generation: evaluate each n with its own lambda
    flat = [
        _downstream_error(
            spec,
            jax.tree.map(lambda a, i=i: a.reshape((-1,) + a.shape[n.ndim :])[i], mom),
            gen_err.ravel()[i],
            dataclasses.replace(down, lam=np.asarray(lam)[k]),
        )
        for i, k in enumerate(n.ravel())
    ]
    test = jnp.stack([value for value, _ in flat]).reshape(n.shape)
    return Metrics(test, gen_err), _weakest(gen_kind, *(kind for _, kind in flat))


@float64
def compiled_metrics(spec: Spectrum, gen: Generators, down: Downstream, n) -> Metrics:
    """`metrics` evaluated as one compiled program, as numpy arrays (the same numbers to float64 rounding).

    Op by op, every distinct operation and shape of the formulas is traced, lowered and compiled as a program of
    its own, in every process: validate's regression checks built 152 programs that way, 14 this way. For a
    configuration evaluated once; a loop over static sizes (T, width) would trace and compile one program each.

    Example:
        >>> import collapse_jax as cj
        >>> m = compiled_metrics(cj.Spectrum.isotropic(10), cj.Generators(T0=40), cj.Downstream(T=40), [0, 1])
        >>> m.test_error.round(6).tolist()
        [0.344828, 0.689655]
    """
    program = stored_closure("theory.metrics", lambda: metrics(spec, gen, down, n), (spec, gen, down, n))
    return jax.tree.map(np.asarray, program())


FORMULA_KINDS = ("exact", "DE", "none")  # what formula_kind says


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream))
def formula_kind(spec: Spectrum, gen: Generators, down: Downstream) -> str:
    """Which kind of prediction `metrics` makes for this config. Decides how a comparison is judged.

    Read off the formulas `metrics_and_kind` evaluates (n = 0, 1, and every lambda of a per-generation lam).

    Args:
        spec: the covariance spectrum and teacher.
        gen: the generators' chain.
        down: the downstream ridge model.

    Returns:
        "exact", "DE" (a deterministic equivalent, within its finite-size gap) or "none" (`metrics` raises
        NoFormulaError).

    Example:
        >>> import collapse_jax as cj
        >>> spec, gen = cj.Spectrum.isotropic(10), cj.Generators(T0=40)
        >>> [cj.theory.formula_kind(spec, gen, cj.Downstream(T=40, lam=lam)) for lam in (0.0, 0.1)]
        ['exact', 'DE']
    """
    # the kind is found by tracing the formulas; the CLI keeps it on disk beside the programs, so a second run
    # (validate asks for the kinds of its 10 regression checks first) reads it instead of tracing again
    return remembered(
        "theory.formula_kind",
        lambda: _formula_kind(spec, gen, down),
        (spec, gen, down),
        valid=FORMULA_KINDS.__contains__,
    )


def _formula_kind(spec: Spectrum, gen: Generators, down: Downstream) -> str:
    lam = down.lam
    per_n = not callable(lam) and checks.is_concrete(lam) and np.ndim(lam) == 1
    last = len(np.asarray(lam)) - 1 if per_n and not callable(lam) else 1  # every lambda of a per-n lam
    ns = np.arange(min(gen.length or last, last) + 1)
    kind = []  # the kind is decided while the formulas are traced: trace them (eval_shape), compile nothing
    try:
        jax.eval_shape(lambda: kind.append(metrics_and_kind(spec, gen, down, ns)[1]))
    except NoFormulaError:
        return "none"
    return kind[0]


def _weakest(*kinds: str) -> str:
    return "DE" if "DE" in kinds else "exact"


@checked(
    eigenvalues=checks.Real(lo=0.0, lo_open=True, ndim=(1, 2)),
    kappa=checks.Real(lo=0.0, hi=checks.SCALE_MAX),
    m=Int(0, 100),
)
def df(eigenvalues, kappa, m: int):
    """Degrees of freedom df_m(kappa) = tr Sigma^m (Sigma + kappa)^-m (`ridge.df`, checked at the public door).

    Example:
        >>> float(df(np.ones(4), 1.0, 1))
        2.0
    """
    return ridge.df(jnp.asarray(eigenvalues), kappa, m)


@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
)
def test_error(spec: Spectrum, gen: Generators, down: Downstream, n):
    """Expected test error of the downstream model trained on generation-n data: `metrics(...).test_error` (theory/moments.md,
    theory/ridge.md, theory/overparam.md).

    Args:
        spec: the covariance spectrum and teacher.
        gen: the generators' chain.
        down: the downstream ridge model.
        n: an int or an int array of generations.

    Returns:
        An array of n's shape.

    Raises:
        NoFormulaError: the lab has no formula for this config.

    Example:
        >>> import collapse_jax as cj
        >>> spec, gen = cj.Spectrum.isotropic(10), cj.Generators(T0=40, sigma0=1.0)
        >>> round(float(cj.theory.test_error(spec, gen, cj.Downstream(T=40, sigma=1.0), 0)), 4)  # d / (T - d - 1)
        0.3448
    """
    return metrics(spec, gen, down, n).test_error


@checked(spec=Instance(Spectrum), gen=Instance(Generators), n=Int(0, checks.MAX_GENERATIONS, many=True))
def generator_error(spec: Spectrum, gen: Generators, n):
    """Expected ||w_n - w0||^2_Sigma of the generators themselves."""
    return metrics(spec, gen, Downstream(T=spec.d + 2), n).generator_error


def _downstream_error(spec: Spectrum, mom: moments.Moments, gen_err, down: Downstream):
    d, T = spec.d, down.T
    lam = jnp.asarray(down.lam, jnp.float64)
    sigma = jnp.asarray(down.sigma, jnp.float64)
    if down.width is not None:  # the width-m model on random projections (theory/projection.md)
        return _projected_error(spec, mom, gen_err, down, lam, sigma)
    if d - 1 <= T <= d + 1 and _concrete_zero(down.lam):
        raise ValueError(
            f"T must be >= d+2 = {d + 2} or <= d-2 = {d - 2} when lam = 0: OLS or min-norm with "
            f"T = {T} has an infinite expected error"
        )
    eig = jnp.asarray(spec.eigenvalues, jnp.float64)
    w0 = jnp.asarray(spec.w0, jnp.float64)
    if down.real_weight is not None:  # a weighted real/synthetic mixture (theory/weighted.md)
        if _concrete_zero(down.lam):
            return weighted.downstream_error(d, gen_err, down), "DE"
        return weighted.ridge_downstream_error(eig, w0, mom, down), "DE"
    if down.synthetic_fraction is not None:  # a real/synthetic mixture (theory/strategies.md)
        s = down.synthetic_rows()
        de = ridge.mixture_test_error(eig, w0, mom, float(T), sigma, lam, s)
        if T < d + 2:
            return de, "DE"
        exact = strategies.carry_over(s, T, d) * gen_err + sigma**2 * d / (T - d - 1)
        return _exact_at_zero_lam(down.lam, exact, de)
    de = ridge.test_error(eig, w0, mom, float(T), sigma, lam)
    if T >= d + 2:
        # OLS is unbiased and its noise independent of the labels' source: it adds exactly sigma^2 d/(T-d-1).
        exact = gen_err + sigma**2 * d / (T - d - 1)
    elif T <= d - 2 and _isotropic(spec):
        # Min-norm keeps a random T-dimensional projection P of w_n (E P = (T/d) I) and adds X^+ eps.
        c, q = eig[0], T / d
        a = jnp.sum(mom.M_diag, axis=-1)
        b = jnp.sum(mom.w0_m, axis=-1)
        w0_sq = jnp.sum(w0**2)
        exact = c * (q * a - 2 * q * b + w0_sq) + sigma**2 * T / (d - T - 1)
    else:
        return de, "DE"
    return _exact_at_zero_lam(down.lam, exact, de)


def _exact_at_zero_lam(lam, exact, de):
    """(value, kind) where lam = 0 takes the exact formula and lam > 0 the DE: "exact" only when every lam is a
    concrete zero (a traced lam could be either)."""
    lam_arr = jnp.asarray(lam, jnp.float64)
    kind = "exact" if checks.is_concrete(lam) and np.all(np.asarray(lam) == 0) else "DE"
    return jnp.where(lam_arr == 0, exact, de), kind


def _projected_error(spec: Spectrum, mom: moments.Moments, gen_err, down: Downstream, lam, sigma):
    """The width-m deterministic equivalent; for m >= d, T >= d+2 and lam = 0 the fit is OLS on x itself (the same
    function class and a unique minimiser), so the exact formulas of the linear model hold there."""
    d, T, m = spec.d, down.T, down.width
    assert m is not None  # only called for a projected downstream
    rank = min(m, d)
    if abs(T - rank) <= 1 and _concrete_zero(down.lam):
        raise ValueError(
            f"width = {m} with T = {T} and lam = 0 sits on the interpolation threshold T = min(width, d) = {rank}, "
            f"where the expected error is infinite; use lam > 0 or |T - {rank}| >= 2"
        )
    eig = jnp.asarray(spec.eigenvalues, jnp.float64)
    w0 = jnp.asarray(spec.w0, jnp.float64)
    s = None if down.synthetic_fraction is None else down.synthetic_rows()
    # T and m as float64 arrays, as regularization.optimal_lambda passes them: one trace of the jitted formula
    # serves both (Python floats are weakly typed, another signature: traced and lowered again)
    de = projection.test_error(eig, w0, mom, jnp.float64(T), sigma, lam, jnp.float64(m), s)
    if m >= d and T >= d + 2:
        exact, _ = _downstream_error(spec, mom, gen_err, dataclasses.replace(down, width=None))
        return _exact_at_zero_lam(down.lam, exact, de)
    if m < d and T >= m + 2:  # OLS on m features given S: exact for isotropic Sigma, E Pi's equivalent otherwise
        ols = projection.ols_features_error(eig, w0, mom, T, sigma, m, s, strategies.carry_over)
        value, kind = _exact_at_zero_lam(down.lam, ols, de)
        return value, kind if _isotropic(spec) else "DE"
    return de, "DE"


def _concrete_zero(x) -> bool:
    try:
        return bool(np.any(np.asarray(x) == 0))
    except Exception:  # a tracer: its value is unknown here
        return False


def _isotropic(spec: Spectrum) -> bool:
    try:
        return spec.is_isotropic
    except Exception:
        return False
