"""The result object every grid solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PDESolution"]


@dataclass(frozen=True)
class PDESolution:
    """Solution of a PDE on a grid at the final time, and optionally at earlier times.

    Attributes
    ----------
    values : array
        The field at the final time, on the backend, device and dtype of the input.
    times : numpy.ndarray
        The times of ``snapshots`` (just ``[t]`` when no snapshots were asked for).
    snapshots : array or None
        The field at ``times``, stacked along a new leading axis, when asked for.
    steps : int
        Number of time steps taken (0 for closed-form solvers and ``t = 0``).
    success : bool
        Whether the solver reached the final time.
    message : str
        A one-line report: the scheme, the step size, or why it stopped.
    info : dict
        Extra counters and settings (step size, CFL number, scheme, ...).
    """

    values: Any
    times: np.ndarray
    snapshots: Any | None = None
    steps: int = 0
    success: bool = True
    message: str = ""
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        shape = tuple(getattr(self.values, "shape", ()))
        return (
            f"PDESolution(shape={shape}, t={float(self.times[-1]):g}, steps={self.steps}, "
            f"success={self.success}, message={self.message!r})"
        )

    @property
    def t(self) -> float:
        """The final time."""
        return float(np.asarray(self.times)[-1])
