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
    >>> opt = cj.optimize.joint_lambdas(spec, cj.Generators(T0=100, lam=0.01), cj.Downstream(T=100, lam=0.1), n=3)
    >>> opt.params["gen.lam"].shape, bool(opt.value <= opt.start_value)
    ((3,), True)
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Instance, Int, Real, checked
from collapse_jax.engine.compilation_cache import Stored
from collapse_jax.engine.strategies import STRATEGIES
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum
from collapse_jax.regression.theory import moments, projection, ridge, strategies
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
    fun = fun if isinstance(fun, jax.tree_util.Partial) else jax.tree_util.Partial(fun)
    return _run(fun.func, method, steps, float(learning_rate))((fun.args, fun.keywords), x0, tuple(args))


_RUNS: dict = {}  # compiled runs per objective; the newest few are kept


def _run(func, method, steps, learning_rate):
    """The jitted search for objectives `func`. The objective comes in as a jax.tree_util.Partial, whose bound
    arguments are traced data: the problems below bind their numbers (sizes, noise levels, lambdas) that way, so
    that a loop over configurations (golden_ratio: 16 optima) traces and lowers one search, not one per call."""
    key = (func, method, steps, learning_rate)
    if key in _RUNS:
        return _RUNS[key]
    if len(_RUNS) >= 32:
        _RUNS.pop(next(iter(_RUNS)))
    opt = optax.lbfgs() if method == "lbfgs" else optax.adam(learning_rate)

    def run(bound, x0, args):  # bound: the Partial's arguments, data; func itself is this program's own
        fun = jax.tree_util.Partial(func, *bound[0], **bound[1])
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

    # an objective from `_objective` has a recipe (what it closes over), so its search can be stored on disk
    recipe = getattr(func, "recipe", None)
    name = f"optimize.minimize {method} {steps} {learning_rate!r} {func.__module__}.{func.__qualname__} {recipe}"
    _RUNS[key] = jax.jit(run) if recipe is None else Stored(run, name=name)
    return _RUNS[key]


def _optimum(to_params, fun, x0, args=(), **options) -> Optimum:
    """Run `minimize` and return the knobs in natural units, refusing a non-finite result by name."""
    x, value, history, grad_norm = minimize(fun, x0, args, **options)
    history = np.asarray(history)  # read on the host: indexing a device array would dispatch a program
    start = history[0]  # both methods evaluate the objective at x0 in their first step: no program of its own
    params = {k: np.asarray(v) for k, v in to_params(x, *args).items()}
    if not np.isfinite(float(value)) or not all(np.all(np.isfinite(v)) for v in params.values()):
        raise ValueError(
            "the optimisation did not stay finite (the theory is undefined for these knobs): check the "
            "sizes (T0 and T against d) and the starting values"
        )
    return Optimum(params, float(value), float(start), np.asarray(history), float(grad_norm))


_OBJECTIVES: dict = {}  # objectives by what they close over (see `_objective`); the newest few are kept


def _objective(key, build):
    """The objective built by build(), reused for an equal key: the same function object for equal problems, so
    that jit's cache (keyed by the Partial's function) hits across calls that differ only in bound data. The key
    is taken with the float64 setting: build() makes its constants in the precision of the moment it runs."""
    key = (key, jax.dtypes.canonicalize_dtype(np.float64) == np.float64)  # as seeds.builder_cache does
    if key not in _OBJECTIVES:
        if len(_OBJECTIVES) >= 64:
            _OBJECTIVES.pop(next(iter(_OBJECTIVES)))
        _OBJECTIVES[key] = build()
        if " at 0x" not in repr(key):  # the key names what build() closes over, the same in every process
            _OBJECTIVES[key].recipe = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return _OBJECTIVES[key]


