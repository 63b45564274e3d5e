"""Run mypy on the hjsmooth package as it is installed, with its reports pointing at the source files.

pyproject's ``[tool.setuptools.package-dir]`` installs ``solvers/`` as ``hjsmooth.solvers`` and ``demos/``
as ``hjsmooth.demos``; mypy reads source folders and cannot follow that mapping.  So this script builds
the installed layout as a tree of symbolic links under ``build/typecheck/``, runs ``mypy -p hjsmooth`` on
it with the ``[tool.mypy]`` settings of pyproject.toml, and rewrites the paths in mypy's report back to
the files in the repository.  Extra arguments go to mypy.  Exit status: mypy's.

    python .ci/typecheck.py
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def link_tree(source: Path, target: Path) -> None:
    """Mirror the ``.py`` and ``py.typed`` files of ``source`` under ``target`` as symbolic links."""
    for path in source.rglob("*"):
        if (
            path.is_file()
            and (path.suffix in (".py", ".pyi") or path.name == "py.typed")
            and "__pycache__" not in path.parts
        ):
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)


def main(argv: list[str]) -> int:
    from mypy import api

    pyproject = ROOT / "pyproject.toml"
    mapped = tomllib.loads(pyproject.read_text())["tool"]["setuptools"].get("package-dir", {})
    if TREE.exists():
        shutil.rmtree(TREE)
    link_tree(ROOT / "hjsmooth", TREE / "hjsmooth")
    rewrites = {}
    for package, folder in mapped.items():
        if package.startswith("hjsmooth."):
            where = Path(*package.split("."))
            link_tree(ROOT / folder, TREE / where)
            rewrites[f"{where.as_posix()}/"] = f"{folder}/"
    rewrites["hjsmooth/"] = "hjsmooth/"
    os.chdir(TREE)  # mypy finds the package in its working folder; it reports paths as "hjsmooth/..."
    stdout, stderr, status = api.run(["--config-file", str(pyproject), "-p", "hjsmooth", *argv])
    for line in stdout.splitlines():
        for prefix, folder in sorted(rewrites.items(), key=lambda item: -len(item[0])):
            if line.startswith(prefix):
                line = folder + line[len(prefix) :]
                break
        print(line)
    print(stderr, end="", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
