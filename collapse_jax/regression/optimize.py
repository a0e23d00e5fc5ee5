"""Whole schedules optimised through the differentiable theory, with optax (derivation: theory/optimize.md).

The theory is a smooth function of every continuous knob of a chain, so a schedule with many parameters is an
ordinary optimisation: map the knobs to unconstrained space (log lambda, logit pi, a softmax for a budget),
minimise with L-BFGS (or Adam), map back. Each problem below returns an `Optimum`; `minimize` is the engine.

* `joint_lambdas`: per-generation ridge lambdas of the generators and the downstream lambda, together.
* `schedule`: (c, ell) of lambda = c T^-ell, best over a range of T (mean log error), against ell_crit.
* `real_fractions`: per-generation real fractions pi_k with a budget sum_k pi_k T_k of real rows.
* `sample_sizes`: per-generation T_k under a total budget sum_k T_k = B (OLS generators, exact).

Example:
    >>> import collapse_jax as cj
    >>> spec = cj.Spectrum.isotropic(50)
    >>> opt = cj.optimize.joint_lambdas(spec, cj.Generators(T0=100, lam=0.01), cj.Downstream(T=100), n=3)
    >>> opt.params["gen.lam"].shape, bool(opt.value <= opt.start_value)
    ((3,), True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Instance, Int, Real, checked
from collapse_jax.engine.strategies import STRATEGIES
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum
from collapse_jax.regression.theory import moments, ridge, strategies
from collapse_jax.regression.theory._common import float64

METHODS = ("lbfgs", "adam")


class Optimum(NamedTuple):
    """params: the knobs at the optimum (natural units); value: the objective there; start_value: at the start;
    history: the objective at every step (the convergence record); grad_norm: the final gradient's norm in
    unconstrained coordinates."""

    params: dict
    value: float
    start_value: float
    history: np.ndarray
    grad_norm: float


def minimize(fun: Callable, x0, args=(), *, method: str = "lbfgs", steps: int = 100, learning_rate: float = 0.05):
    """Minimise fun(x, *args) over x (a pytree of arrays; fun jit-able) from x0; returns (x, value, history,
    grad norm). L-BFGS with optax's zoom line search, or Adam; `steps` iterations inside one lax.scan. `args`
    are traced, so a loop over them (a bisection on a budget, say) compiles once."""
    checks.choice("method", method, METHODS)
    steps = checks.size("steps", steps, lo=1)
    checks.Int(1, 10**6)("steps", steps)
    # a negative rate ascends, silently; a zero one never moves
    checks.real_array("learning_rate", learning_rate, lo=0.0, lo_open=True, hi=1e6, ndim=(0,))
    if not callable(fun):
        raise ValueError(f"fun must be a function fun(x, *args) -> number, got {fun!r}"[:300])
    return _run(fun, method, steps, float(learning_rate))(x0, tuple(args))


_RUNS: dict = {}  # compiled runs per objective; the newest few are kept


def _run(fun, method, steps, learning_rate):
    key = (fun, method, steps, learning_rate)
    if key in _RUNS:
        return _RUNS[key]
    if len(_RUNS) >= 32:
        _RUNS.pop(next(iter(_RUNS)))
    opt = optax.lbfgs() if method == "lbfgs" else optax.adam(learning_rate)

    @jax.jit
    def run(x0, args):
        f = lambda x: fun(x, *args)
        value_and_grad = optax.value_and_grad_from_state(f) if method == "lbfgs" else jax.value_and_grad(f)

        def step(carry, _):
            x, state = carry
            if method == "lbfgs":
                value, grad = value_and_grad(x, state=state)
                updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
            else:
                value, grad = value_and_grad(x)
                updates, state = opt.update(grad, state, x)
            return (optax.apply_updates(x, updates), state), value

        (x, _), history = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
        value, grad = jax.value_and_grad(f)(x)
        return x, value, history, optax.tree.norm(grad)

    _RUNS[key] = run
    return run


def _optimum(to_params, fun, x0, args=(), **options) -> Optimum:
    """Run `minimize` and return the knobs in natural units, refusing a non-finite result by name."""
    start = fun(x0, *args)
    x, value, history, grad_norm = minimize(fun, x0, args, **options)
    params = {k: np.asarray(v) for k, v in to_params(x, *args).items()}
    if not np.isfinite(float(value)) or not all(np.all(np.isfinite(v)) for v in params.values()):
        raise ValueError(
            "the optimisation did not stay finite (the theory is undefined for these knobs): check the "
            "sizes (T0 and T against d) and the starting values"
        )
    return Optimum(params, float(value), float(start), np.asarray(history), float(grad_norm))


def _log(x, name):
    checks.real_array(name, x, lo=0.0, lo_open=True)
    return jnp.log(jnp.asarray(x, jnp.float64))


def _arrays(spec):
    return jnp.asarray(spec.eigenvalues, jnp.float64), jnp.asarray(spec.w0, jnp.float64)


def _downstream_lam(down, n):
    if callable(down.lam):
        raise ValueError("down.lam must be a number here (a starting value), not a schedule")
    lam = float(np.max(down.resolved(n).lam))
    if lam <= 0:
        raise ValueError("down.lam must be > 0 here: it is the starting value of a search on log lambda")
    return lam


@float64
@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def joint_lambdas(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    n: int,
    *,
    tune_generators: bool = True,
    method: str = "lbfgs",
    steps: int = 60,
) -> Optimum:
    """Per-generation generator lambdas lam_1..lam_n and the downstream lambda minimising the predicted error at
    generation n (ridge generators, deterministic equivalent). tune_generators=False keeps gen.lam and tunes the
    downstream lambda only (the baseline this is compared with). Starts from gen.lam and down.lam (> 0)."""
    return _optimum(*joint_lambdas_problem(spec, gen, down, n, tune_generators), method=method, steps=steps)


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def joint_lambdas_problem(spec, gen, down, n, tune_generators=True):
    """(to_params, objective, x0, args) of `joint_lambdas`: the objective maps unconstrained knobs to the error."""
    n = checks.size("n", n, lo=1)
    if gen.lam is None:
        raise ValueError("gen.lam: joint_lambdas needs ridge generators; give Generators(lam=...) a start > 0")
    if STRATEGIES[gen.strategy].pools or gen.real_fraction is not None or gen.fixed:
        raise ValueError("gen: joint_lambdas covers replace chains of fresh designs (theory/ridge.md's recursion)")
    T, sigma, lam = gen.per_generation(n)
    eig, w0 = _arrays(spec)
    x0 = {"gen": _log(np.asarray(lam), "lam (generators)"), "down": _log(_downstream_lam(down, n), "lam")}
    fixed_gen = jnp.asarray(lam, jnp.float64)

    def to_params(x):
        return {"gen.lam": jnp.exp(x["gen"]) if tune_generators else fixed_gen, "down.lam": jnp.exp(x["down"])}

    def fun(x):
        p = to_params(x)
        mom = moments.ridge_generator_moments(eig, w0, T, sigma, p["gen.lam"], np.asarray([n]))
        return ridge.test_error(eig, w0, mom, float(down.T), down.sigma, p["down.lam"])[0]

    return to_params, fun, x0, ()


@float64
@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, 10**4, many=True),
    start=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(1,)),
    T_range=Real(lo=1.0, hi=checks.SCALE_MAX, ndim=(1,)),
)
def schedule(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    n,
    T_range,
    *,
    points: int = 12,
    method: str = "lbfgs",
    steps: int = 80,
    start=(1.0, 0.5),
) -> Optimum:
    """(c, ell) of lambda = c T^-ell minimising the mean over n (a list) and over `points` log-spaced T in
    T_range of the log predicted error. Compare ell with theory.ell_crit(beta, r)."""
    return _optimum(*schedule_problem(spec, gen, down, n, T_range, points, start), method=method, steps=steps)


@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, 10**4, many=True),
    start=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(1,)),
    T_range=Real(lo=1.0, hi=checks.SCALE_MAX, ndim=(1,)),
)
def schedule_problem(spec, gen, down, n, T_range, points=12, start=(1.0, 0.5)):
    """(to_params, objective, x0, args) of `schedule`."""
    ns = moments.generations_array(np.atleast_1d(n), gen)
    checks.real_array("T_range", T_range, lo=1.0, ndim=(1,))
    if len(T_range) != 2 or not T_range[0] < T_range[1]:
        raise ValueError(f"T_range must be (T_min, T_max) with 1 <= T_min < T_max, got {T_range!r}")
    Ts = jnp.asarray(np.geomspace(float(T_range[0]), float(T_range[1]), checks.size("points", points, lo=2)))
    mom = moments.generator_moments(spec, gen, ns)
    eig, w0 = _arrays(spec)
    c0, ell0 = start
    x0 = {"log_c": _log(c0, "start c"), "ell": jnp.asarray(float(ell0), jnp.float64)}

    def to_params(x):
        return {"c": jnp.exp(x["log_c"]), "ell": x["ell"]}

    def fun(x):
        lam = jnp.exp(x["log_c"]) * Ts ** -x["ell"]
        err = jax.vmap(lambda T, l: ridge.test_error(eig, w0, mom, T, down.sigma, l))(Ts, lam)  # (T, n)
        return jnp.mean(jnp.log(err))

    return to_params, fun, x0, ()


def _downstream_of_ols(spec, down, n):
    """c -> the downstream error after OLS generators with M = w0 w0' + c Sigma^-1: exact for a downstream OLS
    (T >= d + 2), the deterministic equivalent for ridge."""
    eig, w0 = _arrays(spec)
    d = spec.d
    lam = 0.0 if np.all(np.asarray(down.lam) == 0) else _downstream_lam(down, n)

    def error(c):
        if lam == 0 and down.T >= d + 2:
            return c * d + down.sigma**2 * d / (down.T - d - 1)
        return ridge.test_error(
            eig, w0, moments.Moments(w0[None] ** 2, (w0**2 + c / eig)[None]), float(down.T), down.sigma, lam
        )[0]

    return error


def _real_error(spec, gen, down, n):
    """Predicted error at generation n as a function of per-generation real fractions pi (continuous: the number
    of real rows pi T is not rounded, so the error is differentiable; OLS generators, theory/strategies.md)."""
    T, sigma, _ = gen.per_generation(n)
    downstream = _downstream_of_ols(spec, down, n)

    def error(pi):
        gamma = strategies.carry_over(T * (1 - pi), T, spec.d)
        step = lambda c, xs: (xs[0] * c + xs[1],) * 2
        return downstream(jax.lax.scan(step, jnp.zeros(()), (gamma, sigma**2 / (T - spec.d - 1)))[0])

    return error


@float64
@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def real_fractions(
    spec: Spectrum, gen: Generators, down: Downstream, n: int, budget: float, *, method: str = "lbfgs", steps: int = 60
) -> Optimum:
    """Per-generation real fractions pi_1..pi_n with mean `budget` (the same number of real rows as a constant
    pi = budget) minimising the predicted error at generation n: pi = n budget softmax(theta), with a quadratic
    penalty on any pi_k above 1 (evaluated there at 1). OLS generators (T0 >= d + 2), continuous relaxation of
    round(pi T)."""
    checks.real_array("budget", budget, lo=0.0, lo_open=True, hi=1.0, ndim=(0,))
    to_params, fun, x0 = real_fractions_problem(spec, gen, down, n)
    return _optimum(to_params, fun, x0, (jnp.asarray(float(budget)),), method=method, steps=steps)


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def real_fractions_problem(spec, gen, down, n):
    """(to_params, objective, x0) of `real_fractions`; the objective takes (theta, budget)."""
    n = checks.size("n", n, lo=1)
    _ols_replace(spec, gen, n)
    error = _real_error(spec, gen, down, n)

    def to_params(x, b):
        return {"real_fraction": n * b * jax.nn.softmax(x)}

    def fun(x, b):  # a share above 1 is infeasible: evaluated at 1 and penalised, so the search stays inside
        pi = to_params(x, b)["real_fraction"]
        return error(jnp.clip(pi, 0.0, 1.0)) + 1e3 * jnp.sum(jax.nn.relu(pi - 1) ** 2)

    return to_params, fun, jnp.zeros(n)


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def real_fraction_error(spec: Spectrum, gen: Generators, down: Downstream, n: int):
    """The predicted error at generation n as a differentiable function of the per-generation real fractions."""
    _ols_replace(spec, gen, checks.size("n", n, lo=1))
    return float64(_real_error(spec, gen, down, n))


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def least_real_fraction(
    spec: Spectrum, gen: Generators, down: Downstream, n: int, eps: float, *, spread: bool = False, tol: float = 1e-4
) -> float:
    """The least (mean) real fraction keeping the predicted error at generation n within (1 + eps) of the clean
    error (generation 0): constant pi (spread=False), or the best spread over generations for that budget (True).
    Bisection on the budget (the error falls as it grows); ValueError naming eps when even pi = 1 (every
    generation refitted to real data, whose noise still enters) misses the target."""
    from collapse_jax.regression import theory

    checks.real_array("eps", eps, lo=0.0, lo_open=True, ndim=(0,))
    # a bisection halves [0, 1] until it is narrower than tol: tol <= 0 never ends, NaN stops at once
    checks.real_array("tol", tol, lo=1e-12, hi=0.5, ndim=(0,))
    n = checks.size("n", n, lo=1)
    _ols_replace(spec, gen, n)
    error = float64(_real_error(spec, gen, down, n))
    target = (1 + eps) * float(theory.test_error(spec, gen, down, 0))
    best = float(error(jnp.ones(n)))
    if best > target:
        raise ValueError(
            f"eps = {eps} is out of reach: with every generation refitted to real data the error at "
            f"n = {n} is {best:.4g}, above (1 + eps) x clean = {target:.4g}"
        )
    if spread:
        to_params, fun, x0 = real_fractions_problem(spec, gen, down, n)  # one objective: compiled once
        value = float64(lambda b: _optimum(to_params, fun, x0, (jnp.asarray(b),), steps=60).value)
    else:
        value = lambda b: float(error(jnp.full(n, b)))
    if value(0.0) <= target:
        return 0.0
    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if value(mid) <= target else (mid, hi)
    return hi


def _ols_replace(spec, gen, n):
    T = gen.per_generation(n)[0]
    if gen.lam is not None or STRATEGIES[gen.strategy].pools or gen.fixed or np.any(T < spec.d + 2):
        raise ValueError(
            f"gen: real-fraction schedules are optimised for OLS generators under replace with fresh "
            f"designs and T0 >= d + 2 = {spec.d + 2} (the exact recursion of theory/strategies.md)"
        )


@float64
@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def sample_sizes(
    spec: Spectrum, gen: Generators, down: Downstream, n: int, budget: float, *, method: str = "lbfgs", steps: int = 80
) -> Optimum:
    """Per-generation sample sizes T_1..T_n (continuous) with sum_k T_k = budget minimising the predicted error at
    generation n, OLS generators: T_k = (d + 2) + softmax(theta)_k (budget - n (d + 2)). With noise levels
    sigma_k the optimum is T_k - d - 1 proportional to sigma_k (theory/optimize.md)."""
    return _optimum(*sample_sizes_problem(spec, gen, down, n, budget), method=method, steps=steps)


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def sample_sizes_problem(spec, gen, down, n, budget):
    """(to_params, objective, x0, args) of `sample_sizes`."""
    n = checks.size("n", n, lo=1)
    d = spec.d
    checks.real_array("budget", budget, lo=n * (d + 2), lo_open=True, ndim=(0,))
    sigma = gen.per_generation(n)[1]
    downstream = _downstream_of_ols(spec, down, n)
    spare = float(budget) - n * (d + 2)

    def to_params(x):
        return {"T0": (d + 2) + spare * jax.nn.softmax(x)}

    def fun(x):
        return downstream(jnp.sum(sigma**2 / (to_params(x)["T0"] - d - 1)))

    return to_params, fun, jnp.zeros(n), ()
