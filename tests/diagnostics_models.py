"""Small float64 networks, data and exact references shared by the diagnostics tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def tiny_mlp(seed: int = 0, n_in: int = 3, hidden: int = 5, n_out: int = 3) -> nn.Module:
    """A tanh MLP in float64 (``d = n_in*hidden + hidden + hidden*n_out + n_out``)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out)).double()


def tiny_cnn(seed: int = 0) -> nn.Module:
    """A 1D CNN with a batch-norm layer, in float64 (inputs of length 6)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Unflatten(1, (1, 6)), nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.Tanh(), nn.Flatten(),
                         nn.Linear(8, 3)).double()


def classification_data(n: int = 40, n_in: int = 3, classes: int = 3, seed: int = 1) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    return x, y


def batches(x: torch.Tensor, y: torch.Tensor, sizes: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` cut into consecutive batches of the given sizes."""
    out, start = [], 0
    for s in sizes:
        out.append((x[start:start + s], y[start:start + s]))
        start += s
    assert start == len(x)
    return out


def trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for _, p in trainable(model)])


def loss_at(model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """The mean loss over ``(x, y)`` with the trainable parameters set to ``flat`` (eval mode)."""
    named = trainable(model)
    params, start = {}, 0
    for n, p in named:
        params[n] = flat[start:start + p.numel()].reshape(p.shape)
        start += p.numel()
    was = model.training
    model.eval()
    try:
        return loss_fn(torch.func.functional_call(model, params, (x,)), y)
    finally:
        model.train(was)


def exact_hessian(model: nn.Module, loss_fn: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The dense Hessian of the mean loss over ``(x, y)`` (``torch.autograd.functional.hessian``)."""
    return torch.autograd.functional.hessian(lambda w: loss_at(model, loss_fn, x, y, w), flat_params(model))


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Every parameter and buffer, every ``.grad`` and every training flag, to check nothing changed."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "training": [m.training for m in model.modules()],
    }


def assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    for key in before["state"]:
        assert torch.equal(before["state"][key], after["state"][key]), key
    for g0, g1 in zip(before["grads"], after["grads"]):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)
    assert before["training"] == after["training"]


cross_entropy = F.cross_entropy


class LeastSquares:
    """``f(w) = |X w - y|^2 / (2 N) = (w - a)^T H (w - a) / 2 + f_min`` with ``H = X^T X / N``, as a linear model.

    ``scales`` multiplies the columns of ``X``, so ``H`` has a few large eigenvalues when some are large.
    """

    def __init__(self, p: int = 4, n: int = 60, scales: Sequence[float] | None = None, seed: int = 0,
                 offset: float = 0.3):
        gen = torch.Generator().manual_seed(seed)
        X = torch.randn(n, p, generator=gen, dtype=torch.float64)
        if scales is not None:
            X = X * torch.as_tensor(scales, dtype=torch.float64)
        self.X, self.y = X, torch.randn(n, 1, generator=gen, dtype=torch.float64)
        self.H = X.T @ X / n
        self.a = torch.linalg.lstsq(X, self.y).solution[:, 0]
        self.f_min = float(((X @ self.a - self.y[:, 0]) ** 2).sum() / (2 * n))
        self.model = nn.Linear(p, 1, bias=False).double()
        with torch.no_grad():  # the weights sit at a + offset * (a fixed direction)
            self.model.weight.copy_((self.a + offset * torch.linspace(-1, 1, p, dtype=torch.float64))[None, :])

    @staticmethod
    def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((outputs - targets) ** 2).mean()

    @property
    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X, self.y

    @property
    def w(self) -> torch.Tensor:
        return self.model.weight.detach()[0].clone()

    def f(self, w: torch.Tensor) -> float:
        e = w - self.a
        return float(e @ self.H @ e / 2) + self.f_min

    def heat(self, t: float, beta: float) -> float:
        """``E f(w + sqrt(t/beta) z) = f(w) + t tr(H) / (2 beta)``."""
        return self.f(self.w) + t * float(torch.trace(self.H)) / (2 * beta)

    def viscous(self, t: float, beta: float) -> float:
        """Cole-Hopf: ``(w-a)^T (I + tH)^{-1} H (w-a) / 2 + f_min + log det(I + tH) / (2 beta)``."""
        e = self.w - self.a
        M = torch.eye(len(e), dtype=torch.float64) + t * self.H
        quad = float(e @ torch.linalg.solve(M, self.H @ e)) / 2
        return quad + self.f_min + float(torch.logdet(M)) / (2 * beta)