def _by_value(obj):
    """A hashable key of a Spectrum or Downstream by the values of its fields (arrays by dtype, shape and bytes;
    a schedule by identity); under a trace (a traced field) a key equal to no other, so nothing is shared."""
    out: list = []
    for field in dataclasses.fields(obj):
        v = getattr(obj, field.name)
        if v is None or callable(v) or isinstance(v, (bool, int, float, str)):
            out.append(v)
        elif isinstance(v, dict):  # a spectrum's recipe
            out.append(repr(sorted(v.items())))
        elif not checks.is_concrete(v):
            return object()
        else:
            a = np.asarray(v)
            out.append((a.dtype.str, a.shape, a.tobytes()))
    return (type(obj).__name__, tuple(out))


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
    x0 = {"gen": _log(np.asarray(lam), "lam (generators)"), "down": _log(_downstream_lam(down, n), "lam")}
    fixed_gen = jnp.asarray(lam, jnp.float64)

    def to_params(x):
        return {"gen.lam": jnp.exp(x["gen"]) if tune_generators else fixed_gen, "down.lam": jnp.exp(x["down"])}

    def build():
        eig, w0 = _arrays(spec)

        def fun(T, sigma, fixed_gen, x):
            gen_lam = jnp.exp(x["gen"]) if tune_generators else fixed_gen
            mom = moments.ridge_generator_moments(eig, w0, T, sigma, gen_lam, np.asarray([n]))
            return _down_error(down)(eig, w0, mom, float(down.T), down.sigma, jnp.exp(x["down"]))[0]

        return fun

    # the generators' numbers are bound as data: one stored search per spectrum, downstream and n
    fun = _objective(("joint", n, tune_generators, _by_value(spec), _by_value(down)), build)
    data = tuple(jnp.asarray(v, jnp.float64) for v in (T, sigma, fixed_gen))
    return to_params, jax.tree_util.Partial(fun, *data), x0, ()


# the argument rules of `schedule` and `schedule_problem`
SCHEDULE_RULES = dict(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, 10**4, many=True),
    start=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(1,)),
    T_range=Real(lo=1.0, hi=checks.SCALE_MAX, ndim=(1,)),
)


@float64
@checked(**SCHEDULE_RULES)
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


@checked(**SCHEDULE_RULES)
def schedule_problem(spec, gen, down, n, T_range, points=12, start=(1.0, 0.5)):
    """(to_params, objective, x0, args) of `schedule`."""
    ns = moments.generations_array(np.atleast_1d(n), gen)
    checks.real_array("T_range", T_range, lo=1.0, ndim=(1,))
    if len(T_range) != 2 or not T_range[0] < T_range[1]:
        raise ValueError(f"T_range must be (T_min, T_max) with 1 <= T_min < T_max, got {T_range!r}")
    Ts = jnp.asarray(np.geomspace(float(T_range[0]), float(T_range[1]), checks.size("points", points, lo=2)))
    mom = moments.generator_moments(spec, gen, ns)
    c0, ell0 = start
    x0 = {"log_c": _log(c0, "start c"), "ell": jnp.asarray(float(ell0), jnp.float64)}

    def build():
        eig, w0 = _arrays(spec)

        def fun(w0_m, M_diag, Ts, x):
            lam = jnp.exp(x["log_c"]) * Ts ** -x["ell"]
            mom = moments.Moments(w0_m, M_diag)
            err = jax.vmap(lambda T, l: _down_error(down)(eig, w0, mom, T, down.sigma, l))(Ts, lam)  # (T, n)
            return jnp.mean(jnp.log(err))

        return fun

    # the generators' moments and the T grid are bound as data: one stored search per spectrum and downstream
    fun = _objective(("schedule", _by_value(spec), _by_value(down)), build)
    return _schedule_params, jax.tree_util.Partial(fun, *mom, Ts), x0, ()


def _schedule_params(x):
    return {"c": jnp.exp(x["log_c"]), "ell": x["ell"]}


def _down_error(down: Downstream):
    """ridge.test_error, or the width-m model's deterministic equivalent (theory/projection.md) when down.width is
    set, so every optimiser here tunes a model of any size."""
    if down.width is None:
        return ridge.test_error
    return lambda eig, w0, mom, T, sigma, lam: projection.test_error(eig, w0, mom, T, sigma, lam, float(down.width))


