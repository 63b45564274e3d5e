"""What the package ships besides code (``py.typed``), and the lint of the modules already clean.

``.ci/lint`` runs ruff and mypy over the whole library; until it is part of CI, this test keeps the
modules that already pass ``ruff check`` and ``ruff format --check`` from slipping back.  Skipped where
ruff is not installed (the ``lint`` extra installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hjsmooth

ROOT = Path(__file__).resolve().parent.parent

# The whole library is lint-clean and formatted (.ci/lint also runs mypy over it).
CLEAN = ["hjsmooth", "solvers", "demos", "tools", ".ci/typecheck.py"]


def test_py_typed_is_shipped() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    assert (Path(hjsmooth.__file__).parent / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["hjsmooth"]


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
    reason="ruff is not installed (pip install -e '.[lint]')",
)
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_clean_modules_stay_clean(command: list[str]) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    proc = subprocess.run([ruff, *command, *CLEAN], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_validation_does_not_import_the_grid() -> None:
    """``hjsmooth.grid`` imports ``hjsmooth.validation``; the other way round would be a cycle."""
    code = (
        "import sys, hjsmooth.validation as v\n"
        "assert 'hjsmooth.grid' not in sys.modules, 'validation imported the grid'\n"
        "try:\n    v.check_grid(object())\nexcept TypeError as e:\n    assert '`grid`' in str(e)\n"
        "else:\n    raise AssertionError('a non-grid passed')\n"
        "import hjsmooth.grid as g\n"
        "grid = g.Grid((0.0,), (1.0,), (3,))\nassert v.check_grid(grid) is grid\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
