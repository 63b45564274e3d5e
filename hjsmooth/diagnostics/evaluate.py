"""The full-data loss at many points of parameter space, without touching the model's parameters.

Points are produced chunk by chunk (``make_chunk(start, stop)`` returns flat parameter vectors of
shape ``(stop - start, d)``), so a grid of thousands of points never sits in memory at once.  Each
point is evaluated with ``torch.func.functional_call``: either one point at a time, or ``chunk``
points at once under ``torch.func.vmap``.  Which is faster depends on the model and the device
(docs/benchmarks.md has measurements), so by default the first chunk is evaluated both ways and the
faster one is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hjsmooth.diagnostics._problem import LossProblem

__all__ = ["PointLosses"]

#: vmap chunk: points per call, so that points * largest batch <= this many sample evaluations
SAMPLES_PER_CALL = 2**15


class PointLosses:
    """``f`` at flat parameter vectors: ``f(p) = sum_b (n_b / N) loss_fn(model_p(inputs_b), targets_b)``.

    Parameters
    ----------
    problem : LossProblem
        The model, loss and data (call inside ``evaluation_mode``).
    vectorize : bool, optional
        Evaluate ``chunk`` points per call with ``torch.func.vmap`` (True) or one at a time (False).
        Default: time both on the first chunk and keep the faster.  A model that vmap cannot batch
        is evaluated one point at a time.
    chunk : int, optional
        Points per vectorised call; default ``max(1, 2**15 // largest batch)``.
    """

    def __init__(self, problem: LossProblem, vectorize: bool | None = None, chunk: int | None = None):
        self.problem = problem
        self.vectorize = vectorize
        largest = max(b.size for b in problem.batches)
        self.chunk = max(1, SAMPLES_PER_CALL // largest) if chunk is None else int(chunk)

    def _one(self, flat: torch.Tensor) -> torch.Tensor:
        params = self.problem.space.as_dict(flat)
        total = flat.new_zeros(())
        for batch in self.problem.batches:
            total = total + batch.weight * self.problem.batch_loss(batch, params)
        return total

    def _loop(self, points: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._one(p) for p in points])

    def _vmap(self, points: torch.Tensor) -> torch.Tensor | None:
        """The losses by vmap, or None (and no more tries) if the model cannot be vmapped."""
        try:
            return torch.func.vmap(self._one)(points)
        except Exception:  # noqa: BLE001 - not vmappable (data-dependent Python control flow, .item(), ...)
            self.vectorize = False
            return None

    def _timed(
        self, fn: Callable[[torch.Tensor], torch.Tensor | None], points: torch.Tensor
    ) -> tuple[torch.Tensor | None, float]:
        if points.device.type == "cuda":
            torch.cuda.synchronize(points.device)
        start = time.perf_counter()
        values = fn(points)
        if points.device.type == "cuda":
            torch.cuda.synchronize(points.device)
        return values, (time.perf_counter() - start) / len(points)

    def _evaluate(self, points: torch.Tensor) -> torch.Tensor:
        if self.vectorize is None:
            values, per_point_vmap = self._timed(self._vmap, points)
            if values is None:
                return self._loop(points)
            probe = points[: min(len(points), 4)]
            _, per_point_loop = self._timed(self._loop, probe)
            self.vectorize = per_point_vmap < per_point_loop
            return values
        if self.vectorize:
            values = self._vmap(points)
            if values is not None:
                return values
        return self._loop(points)

    def __call__(self, make_chunk: Callable[[int, int], torch.Tensor], count: int, progress: Any = None) -> np.ndarray:
        """Losses at the ``count`` points that ``make_chunk`` produces, as a float64 numpy array."""
        out = np.empty(count)
        start = 0
        with torch.no_grad():
            while start < count:
                stop = min(count, start + self.chunk)
                values = self._evaluate(make_chunk(start, stop))
                out[start:stop] = values.detach().double().cpu().numpy()
                if progress is not None:
                    progress.update(stop - start)
                start = stop
        return out
