"""The progress bar of long diagnostics: tqdm on standard error, shown only when the work lasts over two seconds."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int | None, desc: str, enabled: bool = True) -> Any:
    """A ``tqdm`` bar (use as a context manager; ``update(n)`` advances it); silent when ``enabled`` is false."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, delay=2.0, leave=False, disable=not enabled)