def _downstream_of_ols(spec, down, n):
    """c -> the downstream error after OLS generators with M = w0 w0' + c Sigma^-1: exact for a downstream OLS
    (T >= d + 2), the deterministic equivalent for ridge."""
    eig, w0 = _arrays(spec)
    d = spec.d
    lam = 0.0 if np.all(np.asarray(down.lam) == 0) else _downstream_lam(down, n)

    def error(c):
        if lam == 0 and down.T >= d + 2 and (down.width is None or down.width >= d):  # OLS on x, exactly
            return c * d + down.sigma**2 * d / (down.T - d - 1)
        return _down_error(down)(
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
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    n: int,
    budget: float,
    *,
    method: str = "lbfgs",
    steps: int = 60,
    several_starts: bool = True,
) -> Optimum:
    """Per-generation real fractions pi_1..pi_n with mean `budget` (the same number of real rows as a constant
    pi = budget) minimising the predicted error at generation n: pi = n budget softmax(theta), with a quadratic
    penalty on any pi_k above 1 (evaluated there at 1). OLS generators (T0 >= d + 2), continuous relaxation of
    the chain's rounding of pi_k T_k (round half to even).

    The objective is not convex in theta (near T0 ≈ d the carry-over factor exceeds 1 for a few real rows), so a
    local search can stop in a local optimum. With several_starts (the default) it starts from the even spread
    and from each generation holding almost all the budget, and keeps the best; the answer is still a local
    optimum of a non-convex problem, the best of n + 1 searches.

    Example:
        >>> import collapse_jax as cj
        >>> opt = real_fractions(cj.Spectrum.isotropic(20), cj.Generators(T0=40), cj.Downstream(T=60), 3, 0.3)
        >>> opt.params["real_fraction"].round(2).tolist(), bool(opt.value < opt.start_value)
        ([0.0, 0.0, 0.9], True)
    """
    checks.real_array("budget", budget, lo=0.0, lo_open=True, hi=1.0, ndim=(0,))
    to_params, fun, x0 = real_fractions_problem(spec, gen, down, n)
    args = (jnp.asarray(float(budget)),)
    return _best_of_starts(to_params, fun, _starts(x0) if several_starts else [x0], args, method, steps)


def _starts(x0):
    """The even spread, then each generation holding almost all of the budget (softmax weight ~0.98)."""
    n = x0.shape[0]
    return [x0] + [x0.at[k].set(6.0) for k in range(n)] if n > 1 else [x0]


def _best_of_starts(to_params, fun, starts, args, method, steps) -> Optimum:
    """The best of one search per start, all starts in one vmapped (compiled once) run; start_value is the
    objective at the first start."""
    if len(starts) == 1:
        return _optimum(to_params, fun, starts[0], args, method=method, steps=steps)
    x, value, history, grad_norm = jax.vmap(lambda x0: minimize(fun, x0, args, method=method, steps=steps))(
        jnp.stack(starts)
    )
    i = int(jnp.argmin(jnp.where(jnp.isfinite(value), value, jnp.inf)))
    best = jax.tree.map(lambda a: a[i], (x, value, history, grad_norm))
    params = {k: np.asarray(v) for k, v in to_params(best[0], *args).items()}
    if not np.isfinite(float(best[1])) or not all(np.all(np.isfinite(v)) for v in params.values()):
        raise ValueError("the optimisation did not stay finite from any start: check the sizes (T0 against d)")
    start = float(fun(starts[0], *args))
    return Optimum(params, float(best[1]), start, np.asarray(best[2]), float(best[3]))


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


