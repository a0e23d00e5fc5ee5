"""Datasets for kernel chains, loaded from local files only (nothing is ever downloaded).

A `Dataset` holds inputs X (N, p), targets Y (N, C) (one-hot for classification) and integer labels (or None
for regression). `split` makes the pool the chains sample from and the held-out test points.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from collapse_jax.engine import checks
from collapse_jax.engine.checks import Int, Key, Optional, Real, checked


class Dataset(NamedTuple):
    X: np.ndarray  # (N, p) float64
    Y: np.ndarray  # (N, C) float64 targets
    labels: np.ndarray | None  # (N,) ints for classification, else None
    name: str


@checked(classes=Optional(Int(1, 10**6)))
def one_hot(labels, classes: int | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ValueError(
            f"labels must be a non-empty 1-D array of integers, got dtype {labels.dtype}, shape {labels.shape}"
        )
    classes = int(labels.max()) + 1 if classes is None else classes
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return np.eye(classes)[labels]


def load_digits() -> Dataset:
    """The 8x8 handwritten digits that ship inside scikit-learn (1797 images, pixels scaled to [0, 1]).

    Needs the optional extra: pip install 'collapse_jax[data]' (make run and make test install it).
    """
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise ImportError(
            "the digits come with scikit-learn, an optional extra: pip install 'collapse_jax[data]'"
        ) from None
    X, y = sk_digits(return_X_y=True)
    return Dataset(X / 16.0, one_hot(y, 10), y.astype(int), "digits")


def load_mnist(path, limit: int | None = None) -> Dataset:
    """MNIST from a local file: an .npz with arrays x_train, y_train (and optionally x_test, y_test, which are
    appended), or the IDX image file (train-images-idx3-ubyte, optionally .gz) with its labels file
    (train-labels-idx1-ubyte) beside it. Pixels are scaled to [0, 1]; limit keeps the first `limit` images.

    A missing or malformed file raises a ValueError naming the path and the expected format.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"MNIST file {str(path)!r} does not exist; expected an .npz with x_train and y_train, or "
            "the IDX file train-images-idx3-ubyte[.gz] with train-labels-idx1-ubyte[.gz] beside it"
        )
    if path.suffix == ".npz":
        X, y = _mnist_npz(path)
    else:
        X = _idx(path, 3)
        labels_path = _labels_beside(path)
        y = _idx(labels_path, 1)
        if len(y) != len(X):
            raise ValueError(f"{str(labels_path)!r} has {len(y)} labels for {len(X)} images in {str(path)!r}")
    X = X.reshape(len(X), -1).astype(np.float64)
    if not np.all(np.isfinite(X)) or X.min() < 0:
        raise ValueError(f"{str(path)!r}: pixels must be finite and >= 0 (bytes 0..255, or floats already in [0, 1])")
    if X.max() > 1.0:  # bytes 0..255; floats already in [0, 1] are kept as they are
        X = X / 255.0
    if limit is not None:
        limit = checks.size("limit", limit, lo=1)
        X, y = X[:limit], y[:limit]
    return Dataset(X, one_hot(y, 10), y.astype(int), "mnist")


def _mnist_npz(path):
    try:
        with np.load(path, allow_pickle=False) as f:
            if not {"x_train", "y_train"} <= set(f.files):
                raise ValueError(
                    f"{str(path)!r} must hold arrays x_train and y_train (and optionally x_test, "
                    f"y_test), found {sorted(f.files)}"
                )
            X, y = f["x_train"], f["y_train"]
            if {"x_test", "y_test"} <= set(f.files):
                X, y = np.concatenate([X, f["x_test"]]), np.concatenate([y, f["y_test"]])
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError) as err:  # truncated, not a zip, a pickle
        if isinstance(err, ValueError) and "must hold arrays" in str(err):
            raise
        raise ValueError(f"{str(path)!r} is not a readable .npz file ({type(err).__name__}: {err})") from None
    if X.ndim not in (2, 3) or len(X) != len(y) or y.ndim != 1:
        raise ValueError(
            f"{str(path)!r}: x_train must be (N, 28, 28) or (N, 784) with y_train (N,), got {X.shape} and {y.shape}"
        )
    return X, y


def _labels_beside(images: Path) -> Path:
    name = images.name.replace("images-idx3", "labels-idx1")
    candidates = [images.with_name(name), images.with_name(name.removesuffix(".gz")), images.with_name(name + ".gz")]
    for c in candidates:
        if c != images and c.is_file():
            return c
    raise ValueError(f"no labels file beside {str(images)!r}: expected {name!r} (the IDX labels, optionally .gz)")


def _idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file (big-endian: 0, 0, type 0x08 = ubyte, ndim; then ndim uint32 sizes; then the data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # EOFError: a truncated .gz
        raise ValueError(f"{str(path)!r} is not a readable IDX file ({err})") from None
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError(
            f"{str(path)!r} is not an IDX file of unsigned bytes with {ndim} dimension(s) (magic "
            f"0x0000080{ndim} expected, got {raw[:4].hex()})"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(shape):
        raise ValueError(f"{str(path)!r}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


@checked(N=Int(1, checks.MAX_SIZE), p=Int(1, 10**5), key=Key(), signal=Real(lo=0.0, hi=checks.SCALE_MAX, ndim=(0,)))
def synthetic_power_law(N: int, p: int, beta: float, r: float, key: int = 0, signal: float = 1.0) -> Dataset:
    """Gaussian inputs x ~ N(0, diag(j^-beta)) in R^p with targets y = x.w0, where lambda_j w0_j^2 ∝ j^-(1+2 beta r)
    (the power-law source of theory/moments.md "Setting"). With the linear kernel the kernel spectrum is the power law
    j^-beta.

    Example:
        >>> data = synthetic_power_law(500, 50, beta=1.5, r=0.5)
        >>> data.X.shape, data.Y.shape, data.labels is None
        ((500, 50), (500, 1), True)
    """
    from collapse_jax.regression import Spectrum

    spec = Spectrum.power_law(checks.size("p", p, lo=1), beta, r, signal=signal)
    X = np.random.default_rng(key).standard_normal((checks.size("N", N, lo=2), p)) * np.sqrt(spec.eigenvalues)
    return Dataset(X, (X @ np.asarray(spec.w0))[:, None], None, f"power_law(beta={beta}, r={r})")


@checked(test=Int(1), key=Key())
def split(data: Dataset, test: int, key: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pool indices, test indices): `test` held-out points chosen at random, the rest form the pool.

    Args:
        data: the dataset to split.
        test: number of held-out points (1 <= test < N - 1).
        key: the seed of the random choice.

    Returns:
        (pool, test): two sorted, disjoint index arrays covering 0..N-1.

    Raises:
        ValueError: test out of range.

    Example:
        >>> from collapse_jax.kernels import split, synthetic_power_law
        >>> pool, test = split(synthetic_power_law(50, 5, beta=1.5, r=0.5), test=10)
        >>> len(pool), len(test)
        (40, 10)
    """
    N = len(data.X)
    test = checks.size("test", test, lo=1)
    if test >= N - 1:
        raise ValueError(f"test must leave at least 2 points in the pool, got test = {test} of N = {N}")
    perm = np.random.default_rng(key).permutation(N)
    return np.sort(perm[test:]), np.sort(perm[:test])
