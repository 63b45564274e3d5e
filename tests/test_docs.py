"""Run the ``python`` code blocks of README.md and every page in docs/, in order, one namespace per page.

A page's blocks run as one tutorial: later blocks see the names earlier ones defined.  Only fences
whose info string is exactly ``python`` run.  A fragment that cannot run on its own (it uses a ``model``
or data the page never builds) is fenced ``python skip``, which renders as Python and is not run;
write ``text``, ``bash`` or ``pycon`` for anything else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every fenced block whose info string is ``python``."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group(1).strip() == "python":
            line = text.count("\n", 0, match.start()) + 2
            blocks.append((line, match.group(2)))
    return blocks


def test_block_extraction() -> None:
    text = ("intro\n```python\na = 1\n```\n```bash\nrm -rf /\n```\n```python\nb = a + 1\n```\n"
            "```python skip\nmodel.fit()\n```\n")
    assert python_blocks(text) == [(3, "a = 1\n"), (9, "b = a + 1\n")]


PAGES = [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    monkeypatch.chdir(tmp_path)                      # files the examples write land here
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for line, code in python_blocks(page.read_text()):
        try:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)  # noqa: S102 - the docs' own examples
        except Exception as exc:  # noqa: BLE001 - report which block failed
            raise AssertionError(f"{page.name}, code block at line {line} failed: {exc!r}") from exc