def rounded(pi, T):
    """The fractions the chain realises: round(pi_k T_k) / T_k, rounded half to even as `jnp.round` does (the
    chain's `Generators.real_rows`): T = 25, pi = 0.5 gives 12 real rows, not 13.

    Example:
        >>> rounded(np.array([0.5, 0.3]), np.array([25, 40])) * np.array([25, 40])
        array([12., 12.])
    """
    pi = checks.real_array("pi", pi, lo=0.0, hi=1.0)
    T = checks.real_array("T", T, lo=1.0)
    T = np.asarray(T, float)
    return np.round(np.asarray(pi, float) * T) / T


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def least_real_fraction(
    spec: Spectrum, gen: Generators, down: Downstream, n: int, eps: float, *, spread: bool = False, tol: float = 1e-4
) -> float:
    """The least mean real fraction meeting the target: the mean of `least_real_schedule` (for a constant pi,
    the least constant itself), with the same arguments.

    Example:
        >>> import collapse_jax as cj
        >>> spec, gen, down = cj.Spectrum.isotropic(20), cj.Generators(T0=40, sigma0=0.2), cj.Downstream(T=100)
        >>> pi = least_real_fraction(spec, gen, down, 5, 0.3)
        >>> pi, round(pi * 40)  # 23 of 40 rows: 22 (the continuous answer 0.5555, rounded) miss the target
        (0.575, 23)
    """
    return _least(spec, gen, down, n, eps, spread, tol)[0]


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream), n=Int(1, 10**4))
def least_real_schedule(
    spec: Spectrum, gen: Generators, down: Downstream, n: int, eps: float, *, spread: bool = False, tol: float = 1e-4
) -> np.ndarray:
    """The least (mean) real fraction keeping the predicted error at generation n within (1 + eps) of the clean
    error (generation 0), with the real rows rounded as the chain rounds them (`rounded`): the per-generation
    fractions, rounded, so that `Generators(real_fraction=tuple(schedule))` realises exactly the rows checked.

    Constant pi (spread=False): exact. Every candidate pi = r / T_k (where some generation's rounded row count
    changes) is evaluated with rounded rows and the least one meeting the target is returned. No monotonicity is
    assumed: the error need not fall as pi grows (near T0 ≈ d one real row raises the carry-over factor above 1,
    theory/strategies.md "Real rows mixed in").

    Spread (spread=True): bisection on the budget of the best spread (`real_fractions`, several starts), which
    assumes that the optimised error falls as the budget grows and finds a local optimum; the spread found is then
    rounded, checked against the target and, where it misses, the budget stepped up one real row at a time until
    it meets it. The returned mean of the rounded spread may therefore exceed the true least budget.

    Raises:
        ValueError: eps out of range, or out of reach (even pi = 1, every generation refitted to real data whose
            noise still enters, misses the target).

    Example:
        >>> import collapse_jax as cj
        >>> spec, gen, down = cj.Spectrum.isotropic(20), cj.Generators(T0=26, sigma0=0.1), cj.Downstream(T=60)
        >>> (least_real_schedule(spec, gen, down, 4, 0.2) * 26).tolist()  # 21 of 26 rows in every generation
        [21.0, 21.0, 21.0, 21.0]
    """
    return _least(spec, gen, down, n, eps, spread, tol)[1]


@float64
def _least(spec, gen, down, n, eps, spread, tol):
    """(least mean fraction, rounded schedule): constant pi returns the candidate r / T_k itself."""
    from collapse_jax.regression import theory

    checks.real_array("eps", eps, lo=0.0, lo_open=True, ndim=(0,))
    # a bisection halves [0, 1] until it is narrower than tol: tol <= 0 never ends, NaN stops at once
    checks.real_array("tol", tol, lo=1e-12, hi=0.5, ndim=(0,))
    n = checks.size("n", n, lo=1)
    _ols_replace(spec, gen, n)
    error = float64(_real_error(spec, gen, down, n))
    T = np.asarray(gen.per_generation(n)[0], float)
    target = (1 + eps) * float(theory.test_error(spec, gen, down, 0))
    best = float(error(jnp.ones(n)))
    if best > target:
        raise ValueError(
            f"eps = {eps} is out of reach: with every generation refitted to real data the error at "
            f"n = {n} is {best:.4g}, above (1 + eps) x clean = {target:.4g}"
        )
    meets = lambda pi: float(error(jnp.asarray(rounded(pi, T)))) <= target
    if not spread:  # every candidate at once (vmapped): the least one whose rounded rows meet the target
        candidates = np.unique(np.concatenate([np.arange(int(t) + 1) / t for t in np.unique(T)]))
        values = np.asarray(jax.vmap(error)(jnp.asarray(rounded(candidates[:, None] * np.ones(n), T))))
        p = float(candidates[np.argmax(values <= target)])  # pi = 1 meets it (checked above), so one does
        return p, rounded(np.full(n, p), T)
    if meets(np.zeros(n)):
        return 0.0, np.zeros(n)
    to_params, fun, x0 = real_fractions_problem(spec, gen, down, n)  # one objective: compiled once
    starts = _starts(x0)

    def schedule(b):
        opt = float64(_best_of_starts)(to_params, fun, starts, (jnp.asarray(b),), "lbfgs", 60)
        return np.clip(opt.params["real_fraction"], 0.0, 1.0), opt.value

    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if schedule(mid)[1] <= target else (mid, hi)
    b, step = hi, 1.0 / float(T.sum())
    while True:  # the rounded spread must meet the target itself: step the budget up one row at a time
        pi = rounded(schedule(b)[0], T) if b < 1 else np.ones(n)
        if meets(pi):
            return float(np.mean(pi)), pi
        b = min(1.0, b + step)


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


