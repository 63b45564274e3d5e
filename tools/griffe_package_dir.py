"""A griffe extension that finds the subpackages pyproject maps from other folders.

``[tool.setuptools.package-dir]`` installs the top-level ``solvers/`` folder as ``hjsmooth.solvers``
(and ``demos/`` as ``hjsmooth.demos``).  Griffe reads the source tree and finds neither under
``hjsmooth/``; this extension loads each mapped folder and attaches it to the ``hjsmooth`` package,
so ``::: hjsmooth.solvers.hj.solve_hj`` resolves from a plain clone, whatever the install mode.
mkdocs.yml names it under the python handler's ``extensions``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import griffe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def package_dirs(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """``{"hjsmooth.solvers": "solvers", ...}``: the package-dir table of pyproject, less the root entry."""
    table = tomllib.loads(pyproject.read_text())["tool"]["setuptools"].get("package-dir", {})
    return {name: folder for name, folder in table.items() if name}


class PackageDir(griffe.Extension):
    """Attach every folder of ``[tool.setuptools.package-dir]`` to its parent package once that is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for dotted, folder in package_dirs().items():
            parent, _, name = dotted.rpartition(".")
            if parent != pkg.path:
                continue
            sub_loader = griffe.GriffeLoader(
                search_paths=[str(ROOT / Path(folder).parent)],
                docstring_parser=loader.docstring_parser,
                docstring_options=loader.docstring_options,
            )
            module = sub_loader.load(Path(folder).name)
            assert isinstance(module, griffe.Module)
            module.name = name
            pkg.set_member(name, module)
