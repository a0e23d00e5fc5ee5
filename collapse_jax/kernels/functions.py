"""Kernels, each a pure function k(X, Y) of two batches of inputs ((n, p) and (m, p)) -> (n, m), and the
blockwise kernel matrix.

Example:
    >>> import numpy as np
    >>> from collapse_jax.kernels import kernel_matrix, rbf
    >>> X = np.random.default_rng(0).normal(size=(5, 3))
    >>> K = kernel_matrix(rbf, X, lengthscale=2.0, block_size=2)
    >>> K.shape, K.dtype, bool(np.allclose(np.diag(K), 1.0))
    ((5, 5), dtype('float64'), True)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.checks import OneOf, Real, RealArray, checked


def _sq_dists(X, Y):
    """Squared Euclidean distances, clipped at 0 (the expansion |x|^2 + |y|^2 - 2 x.y can go slightly negative)."""
    d2 = jnp.sum(X**2, 1)[:, None] + jnp.sum(Y**2, 1)[None, :] - 2 * X @ Y.T
    return jnp.maximum(d2, 0.0)


@checked(
    X=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    Y=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
)
def linear(X, Y):
    """k(x, y) = x.y: kernel ridge regression with it is ridge regression on the inputs."""
    return X @ Y.T


@checked(
    X=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    Y=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    lengthscale=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def rbf(X, Y, lengthscale=1.0):
    """k(x, y) = exp(-|x - y|^2 / (2 lengthscale^2))."""
    return jnp.exp(-_sq_dists(X, Y) / (2 * lengthscale**2))


def _row_by_row(f, X, Y):
    """f(x, Y) -> (m,) for every row x of X, a few rows at a time: explicit differences x - y cost memory
    rows * m * p, and are needed where the expansion |x|^2 + |y|^2 - 2 x.y loses digits (near x = y)."""
    return jax.lax.map(lambda x: f(x, Y), X, batch_size=16)


@checked(
    X=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    Y=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    lengthscale=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def laplace(X, Y, lengthscale=1.0):
    """k(x, y) = exp(-|x - y| / lengthscale). The distance is taken from explicit differences: through the
    expansion its roundoff near x = y would be sqrt(eps |x|^2), about 1e-8."""
    return _row_by_row(lambda x, Y: jnp.exp(-jnp.sqrt(jnp.sum((x[None] - Y) ** 2, 1)) / lengthscale), X, Y)


@checked(
    X=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    Y=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    degree=Real(lo=0.0, hi=100.0, ndim=(0,)),
    offset=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(0,)),
    scale=Real(lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,)),
)
def polynomial(X, Y, degree=3, offset=1.0, scale=1.0):
    """k(x, y) = (scale x.y + offset)^degree (offset >= 0 and an integer degree keep it positive semi-definite)."""
    return (scale * (X @ Y.T) + offset) ** degree


@checked(
    X=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    Y=RealArray(lo=-checks.SCALE_MAX, hi=checks.SCALE_MAX, ndim=(2,)),
    order=OneOf(0, 1, 2),
)
def arccos(X, Y, order=1):
    """The arc-cosine kernel of Cho and Saul (2009): an infinitely wide one-hidden-layer network with the
    activation max(0, u)^order (order 0: step, 1: ReLU, 2: squared ReLU), k = |x|^n |y|^n J_n(theta) / pi."""
    nx, ny = jnp.sqrt(jnp.sum(X**2, 1)), jnp.sqrt(jnp.sum(Y**2, 1))
    # theta = 2 atan2(|u - v|, |u + v|) for unit u, v: arccos of a cosine near 1 would lose half the digits
    # a zero row has no direction: any unit vector serves, as |x|^n = 0 (order >= 1); order 0 then gives 1/2
    U, V = X / jnp.where(nx > 0, nx, 1.0)[:, None], Y / jnp.where(ny > 0, ny, 1.0)[:, None]
    theta = _row_by_row(
        lambda u, V: (
            2 * jnp.arctan2(jnp.sqrt(jnp.sum((u[None] - V) ** 2, 1)), jnp.sqrt(jnp.sum((u[None] + V) ** 2, 1)))
        ),
        U,
        V,
    )
    s, c = jnp.sin(theta), jnp.cos(theta)
    J = {0: jnp.pi - theta, 1: s + (jnp.pi - theta) * c, 2: 3 * s * c + (jnp.pi - theta) * (1 + 2 * c**2)}[order]
    return (nx[:, None] * ny[None, :]) ** order * J / jnp.pi


KERNELS = {"linear": linear, "rbf": rbf, "laplace": laplace, "polynomial": polynomial, "arccos": arccos}


def kernel_matrix(kernel, X, Y=None, *, block_size: int = 1024, **params) -> np.ndarray:
    """k(X, Y) in float64, computed in blocks of block_size x block_size so that memory stays bounded by the
    output plus one block. kernel is a function or a name in KERNELS; params are its keyword arguments.
    Y = None gives the symmetric K(X, X), whose lower blocks are copied from the upper ones.

    Args:
        kernel: a name in KERNELS ("linear", "rbf", "laplace", "polynomial", "arccos") or a function k(X, Y).
        X: (N, p) inputs.
        Y: (M, p) inputs, or None for K(X, X).
        block_size: rows and columns per compiled block (bounds the memory beyond the output).
        **params: the kernel's parameters (lengthscale, degree, offset, scale, order).

    Returns:
        The (N, M) kernel matrix, float64.

    Raises:
        ValueError: an unknown kernel or parameter, a parameter out of its range, inputs that are not finite 2-D
            arrays, or X and Y with different numbers of features.

    Example:
        >>> import numpy as np
        >>> from collapse_jax.kernels import kernel_matrix
        >>> K = kernel_matrix("rbf", np.eye(3), lengthscale=1.0)
        >>> K.shape, round(float(K[0, 1]), 4)  # exp(-|e_0 - e_1|^2 / 2) = exp(-1)
        ((3, 3), 0.3679)
    """
    if isinstance(kernel, str):
        _check_params(checks.choice("kernel", kernel, tuple(KERNELS)), params)
        kernel = KERNELS[kernel]
    block_size = checks.size("block_size", block_size, lo=1)
    symmetric = Y is None
    X = _inputs("X", X)
    Y = X if symmetric else _inputs("Y", Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have the same number of features, got {X.shape[1]} and {Y.shape[1]}")
    from collapse_jax.engine.seeds import fits_in_memory

    fits_in_memory(8 * X.shape[0] * Y.shape[0], f"the {X.shape[0]} x {Y.shape[0]} kernel matrix (X has {len(X)} rows)")
    out = np.empty((X.shape[0], Y.shape[0]))
    with jax.enable_x64(True):
        block = jax.jit(functools.partial(kernel, **{k: float(v) for k, v in params.items()}))
        for i in range(0, X.shape[0], block_size):
            for j in range(i if symmetric else 0, Y.shape[0], block_size):
                B = np.asarray(block(jnp.asarray(X[i : i + block_size]), jnp.asarray(Y[j : j + block_size])))
                if symmetric and j == i:
                    B = 0.5 * (B + B.T)  # exactly symmetric, whatever the roundoff of the matrix product
                out[i : i + block_size, j : j + block_size] = B
                if symmetric and j > i:
                    out[j : j + block_size, i : i + block_size] = B.T
    return out


def _check_params(name: str, params: dict):
    """Parameters that keep each named kernel finite and positive semi-definite, refused by name otherwise."""
    allowed = {
        "linear": set(),
        "rbf": {"lengthscale"},
        "laplace": {"lengthscale"},
        "polynomial": {"degree", "offset", "scale"},
        "arccos": {"order"},
    }[name]
    checks.sections(params, allowed, f"the {name} kernel's parameters")
    if "lengthscale" in params:
        checks.real_array("lengthscale", params["lengthscale"], lo=0.0, lo_open=True, hi=checks.SCALE_MAX, ndim=(0,))
    if "degree" in params:
        checks.size("degree", params["degree"], lo=1)
    for key in ("offset", "scale"):
        if key in params:
            checks.real_array(key, params[key], lo=0.0, ndim=(0,))
    if "order" in params:
        checks.choice("order", params["order"], (0, 1, 2))


def _inputs(name, X) -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D array of real numbers") from None
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a 2-D array (points, features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return X
