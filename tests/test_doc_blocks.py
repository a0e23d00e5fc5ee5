"""Documentation that runs: every Python block and every shell line of README.md, experiments/README.md and
theory/*.md is executed, in document order, at small sizes.

A block may be preceded by a marker that the rendered page does not show:
``<!-- doc-test: A => B; skip "text": reason -->``. ``A => B`` replaces text in the block before it runs (the
document's sizes are kept for readers, the suite runs small ones); ``skip "text": reason`` leaves out the shell
lines containing text, with the reason written beside it (only for lines the suite runs elsewhere or cannot run:
``make test`` runs the suite itself). Each Python block runs in a fresh namespace (self-contained), in a
temporary working directory; shell lines run with ``collapse-jax`` as ``python -m collapse_jax`` of this tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from stats import timeout_for

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "experiments/README.md"] + sorted(
    p.relative_to(ROOT).as_posix() for p in ROOT.glob("theory/*.md")
)
FENCE = re.compile(r"(?:<!-- doc-test: (?P<marker>.*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
SHELL_START = (".venv/bin/collapse-jax", "collapse-jax", "srun", "bash", "python", "make")


def parse_marker(marker: str | None):
    """(replacements, skips) from a marker; a skip without a reason is refused."""
    replacements, skips = [], []
    for item in filter(None, (x.strip() for x in (marker or "").split(";"))):
        m = re.fullmatch(r'skip "(.+?)":\s*(.+)', item)
        if m:
            skips.append(m.group(1))
        elif " => " in item:
            replacements.append(tuple(item.split(" => ", 1)))
        else:
            raise ValueError(f"doc-test marker item must be 'A => B' or 'skip \"text\": reason', got {item!r}")
    return replacements, skips


def blocks():
    out = []
    for doc in DOCUMENTS:
        text = (ROOT / doc).read_text()
        for i, m in enumerate(FENCE.finditer(text)):
            lang, body = m.group("lang"), m.group("body")
            replacements, skips = parse_marker(m.group("marker"))
            for a, b in replacements:
                assert a in body, f"{doc} block {i}: the marker replaces {a!r}, which the block does not contain"
                body = body.replace(a, b)
            if lang == "python":
                out.append(pytest.param("python", body, id=f"{doc}:{i}:python"))
            elif lang in ("", "bash", "sh"):
                lines = [ln for ln in body.splitlines() if ln.strip().startswith(SHELL_START)]
                kept = [ln for ln in lines if not any(s in ln for s in skips)]
                if kept:
                    out.append(pytest.param("shell", "\n".join(kept), id=f"{doc}:{i}:shell"))
    return out


BLOCKS = blocks()


def test_the_documents_have_blocks_and_markers_parse():
    assert sum(kind == "python" for kind, _ in (p.values for p in BLOCKS)) >= 9
    assert sum(kind == "shell" for kind, _ in (p.values for p in BLOCKS)) >= 2
    with pytest.raises(ValueError, match="marker item"):
        parse_marker("seeds=2000 -> seeds=16")


@pytest.mark.timeout(timeout_for(60))  # a shell block runs whole experiments (small): stretched by the load
@pytest.mark.parametrize("kind, code", BLOCKS)
def test_block_runs(kind, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    if kind == "python":
        exec(compile(code, "<doc block>", "exec"), {"__name__": "__doc_block__"})
        return
    python = f"{sys.executable} -m collapse_jax"
    script = re.sub(r"(\.venv/bin/)?collapse-jax", python, code)
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "SCRATCH": str(tmp_path / "scratch"),
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "1",
    }
    for line in script.splitlines():
        done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
