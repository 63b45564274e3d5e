"""``at_anchor(optimizer)``: evaluate or save at the anchor ``x`` whatever optimizer a training loop holds.

Between calls of ``step()`` an hjsmooth optimizer leaves the model at the point where the next
gradient is to be taken (the inner iterate ``y``, HEAT's perturbed point, a replica's point);
``with at_anchor(opt):`` puts the weights the optimizer descends, ``x``, into the parameters and
the evaluation point back afterwards.  For any other optimizer (``torch.optim.SGD``...) it does
nothing, so one evaluation routine serves every optimizer of a comparison.  Wrappers that hold
the optimizer as ``.optimizer`` (Accelerate's ``AcceleratedOptimizer``, Lightning's
``LightningOptimizer``) are looked through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["at_anchor", "unwrap"]


def unwrap(optimizer: Any) -> Any:
    """The optimizer inside framework wrappers (``.optimizer`` attributes), or ``optimizer`` itself."""
    seen = 0
    while not callable(getattr(optimizer, "at_anchor", None)) and hasattr(optimizer, "optimizer") and seen < 8:
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


@contextlib.contextmanager
def at_anchor(optimizer: Any) -> Iterator[Any]:
    """``with at_anchor(opt):`` the parameters hold the anchor ``x`` of an hjsmooth optimizer (others: unchanged).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Any optimizer, possibly inside a framework's wrapper.

    Yields
    ------
    The unwrapped optimizer.
    """
    inner = unwrap(optimizer)
    if callable(getattr(inner, "at_anchor", None)):
        with inner.at_anchor():
            yield inner
    else:
        yield inner
