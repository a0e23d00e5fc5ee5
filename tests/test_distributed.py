"""Sweeps under jax.distributed on this machine: local CPU processes exchanging chunks through JAX's collectives
(gloo), bit-identical to one process; a process killed half-way leaves whole chunks only, the others stop with a
clear error, and a rerun resumes. Tiny sizes: the time is the processes' start-up."""

import os
import socket
import subprocess
import sys
import time
import tomllib

import numpy as np
import pytest
from stats import timeout_for

import collapse_jax as cj
from collapse_jax import cli, experiment
from collapse_jax.engine import store

GAUSSIAN = """
kind = "gaussian_chain"
[chain]
generations = 2
estimator = "mle"
[simulation]
seeds = 8
[grid]
"chain.M" = [10, 20]
"""
REGRESSION = dict(grid={"down.lam": [0.1, 1.0]}, generations=2, seeds=12, key=3)
TOML = """
[spectrum]
kind = "isotropic"
d = 6
[generators]
T0 = 12
[downstream]
T = 12
[grid]
"down.lam" = [0.1, 1.0]
[simulation]
generations = 2
seeds = 12
key = 3
"""

# The Python API in every process: both kinds of sweep, one after the other, on one jax.distributed runtime.
API = f"""
import sys, tomllib
import jax
jax.config.update("jax_enable_x64", True)
from collapse_jax.engine import collective
port, n, i, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
collective.start("127.0.0.1:" + port, n, i, heartbeat=10)
if len(sys.argv) > 5:  # the CLI's program folder: stored programs under jax.distributed
    from collapse_jax.engine import compilation_cache
    compilation_cache.enable(sys.argv[5])
import collapse_jax as cj
from collapse_jax import experiment
res = cj.sweep(cj.Spectrum.isotropic(6), cj.Generators(T0=12), cj.Downstream(T=12), **{REGRESSION!r},
               out=out + "/regression", chunk_size=2, progress=False)
gaussian = experiment.sweep_file(tomllib.loads({GAUSSIAN!r}), out + "/gaussian", progress=False)
assert (res is None) == (gaussian is None) == (i != 0), (i, res, gaussian)
try:  # process 1 fails on its first chunk: every process stops with its message, nothing is written
    cj.sweep(cj.Spectrum.isotropic(6), cj.Generators(T0=12), cj.Downstream(T=12), **{REGRESSION!r},
             out=out + "/failing", chunk_size=2, progress=False, _fail_after=0 if i == 1 else None)
except RuntimeError as err:
    print("stopped:", err, file=sys.stderr)
collective.stop()
"""

# The CLI, with process KILL_PROCESS killed (SIGKILL) as it enters its KILL_AT-th exchange of chunks.
DYING = """
import os, signal, sys
import jax
from collapse_jax.engine import collective
exchange, calls = collective._exchange, []
def dying(message, what):
    calls.append(what)
    if len(calls) == int(os.environ["KILL_AT"]) and jax.process_index() == int(os.environ["KILL_PROCESS"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return exchange(message, what)
collective._exchange = dying
from collapse_jax import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _launch(n: int, args, logs, env=None):
    """n processes of `python -c ...` with args(port, n, i), stderr to logs/i.txt; their return codes, their
    stderr and when each ended (seconds from the start, polled every 0.05 s)."""
    port, t0 = _port(), time.perf_counter()
    logs.mkdir(exist_ok=True)
    files = [open(logs / f"{i}.txt", "w") for i in range(n)]
    procs = [subprocess.Popen([sys.executable, "-c", *args(port, n, i)], stderr=files[i], env=env) for i in range(n)]
    ended: dict = {}
    deadline = t0 + timeout_for(20, floor=300)
    while len(ended) < n and time.perf_counter() < deadline:
        ended |= {i: time.perf_counter() - t0 for i, p in enumerate(procs) if i not in ended and p.poll() is not None}
        time.sleep(0.05)
    for p in procs:
        p.kill() if p.poll() is None else None
    for f in files:
        f.close()
    return [p.wait() for p in procs], [(logs / f"{i}.txt").read_text() for i in range(n)], ended


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The regression sweep in this one process."""
    spec, gen, down = cj.Spectrum.isotropic(6), cj.Generators(T0=12), cj.Downstream(T=12)
    return cj.sweep(spec, gen, down, **REGRESSION, out=tmp_path_factory.mktemp("one"), chunk_size=2, progress=False)


def test_three_processes_equal_one_process(tmp_path, one):
    """A regression sweep (6 chunks over 3 processes: two rounds) and a Gaussian-chain experiment sweep (2 grid
    points, one process idle) under jax.distributed: the merged arrays are bit for bit those of one process. A
    sweep in which process 1 fails stops every process with its message, and writes no chunk."""
    codes, logs, _ = _launch(
        3, lambda port, n, i: [API, port, str(n), str(i), str(tmp_path / "dist")], tmp_path / "logs"
    )
    assert codes == [0, 0, 0], [log[-2000:] for log in logs]
    many = cj.sweep_load(tmp_path / "dist" / "regression")
    assert one.test_error.shape == (2, 12, 3)
    assert np.array_equal(many.test_error, one.test_error) and np.array_equal(many.generator_error, one.generator_error)
    gaussian_one = experiment.sweep_file(tomllib.loads(GAUSSIAN), tmp_path / "gaussian_one", progress=False)
    gaussian_many = cj.sweep_load(tmp_path / "dist" / "gaussian")
    assert set(gaussian_many.arrays) == set(gaussian_one.arrays)
    assert all(np.array_equal(gaussian_many.arrays[k], gaussian_one.arrays[k]) for k in gaussian_one.arrays)
    assert not list((tmp_path / "dist").rglob("*.tmp*"))
    assert "stopped: injected interruption after 0 chunks" in logs[1]
    for log in (logs[0], logs[2]):
        assert "stopped: process 1 of 3 failed during chunks 1..3 of 6: RuntimeError: injected interruption" in log
    assert not list((tmp_path / "dist" / "failing" / "chunks").iterdir())


