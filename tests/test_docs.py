"""Run the ``python`` code blocks of README.md and every page in docs/: each block alone, in a fresh namespace.

A block is what a reader copies: it holds its own imports and builds its own data, and runs without the
blocks above it.  Fences whose info string is exactly ``python`` run here; ``python torchrun`` blocks are
scripts run under ``torch.distributed.run`` with two processes; ``python slow`` blocks run under
``pytest -m slow``.  A fragment that cannot run on its own (it uses a ``model`` or data the page never
builds) is fenced ``python skip``, which renders as Python and is not run; write ``text``, ``bash`` or
``pycon`` for anything else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)

def python_blocks(text: str, info: str = "python") -> list[tuple[int, str]]:
    """``(line number, code)`` of every fenced block whose info string is ``info``."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1).strip() == info:
            line = text.count("\n", 0, match.start()) + 2
            blocks.append((line, match.group(2)))
    return blocks


def test_block_extraction() -> None:
    text = ("intro\n```python\na = 1\n```\n```bash\nrm -rf /\n```\n```python\nb = a + 1\n```\n"
            "```python skip\nmodel.fit()\n```\n")
    assert python_blocks(text) == [(3, "a = 1\n"), (9, "b = a + 1\n")]


PAGES = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]
BLOCKS = [(page, line, code) for page in PAGES
          for line, code in python_blocks(page.read_text())]


def _run(page: Path, line: int, code: str, namespace: dict) -> None:
    try:
        exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own examples
    except Exception as exc:  # noqa: BLE001 - report which block failed
        raise AssertionError(f"{page.name}, code block at line {line} failed: {exc!r}") from exc


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory (files the examples write land there) and the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("page", "line", "code"), BLOCKS, ids=[f"{p.name}:{line}" for p, line, _ in BLOCKS])
def test_block_runs_alone(page: Path, line: int, code: str, sandbox: Path) -> None:
    _run(page, line, code, {"__name__": f"docs_{page.stem}_{line}"})


SLOW = [(page, line, code) for page in PAGES for line, code in python_blocks(page.read_text(), "python slow")]


@pytest.mark.slow
@pytest.mark.parametrize(("page", "line", "code"), SLOW, ids=[f"{p.name}:{line}" for p, line, _ in SLOW])
def test_slow_block_runs_alone(page: Path, line: int, code: str, sandbox: Path) -> None:
    _run(page, line, code, {"__name__": f"docs_{page.stem}_{line}"})


TORCHRUN = [(page, line, code) for page in PAGES for line, code in python_blocks(page.read_text(), "python torchrun")]


@pytest.mark.parametrize(("page", "line", "code"), TORCHRUN, ids=[f"{p.name}:{line}" for p, line, _ in TORCHRUN])
def test_torchrun_block_runs_on_two_processes(page: Path, line: int, code: str, sandbox: Path) -> None:
    script = sandbox / f"{page.stem}_{line}.py"
    script.write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], capture_output=True, text=True, timeout=600, env=env, cwd=sandbox)
    assert done.returncode == 0, f"{page.name}, torchrun block at line {line} failed:\n{done.stderr[-4000:]}"


def test_a_block_that_needs_an_earlier_one_fails_alone(sandbox: Path) -> None:
    """The check has teeth: a block that leans on a name from the block above does not pass."""
    page = sandbox / "page.md"
    page.write_text("```python\nimport math\n```\n\n```python\nprint(math.pi)\n```\n")
    (first_line, first), (second_line, second) = python_blocks(page.read_text())
    _run(page, first_line, first, {})
    with pytest.raises(AssertionError, match="line 6 failed: NameError"):
        _run(page, second_line, second, {})
