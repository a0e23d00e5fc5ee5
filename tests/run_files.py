"""Run each test file in its own pytest process, then print one closing line for the whole suite.

Why: in one long process the suite compiles several hundred XLA programs, and on the 2-core CI machines the
compiler then crashed (a segmentation fault, once an abort) inside `backend_compile` of a program that compiles
fine in a fresh process. A process per file keeps every compilation in a fresh runtime. The closing line is the
plain "N passed, N failed" form that CI reads.

    python tests/run_files.py [pytest options...]
"""
import re
import subprocess
import sys
import time
from pathlib import Path


def main(extra):
    here = Path(__file__).parent
    totals = dict(passed=0, failed=0, errors=0, skipped=0)
    bad, t0 = [], time.perf_counter()
    for path in sorted(here.glob("test_*.py")):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", str(path), *extra], capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        summary = lines[-1] if lines else ""
        for key in totals:
            m = re.search(rf"(\d+) {key.rstrip('s') if key == 'errors' else key}", summary)
            totals[key] += int(m.group(1)) if m else 0
        print(f"{path.name}: {summary.strip('= ')} ({time.perf_counter() - start:.0f}s)", flush=True)
        if done.returncode not in (0, 5):
            bad.append(path.name)
            print(done.stdout[-20000:], done.stderr[-5000:], sep="\n", flush=True)
    print(f"suite: {time.perf_counter() - t0:.0f}s; failing files: {bad or 'none'}")
    print(f"{totals['passed']} passed, {totals['failed'] + totals['errors'] + (len(bad) if not totals['failed'] + totals['errors'] else 0)} failed"
          + (f", {totals['skipped']} skipped" if totals["skipped"] else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
