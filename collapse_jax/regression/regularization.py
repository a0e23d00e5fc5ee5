"""Lambda schedules and the adaptive strategy (theory/powerlaw.md).

A schedule is a plain function, as in optax: `schedule(T, n) -> lam`, the downstream lambda for T samples
trained on generation-n data; n may be an array of generations (the result then broadcasts against it).
`Downstream(lam=schedule)` is accepted wherever a number is; `Downstream.resolved` turns it into one lambda per
generation n (the simulation and the theory call it). For the generators' own ridge,
`per_generation(schedule, N)` gives the sequence `Generators(lam=...)` takes.

Example:
    >>> import collapse_jax as cj
    >>> spec, gen = cj.Spectrum.isotropic(100), cj.Generators(T0=400)
    >>> down = cj.Downstream(T=250, sigma=1.0)
    >>> lam0 = cj.regularization.optimal_lambda(spec, gen, down, 0)
    >>> round(float(lam0), 3)  # sigma^2 phi / signal = 0.4 (theory/ridge.md "Isotropic closed form")
    0.4
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Instance, Int, Optional, Real, checked
from collapse_jax.engine.compilation_cache import Stored
from collapse_jax.regression.problem import Downstream, Generators
from collapse_jax.regression.spectra import Spectrum
from collapse_jax.regression.theory import moments, projection, ridge
from collapse_jax.regression.theory._common import float64

# (T, n) -> lambda; T and n may be arrays, and the result broadcasts against them
Schedule = Callable[..., ArrayLike]

_GRID = 48  # coarse log-grid points before Newton
_NEWTON = 12


@float64
@checked(
    spec=Instance(Spectrum),
    gen=Instance(Generators),
    down=Instance(Downstream),
    n=Int(0, checks.MAX_GENERATIONS, many=True),
    T=Optional(Real(lo=0.0, lo_open=True, ndim=(0, 1, 2, 3))),  # any shape that broadcasts against n
    bounds=Real(lo=0.0, lo_open=True, ndim=(1,)),
)
def optimal_lambda(spec: Spectrum, gen: Generators, down: Downstream, n, T=None, bounds=(1e-9, 1e4)):
    """The lambda minimising the predicted downstream test error after n generations.

    Minimises the deterministic equivalent over log lambda: a coarse grid over `bounds` (so it finds the
    global minimum of a U-shaped curve), then safeguarded Newton steps using exact first and second
    derivatives (kappa is differentiated implicitly). When the error keeps decreasing down to the lower
    bound (clean, noiseless data: lambda -> 0 is best) it returns that bound.

    Args:
        n: int or int array of generations.
        T: downstream sample sizes overriding down.T (a float or array; broadcast against n).

    Returns an array of shape broadcast(n, T). n must be concrete (it indexes the generators' tables);
    T may also be traced, so `jax.vmap` over T works as well as passing an array.

    Example:
        >>> import numpy as np, collapse_jax as cj
        >>> spec, gen, down = cj.Spectrum.isotropic(20), cj.Generators(T0=60), cj.Downstream(T=60, lam=0.1)
        >>> optimal_lambda(spec, gen, down, n=np.arange(3), T=np.array([100.0, 1000.0])[:, None]).shape
        (2, 3)
    """
    n = moments.generations_array(n, gen)
    checks.real_array("bounds", bounds, lo=0.0, lo_open=True, ndim=(1,))
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be (lo, hi) with 0 < lo < hi, got {bounds!r}")
    T = jnp.asarray(down.T if T is None else T, jnp.float64)
    if checks.is_concrete(T):
        checks.real_array("T", T, lo=1.0)
    shape = np.broadcast_shapes(n.shape, T.shape)
    n_flat, T_flat = np.broadcast_to(n, shape).ravel(), jnp.broadcast_to(T, shape).ravel()
    mom = moments.generator_moments(spec, gen, n_flat)
    eig = jnp.asarray(spec.eigenvalues, jnp.float64)
    w0 = jnp.asarray(spec.w0, jnp.float64)
    sigma = jnp.asarray(down.sigma, jnp.float64)
    p = down.synthetic_fraction  # a real/synthetic mixture: its own deterministic equivalent
    out = _argmin(
        eig,
        w0,
        mom,
        T_flat,
        sigma,
        np.log(bounds[0]),
        np.log(bounds[1]),
        jnp.asarray(1.0 if p is None else p, jnp.float64),
        jnp.asarray(0.0 if down.width is None else down.width, jnp.float64),  # traced: one program for all widths
        plain=p is None,
        projected=down.width is not None,
    )
    return out.reshape(shape)


def _argmin_search(eig, w0, mom, T, sigma, lo, hi, p, width, *, plain, projected):
    """Per (moments, T) pair: the lambda in [e^lo, e^hi] minimising the deterministic equivalent (of the width-m
    model when width is given, theory/projection.md)."""

    def best(mom_i, T_i):
        if projected:
            s = None if plain else jnp.round(p * T_i)
            f = lambda u: projection.test_error(eig, w0, mom_i, T_i, sigma, jnp.exp(u), width, s)
        elif plain:
            f = lambda u: ridge.test_error(eig, w0, mom_i, T_i, sigma, jnp.exp(u))
        else:
            f = lambda u: ridge.mixture_test_error(eig, w0, mom_i, T_i, sigma, jnp.exp(u), jnp.round(p * T_i))
        grid = jnp.linspace(lo, hi, _GRID)
        i = jnp.argmin(jax.vmap(f)(grid))
        step = grid[1] - grid[0]
        a, b = jnp.maximum(grid[i] - step, lo), jnp.minimum(grid[i] + step, hi)
        g, h = jax.grad(f), jax.grad(jax.grad(f))

        def newton(_, u):
            du = jnp.where(h(u) > 0, -g(u) / h(u), -jnp.sign(g(u)) * step / 4)  # not convex here: go downhill
            return jnp.clip(u + du, a, b)

        return jnp.exp(jax.lax.fori_loop(0, _NEWTON, newton, grid[i]))

    return jax.vmap(best)(mom, T)


# stored on disk when the cache is on: every adaptive lambda goes through it, and tracing its grid and Newton
# steps is a large part of a second run's build (model_size_scaling: 1.3 s of 2.5)
_argmin = Stored(_argmin_search, static_argnames=("plain", "projected"))


@checked(c=Real(lo=0.0, lo_open=True, ndim=(0,)), ell=Real(lo=0.0, ndim=(0,)))
def power_law(c: float, ell: float) -> Schedule:
    """lambda = c T^-ell, whatever the generation."""
    return lambda T, n=0: c * np.asarray(T, float) ** -ell


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream))
def naive(spec: Spectrum, gen: Generators, down: Downstream) -> Schedule:
    """The lambda that is best for clean data (n = 0), applied whatever the generation."""
    return lambda T, n=0: optimal_lambda(spec, gen, down, 0, T)


@checked(spec=Instance(Spectrum), gen=Instance(Generators), down=Instance(Downstream))
def adaptive(spec: Spectrum, gen: Generators, down: Downstream) -> Schedule:
    """The lambda that is best for the actual amount of fake data: optimal for (T, n)."""
    return lambda T, n=0: optimal_lambda(spec, gen, down, n, T)


@checked(generations=Int(0, checks.MAX_GENERATIONS))
def per_generation(schedule: Callable[[int], float], generations: int) -> tuple[float, ...]:
    """lam_k = schedule(k) for generations k = 1..N: a per-generation sequence for `Generators(lam=...)`."""
    if not callable(schedule):
        raise ValueError(f"schedule must be a function of the generation k, got {schedule!r}"[:300])
    return tuple(float(schedule(k)) for k in range(1, generations + 1))
