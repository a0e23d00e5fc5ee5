"""The package as others receive it: what a wheel holds, and what importing it does to the user's process."""

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import collapse_jax

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_floor_met() -> bool:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77


@pytest.mark.skipif(
    not _setuptools_floor_met(), reason="needs setuptools>=77 in this environment (make's set-up installs it)"
)
def test_wheel_holds_the_package_its_data_and_its_license(tmp_path):
    """Built offline (no build isolation, no index) from a copy of what a clone holds: every module, the packaged
    .mplstyle files, the LICENSE, the SPDX licence, the one version and the console script."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "collapse_jax", src / "collapse_jax", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            "dist",
            ".",
        ],
        cwd=src,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (src / "dist").glob("*.whl")
    assert wheel.name == f"collapse_jax-{collapse_jax.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "collapse_jax").rglob("*.py")}
    styles = {p.relative_to(ROOT).as_posix() for p in (ROOT / "collapse_jax").rglob("*.mplstyle")}
    assert len(styles) >= 2 and styles <= names, f"missing data files: {sorted(styles - names)}"
    assert modules <= names, f"missing modules: {sorted(modules - names)}"
    info = f"collapse_jax-{collapse_jax.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in meta and f"Version: {collapse_jax.__version__}" in meta
    assert "collapse-jax = collapse_jax.cli:main" in zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert not any(n.startswith(("tests/", "experiments/", "benchmarks/")) for n in names)


def test_import_changes_no_global_state():
    """Importing the package (plotting included) leaves JAX's threefry lowering and matplotlib's backend as they
    were; use_fused_threefry() is what changes the lowering (so the comparison can see a change)."""
    code = """
import matplotlib
from jax._src import prng
from jax._src.interpreters import mlir
lowering = lambda: mlir._platform_specific_lowerings["cpu"].get(prng.threefry2x32_p)
before, backend = lowering(), matplotlib.rcParams._get_backend_or_none()
import collapse_jax, collapse_jax.engine.plotting, collapse_jax.experiment
assert lowering() is before, "import changed the threefry lowering"
assert matplotlib.rcParams._get_backend_or_none() == backend, matplotlib.rcParams._get_backend_or_none()
assert collapse_jax.engine.use_fused_threefry() and lowering() is not before
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