def test_killed_process_leaves_whole_chunks_and_a_rerun_resumes(tmp_path, one):
    """`collapse-jax sweep --distributed` in 3 processes, process 2 killed as it enters the second round's
    exchange: the survivors stop with status 2 and say a process stopped answering, within seconds (not the
    heartbeat timeout); every chunk on disk passes its hash check; the same command in 2 processes computes only
    the rest and gives the arrays of one process."""
    cfg, out = tmp_path / "s.toml", tmp_path / "out"
    cfg.write_text(TOML)
    options = ["--out", str(out), "--chunk-size", "2", "--heartbeat", "10", "--distributed"]
    cmd = lambda port, n, i: ["sweep", str(cfg), *options, f"127.0.0.1:{port}", str(n), str(i)]
    env = os.environ | dict(KILL_AT="3", KILL_PROCESS="2")  # exchanges: the start, round 1, round 2 (killed)
    codes, logs, ended = _launch(3, lambda port, n, i: [DYING, *cmd(port, n, i)], tmp_path / "logs", env)
    assert codes == [2, 2, -9], [log[-2000:] for log in logs]
    for log in logs[:2]:
        assert "a process stopped answering during chunks 4..6 of 6" in log and "resumes" in log, log[-2000:]
    assert max(ended[0], ended[1]) - ended[2] < 5  # stopped by the broken gather (~0.1 s), not the heartbeat (10 s)
    chunks = sorted((out / "chunks").glob("*.npz"))
    assert [p.name for p in chunks] == [f"s0000_c{c:05d}.npz" for c in range(3)]  # round 1, written by process 0
    assert all(store.read_chunk(out, 0, c, (2, 2, 3)) is not None for c in range(3))  # hashes match
    assert not list(out.rglob("*.tmp*")) and not (out / "sweep.npz").exists()
    written = {p.name: p.stat().st_mtime_ns for p in chunks}

    codes, logs, _ = _launch(
        2,
        lambda port, n, i: [
            "from collapse_jax import cli; import sys; sys.exit(cli.main(sys.argv[1:]))",
            *cmd(port, n, i),
        ],
        tmp_path / "rerun",
    )
    assert codes == [0, 0], [log[-2000:] for log in logs]
    assert "3 of the 6 to run here already on disk" in logs[0]
    assert all((out / "chunks" / name).stat().st_mtime_ns == t for name, t in written.items())  # not rewritten
    resumed = cj.sweep_load(out)
    assert np.array_equal(resumed.test_error, one.test_error)
    assert np.array_equal(resumed.generator_error, one.generator_error)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--distributed", "127.0.0.1:1234", "2"], "HOST:PORT N ID (three values) or `auto`"),
        (["--distributed", "127.0.0.1:1234", "two", "0"], "the number of processes N must be an integer"),
        (["--distributed", "127.0.0.1:1234", "2", "2"], "the process id must be an integer 0 <= id < 2"),
        (["--distributed", "127.0.0.1", "2", "0"], "the coordinator must look like HOST:PORT"),
        (["--distributed", "localhost:70000", "2", "0"], "the coordinator must look like HOST:PORT"),
        (["--distributed", "127.0.0.1:1234", "0", "0"], "the number of processes must be an integer >= 1"),
        (["--distributed", "auto", "--shard", "0/2"], "--shard and --distributed exclude each other"),
        (["--heartbeat", "10"], "--heartbeat applies with --distributed only"),
    ],
)
def test_distributed_options_are_refused_by_name(tmp_path, capsys, options, message):
    (tmp_path / "s.toml").write_text(TOML)
    assert cli.main(["sweep", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_stored_programs_under_jax_distributed_give_the_numbers_of_one_process(tmp_path, one):
    """With the CLI's program folder on in every process, run 1 stores each process's programs (sharded over its
    own devices) and run 2 loads them: both runs give one process's arrays bit for bit."""
    cache = tmp_path / "cache"
    for run in ("first", "second"):
        out = tmp_path / run
        codes, logs, _ = _launch(
            3, lambda port, n, i, out=out: [API, port, str(n), str(i), str(out), str(cache)], tmp_path / f"logs_{run}"
        )
        assert codes == [0, 0, 0], [log[-2000:] for log in logs]
        many = cj.sweep_load(out / "regression")
        assert np.array_equal(many.test_error, one.test_error) and np.array_equal(
            many.generator_error, one.generator_error
        )
        files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*.program")}
        if run == "first":
            stored = files
            assert len(stored) >= 3  # a chain program per process, at least
    assert files == stored  # run 2 loaded them all, and wrote none
