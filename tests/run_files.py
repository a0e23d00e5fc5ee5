"""Run each test file in its own pytest process, a few at a time, then print one closing line for the suite.

Why a process per file: in one long process the suite compiles several hundred XLA programs, and on the 2-core
CI machines the compiler then crashed (a segmentation fault, once an abort) inside `backend_compile` of a program
that compiles fine in a fresh process. A process per file keeps every compilation in a fresh runtime.

Why several at once: most of the suite's time is XLA compilation, which runs on one core, so two files side by
side on two cores take about half the time of one after the other; and one file more than there are cores, since
a file that waits for its subprocesses or runs Python leaves its core idle (2 December 2026, 2 cores, a clean
clone: 1,247 s with two files at a time, 1,019 s with three, 186% of the two cores busy). Longest files start first so that
the last one to finish is a short one: their times from the previous run, else from tests/file_times.json (a clean
clone's CI run, committed: ordered by size, a short file that runs long, test_doc_blocks, started last and the
run took 1,217 s; by those times a replay of the same run's durations ends at 1,187 s, 3 s above a perfect split).

Compiles are quick (conftest.py turns LLVM's optimisation off) except for the tests marked `execution_bound`
(a whole file with `pytestmark`), which spend their time running programs (kernel matrices, KRR solves, an
optimiser's many steps, large Monte Carlo) and are faster with XLA's default optimisation. A file with some tests
marked runs in two processes: its marked tests optimised, the others not; the marks come from timing each test
both ways (benchmarks/README.md, "The suite's time").

No persistent compilation cache in the suite: CI starts from an empty one, so it would only add writes. (An
earlier try saw XLA:CPU reload entries with warnings of mismatched machine features, "could lead to execution
errors such as SIGILL": those name two LLVM tuning options, not CPU features, and the program loads; the CLI's
cache, collapse_jax/engine/compilation_cache.py, keys its folder by the CPU's real features and silences them.)
conftest.py sets COLLAPSE_JAX_CACHE=off; tests/test_compilation_cache.py tests the cache in a folder of its own.

The closing line is the plain "N passed, N failed" form that CI reads.

    python tests/run_files.py [pytest options...]          # TEST_JOBS=1 runs the files one after the other
"""

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

HERE = Path(__file__).parent
MARK = "execution_bound"  # the pytest marker (pyproject.toml) of tests faster optimised
TIMES = HERE.parent / ".pytest_cache" / "file_times.json"  # this checkout's last run
CI_TIMES = HERE / "file_times.json"  # a clean clone's run, for the first run of a checkout
KEYS = ("passed", "failed", "errors", "skipped")


def parts(path):
    """(name, optimised, pytest -m expression) for each process a file runs in: one, or two where only some of its
    tests are marked (a whole file is marked by a `pytestmark = ... execution_bound` line)."""
    text = path.read_text()
    if re.search(rf"^pytestmark = .*\b{MARK}\b", text, re.M):
        return [(path.name, True, None)]
    if f"pytest.mark.{MARK}" in text:
        return [(path.name, False, f"not {MARK}"), (f"{path.name}[{MARK}]", True, MARK)]
    return [(path.name, False, None)]


def run_file(path, optimised, select, extra):
    start = time.perf_counter()
    env = dict(
        os.environ,
        COLLAPSE_JAX_TEST_OPTIMIZE="1" if optimised else "0",
        COLLAPSE_JAX_TEST_LEGACY_EMITTERS="0" if optimised else "1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--durations=5", str(path), *(["-m", select] if select else []), *extra],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    return done, (lines[-1] if lines else ""), time.perf_counter() - start


def slowest(stdout: str) -> list[str]:
    """The lines of pytest's --durations table: where a file spends its time, in the log of every run."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "slowest" in line and "durations" in line), None)
    return (
        []
        if start is None
        else [
            line.strip() for line in lines[start + 1 :] if "s call" in line or "s setup" in line or "s teardown" in line
        ][:5]
    )


def count(summary, key):
    m = re.search(rf"(\d+) {'error' if key == 'errors' else key}", summary)
    return int(m.group(1)) if m else 0


def main(extra):
    known = json.loads((TIMES if TIMES.exists() else CI_TIMES).read_text())
    runs = [(path, *part) for path in sorted(HERE.glob("test_*.py")) for part in parts(path)]
    runs.sort(key=lambda run: known.get(run[1], run[0].stat().st_size / 100), reverse=True)
    jobs = int(os.environ.get("TEST_JOBS", (os.cpu_count() or 1) + 1))
    totals, bad, times, t0 = dict.fromkeys(KEYS, 0), [], {}, time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        running = {
            pool.submit(run_file, path, optimised, select, extra): name for path, name, optimised, select in runs
        }
        for future in as_completed(running):
            name, (done, summary, seconds) = running[future], future.result()
            times[name] = round(seconds)
            for key in KEYS:
                totals[key] += count(summary, key)
            print(f"{name}: {summary.strip('= ')} ({seconds:.0f}s)", *slowest(done.stdout), sep="\n    ", flush=True)
            if done.returncode not in (0, 5):  # 5: no test selected (every test of the file marked, or -k)
                bad.append(name)
                print(done.stdout[-20000:], done.stderr[-5000:], sep="\n", flush=True)
    TIMES.parent.mkdir(exist_ok=True)
    TIMES.write_text(json.dumps(times, indent=1))
    failed = totals["failed"] + totals["errors"] or len(bad)
    print(f"suite: {time.perf_counter() - t0:.0f}s with {jobs} files at a time; failing files: {bad or 'none'}")
    print(
        f"{totals['passed']} passed, {failed} failed" + (f", {totals['skipped']} skipped" if totals["skipped"] else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
