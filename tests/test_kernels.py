"""The stepper registry: one table of (operator, engine) -> implementation that every solver asks."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

import hjsmooth as hs
from hjsmooth.solvers import kernels

SOLVERS = Path(__file__).resolve().parent.parent / "solvers"


def test_every_engine_of_every_row_has_an_implementation() -> None:
    for (operator, _device), engines in kernels.ENGINES.items():
        assert engines[-1] == "array", (operator, engines)
        for engine in engines:
            assert (operator, engine) in kernels.IMPLEMENTATIONS, (operator, engine)


@pytest.mark.parametrize("key", sorted(kernels.IMPLEMENTATIONS))
def test_implementations_name_callables(key) -> None:
    operator, engine = key
    implementation = kernels.IMPLEMENTATIONS[key]
    if engine == "cuda":  # importing a CUDA module needs no GPU, but its factories do
        module = importlib.import_module(f"hjsmooth.solvers.{implementation.module}")
        assert callable(getattr(module, implementation.factory))
        return
    assert callable(implementation.attribute(implementation.factory))
    if implementation.supports is not None:
        assert callable(implementation.attribute(implementation.supports))


def test_build_returns_the_worker_of_the_engine_it_names() -> None:
    engine, worker = kernels.build("lower_envelope", np.zeros(3))
    assert engine == "numba" and worker.name == "numba"
    engine, worker = kernels.build("lower_envelope", np.zeros(3), engine="array")
    assert engine == "array" and worker.name == "brute_force"
    with pytest.raises(ValueError, match="unknown `operator`"):
        kernels.build("no_such_operator", np.zeros(3))


def test_an_unavailable_package_falls_through_to_the_array_engine(monkeypatch) -> None:
    monkeypatch.setitem(kernels._PACKAGES, "numba", lambda: False)
    assert kernels.select_engine("log_sum_exp", np.zeros(3)) == "array"
    grid = hs.Grid(-1.0, 1.0, 21)
    assert hs.solve_hj(grid.coords[0] ** 2, grid, 0.1).info["engine"] == "array"


def _imports(path: Path) -> list[ast.ImportFrom]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)]


@pytest.mark.parametrize("path", sorted(SOLVERS.glob("*.py")), ids=lambda p: p.name)
def test_one_import_style_and_no_private_names_across_modules(path: Path) -> None:
    """Modules of the package import each other relatively, and only public names."""
    for node in _imports(path):
        module = node.module or ""
        assert not module.startswith("hjsmooth.solvers"), f"{path.name}: absolute import of {module}"
        if node.level > 0:
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, f"{path.name}: imports private {private} from .{module}"
