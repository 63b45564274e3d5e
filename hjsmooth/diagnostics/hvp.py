"""Hessian-vector products of the full-data loss, by double backward (Pearlmutter's trick).

``H v = sum_b (n_b / N) grad_x (grad_x f_b(x) . v)``: the gradient of each batch loss is taken with
``create_graph=True`` and differentiated again along ``v``.  When the data is one batch the first
gradient and its graph are computed once and reused by every product (as PyHessian does); with
several batches each product recomputes them batch by batch, so memory stays that of one batch.
Only ``torch.autograd.grad`` is called: the parameters and their ``.grad`` fields are left alone.
"""

from __future__ import annotations

import torch

from hjsmooth.diagnostics._problem import Batch, LossProblem

__all__ = ["HessianOperator"]


class HessianOperator:
    """``v -> H v`` on flat vectors of the trainable parameters (the model's device and dtype).

    Parameters
    ----------
    problem : LossProblem
        The model, loss and data; call it inside :func:`~hjsmooth.diagnostics._problem.evaluation_mode`.
    cache_graph : bool, optional
        Keep each batch's first gradient and its graph between products (saves one forward and one
        backward per product and batch, costs the activation memory of every batch at once).
        Default: only when the data is a single batch.

    Attributes
    ----------
    matvecs : int
        Products computed so far.
    """

    def __init__(self, problem: LossProblem, cache_graph: bool | None = None):
        self.problem = problem
        self.dim = problem.dim
        self.matvecs = 0
        self.cache_graph = len(problem.batches) == 1 if cache_graph is None else bool(cache_graph)
        self._cached = [self._first_gradient(b) for b in problem.batches] if self.cache_graph else None

    def _first_gradient(self, batch: Batch) -> list[torch.Tensor]:
        params = self.problem.space.params
        with torch.enable_grad():
            loss = self.problem.batch_loss(batch)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        return [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]

    def _batch_product(self, grads: list[torch.Tensor], vs: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
        params = self.problem.space.params
        live = [i for i, g in enumerate(grads) if g.requires_grad]  # a constant gradient has no second derivative
        out = [torch.zeros_like(p) for p in params]
        if not live:
            return out
        with torch.enable_grad():
            hv = torch.autograd.grad(
                [grads[i] for i in live],
                params,
                grad_outputs=[vs[i] for i in live],
                retain_graph=retain,
                allow_unused=True,
            )
        return [h if h is not None else o for h, o in zip(hv, out)]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat vector ``v`` of length ``dim``."""
        space = self.problem.space
        vs = space.unflatten(v.detach())
        total = None
        for i, batch in enumerate(self.problem.batches):
            if self._cached is not None:
                hv = self._batch_product(self._cached[i], vs, retain=True)
            else:
                hv = self._batch_product(self._first_gradient(batch), vs, retain=False)
            flat = space.flatten(hv).detach()
            total = flat * batch.weight if total is None else total.add_(flat, alpha=batch.weight)
        self.matvecs += 1
        assert total is not None  # a problem holds at least one batch
        return total