@float64
def real_weight(
    spec: Spectrum,
    gen: Generators,
    down: Downstream,
    n: int | None = None,
    *,
    per_generation: bool = False,
    method: str = "lbfgs",
    steps: int = 60,
) -> Optimum:
    """The loss weight of the real rows minimising the predicted downstream error (theory/weighted.md §5).

    Weighted OLS generators (T0 >= d + 2), deterministic equivalent of theory/weighted.md; w = sigmoid(theta).

    Args:
        spec: the spectrum and teacher.
        gen: the generators; they need real_fraction (gen.real_weight, if given, is the start, else the pooled
            weight round(pi T)/T).
        down: the downstream model; a ridge or a (weighted) mixture.
        n: the generation whose error is minimised; None: the stationary error (n -> infinity; constant T0,
            sigma0 and real_fraction).
        per_generation: one weight per generation 1..n (needs an int n) instead of one for all.
        method: as in `minimize`.
        steps: as in `minimize`.

    Returns:
        An `Optimum` with params["gen.real_weight"]: a number, or an array of n weights.

    Raises:
        ValueError: naming gen (no real_fraction, ridge or accumulate generators, T0 < d + 2) or n.

    Example:
        >>> import collapse_jax as cj
        >>> gen = cj.Generators(T0=20000, real_fraction=0.5)
        >>> opt = cj.optimize.real_weight(cj.Spectrum.isotropic(10), gen, cj.Downstream(T=100))
        >>> round(float(opt.params["gen.real_weight"]), 3)  # the large-sample optimum at n_s = n_r: 1/phi
        0.618
    """
    return _optimum(*real_weight_problem(spec, gen, down, n, per_generation), method=method, steps=steps)


def real_weight_problem(spec, gen, down, n=None, per_generation=False):
    """(to_params, objective, x0, args) of `real_weight`: the objective maps theta (w = sigmoid(theta)) to the
    predicted error."""
    from collapse_jax.regression.theory import weighted

    if gen.real_fraction is None:
        raise ValueError("gen.real_fraction: real_weight needs real rows to weigh (give Generators(real_fraction=...))")
    stationary = n is None
    if stationary and (per_generation or gen.length is not None):
        raise ValueError("n: the stationary error (n=None) needs one constant weight and a constant config")
    horizon = 1 if stationary else checks.size("n", n, lo=1)
    if gen.lam is not None:
        return _ridge_weight_problem(spec, gen, down, horizon, stationary, per_generation)
    _ols_replace(spec, gen, horizon)
    d = spec.d
    T, sigma, _ = gen.per_generation(horizon)
    n_r = gen.real_rows(horizon)
    start = gen.real_weights(horizon) if gen.real_weight is not None else n_r / T
    x0 = _logit_start(start, per_generation)

    def build():
        downstream = _downstream_of_ols(spec, down, horizon)
        if down.real_weight is not None:
            downstream = lambda c: weighted.downstream_error(d, c * d, down)

        def fun(n_r, T, sigma, x):
            w = jnp.broadcast_to(jax.nn.sigmoid(x), (horizon,))
            if stationary:
                return downstream(weighted.stationary_scale(n_r[0], T[0] - n_r[0], w[0], d, sigma[0]))
            gamma, nu = weighted.step_factors(n_r, T - n_r, w, d)
            return downstream(weighted.scale_recursion(gamma, sigma**2 * nu)[-1])

        return fun

    # the generators' numbers are bound as data: one compiled search for every T0 and real fraction (see `_run`)
    fun = _objective(("ols_weight", horizon, stationary, _by_value(spec), _by_value(down)), build)
    data = tuple(jnp.asarray(v, jnp.float64) for v in (n_r, T, sigma))
    return _sigmoid_params, jax.tree_util.Partial(fun, *data), x0, ()


