"""Helpers for the optimizer tests: one outer step, and the weights at the anchor, for any optimizer."""

from __future__ import annotations

import contextlib
from typing import Any


def outer(opt: Any, closure: Any) -> Any:
    """One outer step: ``step_outer`` of an hjsmooth optimizer, ``step`` of a torch.optim one."""
    return opt.step_outer(closure) if hasattr(opt, "step_outer") else opt.step(closure)


def at_anchor(opt: Any) -> contextlib.AbstractContextManager[Any]:
    """``opt.at_anchor()`` of an hjsmooth optimizer (the parameters hold x inside); nothing for torch.optim's."""
    return opt.at_anchor() if hasattr(opt, "at_anchor") else contextlib.nullcontext()
