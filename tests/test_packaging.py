"""The package as others receive it: what a wheel holds, and what importing it does to the user's process."""

import importlib.metadata
import importlib.util
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
def test_wheel_holds_the_package_its_data_and_its_license(tmp_path, monkeypatch):
    """Built offline (no build isolation, no index) from a copy of what a clone holds: every module, the packaged
    .mplstyle files, every experiment file (experiments/ mapped to collapse_jax/experiments/, where the CLI finds
    the default experiment from any folder), the LICENSE, the SPDX licence, the one version and the console script."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("collapse_jax", "experiments"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
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
    assert "collapse-jax = collapse_jax.cli:entry" in zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert not any(n.startswith(("tests/", "experiments/", "benchmarks/")) for n in names)
    tomls = {f"collapse_jax/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "experiments").rglob("*.toml")}
    assert len(tomls) >= 20 and tomls <= names, f"missing experiment files: {sorted(tomls - names)}"

    # the wheel unpacked as an installer lays it out, its CLI module loaded from there, asked from a folder that
    # holds no experiments/: it finds the shipped files (without importing the package and JAX)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    spec = importlib.util.spec_from_file_location("wheel_cli", site / "collapse_jax" / "cli.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.chdir(tmp_path)
    shipped = site / "collapse_jax" / "experiments"
    assert cli.experiment_file() == shipped / "default.toml"
    assert cli.experiment_file("experiments/sweeps/kde_M_grid.toml") == shipped / "sweeps" / "kde_M_grid.toml"
    assert cli.experiment_file("experiments/nonesuch.toml") == Path("experiments/nonesuch.toml")  # reader names it
    (shipped / "default.toml").unlink()
    with pytest.raises(ValueError, match=r"cannot find experiments/default\.toml"):
        cli.experiment_file()


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
