"""The documentation site builds with ``mkdocs build --strict``: the guide pages and the API reference.

Skipped only where mkdocs (with mkdocs-material and mkdocstrings) is not installed; the ``test`` extra
installs them, so CI builds the site.  A reference to an object that does not exist, a docstring griffe
cannot parse or a link to a missing page fails the build, and so this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parent.parent


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=300, cwd=config.parent,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_site_builds_strict(tmp_path: Path) -> None:
    proc = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    pages = {
        "hjsmooth": ["hjsmooth.grid.Grid", "hjsmooth.validation.check_time"],
        "solvers": [
            "hjsmooth.solvers.hopf_lax.hopf_lax",
            "hjsmooth.solvers.hj.solve_hj",
            "hjsmooth.solvers.fokker_planck.solve_fokker_planck",
            "hjsmooth.solvers.hjb.solve_forward_backward",
        ],
        "sde": ["hjsmooth.sde.smoothed_grad.smoothed_grad", "hjsmooth.sde.simulate.simulate", "hjsmooth.sde.Paths"],
        "optim": ["hjsmooth.optim.EntropySGD", "hjsmooth.optim.Parle", "hjsmooth.optim.schedules"],
        "diagnostics": ["hjsmooth.diagnostics.hessian_eigenvalues", "hjsmooth.diagnostics.loss_slice"],
        "landscapes": ["hjsmooth.landscapes.rugged_1d"],
        "demos": ["hjsmooth.demos.run", "hjsmooth.cli.main"],
    }
    for page, anchors in pages.items():
        html = (tmp_path / "site" / "reference" / page / "index.html").read_text()
        for anchor in anchors:
            assert f'id="{anchor}"' in html, (page, anchor)
    for guide in ("conventions", "solvers", "samplers", "optimizers", "diagnostics", "results", "benchmarks"):
        assert (tmp_path / "site" / guide / "index.html").is_file(), guide


def test_a_broken_reference_fails_the_build(tmp_path: Path) -> None:
    """The same configuration on one page that names a function hjsmooth does not have: the build fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Broken\n\nSee [the solver][hjsmooth.solvers.hj.no_such_solver].\n\n"
                                   "::: hjsmooth.grid.Grid\n")
    config = (ROOT / "mkdocs.yml").read_text().split("\nnav:")[0]
    config = config.replace("paths: [.]", f"paths: [{ROOT}]").replace(
        "tools/griffe_package_dir.py", str(ROOT / "tools" / "griffe_package_dir.py"))
    (tmp_path / "mkdocs.yml").write_text(config + "\nnav:\n  - index.md\n")
    proc = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "hjsmooth.solvers.hj.no_such_solver" in proc.stderr
