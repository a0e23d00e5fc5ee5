"""Guard against the JAX CPU runtime deadlock seen with jax/jaxlib 0.10.0-0.10.2 on 2-core machines.

The program below (jit(vmap(scan)) with two linear solves per step) never returns on those releases. It
runs in a subprocess with a timeout, so a hang fails this test in seconds instead of stalling the suite.
"""

import os
import subprocess
import sys
import textwrap

import jax
from stats import timeout_for

from collapse_jax.engine import lapack_threads

PROGRAM = textwrap.dedent("""
    import jax, jax.numpy as jnp
    d, T = 100, 300
    def chain(key):
        def step(w, k):
            k1, k2 = jax.random.split(k)
            X1 = jax.random.normal(k1, (T, d)); X2 = jax.random.normal(k2, (T, d))
            w1 = jnp.linalg.solve(X1.T @ X1, X1.T @ (X1 @ w))
            w2 = jnp.linalg.solve(X2.T @ X2, X2.T @ (X2 @ w1))
            return w2, jnp.sum(w1)
        return jax.lax.scan(step, jnp.ones(d), jax.random.split(key, 3))[1]
    out = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(0), 4)).block_until_ready()
    print("ok", out.shape)
""")


def test_jit_vmap_scan_does_not_hang():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # XLA's default compile, as a user's program gets (conftest sets quick compiles)
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=timeout_for(10, floor=120), env=env
    )
    assert done.returncode == 0, done.stderr
    assert "ok (4, 3)" in done.stdout


def test_jax_version_outside_known_broken_range():
    assert jax.__version__ not in {"0.10.0", "0.10.1", "0.10.2"}, "these releases deadlock on 2-core CPUs"


THREADS = textwrap.dedent("""
    import os, sys
    from collapse_jax import cli
    from collapse_jax.engine import use_one_lapack_thread
    if sys.argv[1] == "cli":
        sys.argv = ["collapse-jax", "no-such-command"]  # entry's setup, then argparse refuses the command
        try:
            cli.entry()
        except SystemExit:
            pass
    import jax, jax.numpy as jnp
    jax.jit(jnp.linalg.cholesky)(jnp.eye(3)).block_until_ready()  # jaxlib loads SciPy's LAPACK here
    from threadpoolctl import threadpool_info
    scipy_blas = [i for i in threadpool_info() if "scipy" in i["filepath"] and "numpy" not in i["filepath"]]
    print(len(scipy_blas), scipy_blas[0]["num_threads"], use_one_lapack_thread())
""")


def threads_in_a_fresh_process(how: str, **env_vars) -> tuple[int, int, bool]:
    """(SciPy BLAS libraries loaded, their threads, what a later use_one_lapack_thread() says) in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in lapack_threads.VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", THREADS, how],
        capture_output=True,
        text=True,
        timeout=timeout_for(10, floor=120),
        env=env | env_vars,
    )
    assert done.returncode == 0, done.stderr
    count, threads, again = done.stdout.split()
    return int(count), int(threads), again == "True"


def test_the_cli_gives_jaxlibs_lapack_one_thread_unless_the_user_chose():
    """engine/lapack_threads.py: a collapse-jax process runs jaxlib's factorisations on one OpenBLAS thread (those
    threads only spin beside XLA's own); a thread count in the environment stands; once SciPy's OpenBLAS is
    loaded the request can no longer act, and says so."""
    assert threads_in_a_fresh_process("cli") == (1, 1, False)  # set by entry; the later call finds SciPy loaded
    assert threads_in_a_fresh_process("cli", OPENBLAS_NUM_THREADS="2") == (1, 2, False)  # the user's choice stands
    # negative control: a process that does not ask gets OpenBLAS's default, a thread per core
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores > 1:
        count, threads, again = threads_in_a_fresh_process("plain")
        assert (count, again) == (1, False) and threads > 1
