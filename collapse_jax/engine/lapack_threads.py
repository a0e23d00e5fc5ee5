"""One OpenBLAS thread for the factorisations inside the lab's programs, opt-in: `use_one_lapack_thread()`.

On CPU, jaxlib computes Cholesky factors, the tridiagonal reduction and other factorisations with LAPACK from
SciPy's bundled OpenBLAS, one matrix after another for a batch, on a thread of XLA's own pool. OpenBLAS starts
threads of its own for each call, one per core by default. XLA's pool already keeps the cores busy, so those
threads mostly wait, spinning. Measured on the project's 2-core CPU (jax 0.9.2, 5 December 2026;
benchmarks/README.md, "One OpenBLAS thread"):

* 400 batched Cholesky factors of 200 x 200 took 0.20 s of CPU and 0.13 s of wall time with one OpenBLAS thread,
  0.45 s and 0.24 s with two;
* the regression chain with one lambda (d = 800, T = 512, 40 seeds) took 0.79 s of CPU and 0.44 s of wall time
  with one, 1.49 s and 0.80 s with two.

So the lab's own processes (the CLI, the tests, the benchmarks) ask for one thread; importing the package does
not, since the variable is process-wide and also sets the threads of a SciPy a notebook uses for its own work.
OpenBLAS reads the variable once, when SciPy's copy is loaded: JAX loads it with scipy.linalg at the first
factorisation it compiles. NumPy's own OpenBLAS, loaded with numpy, is another copy and keeps its threads.

Example:
    >>> from collapse_jax.engine import use_one_lapack_thread
    >>> import scipy.linalg  # SciPy's OpenBLAS is loaded: too late to ask (a script asks first, as the CLI does)
    >>> use_one_lapack_thread()
    False
"""

from __future__ import annotations

import os
import sys

# what OpenBLAS reads for its thread count, first match wins: a user who set any of them has chosen
VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def use_one_lapack_thread() -> bool:
    """Ask SciPy's OpenBLAS (jaxlib's LAPACK on CPU) for one thread, before it is loaded.

    Returns whether the request was made: not where the environment already names a thread count (the user's
    choice stands), nor once scipy.linalg is loaded (its OpenBLAS has read the environment already).
    """
    if any(name in os.environ for name in VARIABLES) or "scipy.linalg" in sys.modules:
        return False
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    return True