def _logit_start(start, per_generation):
    """The search's start theta = logit(w) (w clipped into [1e-3, 1 - 1e-3]): one per generation, or of the mean.
    In JAX: the real rows and weights are traced where real_fraction or real_weight is."""
    start = jnp.clip(jnp.asarray(start, jnp.float64), 1e-3, 1 - 1e-3)
    start = start if per_generation else jnp.mean(start)
    return jnp.log(start / (1 - start))


def _sigmoid_params(x):
    return {"gen.real_weight": jax.nn.sigmoid(x)}


_STATIONARY_GENERATIONS = 200  # ridge generators: the stationary error as the error after this many generations


def _ridge_weight_problem(spec, gen, down, horizon, stationary, per_generation):
    """`real_weight_problem` for ridge generators on an isotropic spectrum (theory/weighted.md §3, DE); the
    stationary error is taken after _STATIONARY_GENERATIONS generations."""
    from collapse_jax.regression.theory import weighted

    if not spec.is_isotropic or gen.strategy != "replace" or gen.fixed:
        raise ValueError(
            "gen: real_weight with ridge generators is optimised for isotropic spectra, replace, fresh designs"
        )
    steps = _STATIONARY_GENERATIONS if stationary else horizon
    T, sigma, lam = gen.per_generation(steps if gen.length is None else horizon)
    if stationary:
        T, sigma, lam = (np.broadcast_to(np.asarray(v)[:1], (steps,)) for v in (T, sigma, lam))
    d, c = spec.d, float(np.asarray(spec.eigenvalues)[0])
    eig, w0 = _arrays(spec)
    W = c * float(np.sum(np.asarray(spec.w0) ** 2))
    n_r = np.round(np.broadcast_to(np.asarray(gen.real_fraction, float), (len(T),)) * T)
    start = gen.real_weights(horizon) if gen.real_weight is not None else n_r[:horizon] / T[:horizon]
    x0 = _logit_start(start, per_generation)

    def build():
        def fun(n_r, T, lam, sigma, x):
            w = jnp.broadcast_to(jax.nn.sigmoid(x), (len(T),))
            A, B = weighted.ridge_recursion(W, n_r, T - n_r, w, d, lam / c, sigma)
            ones = jnp.ones((1, d))
            mom = moments.Moments(B[-1] / (c * d) * ones, A[-1] / (c * d) * ones)
            gen_err = moments.generator_error(spec, mom)
            if down.real_weight is not None:
                return weighted.downstream_error(d, gen_err, down)[0]
            if np.all(np.asarray(down.lam) == 0) and down.T >= d + 2:
                return gen_err[0] + down.sigma**2 * d / (down.T - d - 1)
            return ridge.test_error(eig, w0, mom, float(down.T), down.sigma, _downstream_lam(down, horizon))[0]

        return fun

    # the generators' numbers (sizes, lambdas, noise) are bound as data: one compiled search for all (see `_run`)
    fun = _objective(("ridge_weight", len(T), horizon, _by_value(spec), _by_value(down)), build)
    data = tuple(jnp.asarray(v, jnp.float64) for v in (n_r, T, lam, sigma))
    return _sigmoid_params, jax.tree_util.Partial(fun, *data), x0, ()
