"""The spectrum of the gradient-noise covariance ``D(x)`` (thesis section 6.3), from per-sample gradients.

``D(x) = (1/N) sum_i (g_i - g)(g_i - g)^T`` with ``g_i = grad f_i(x)`` the gradient of the loss of
sample ``i`` alone and ``g`` their mean.  A minibatch gradient of ``b`` samples drawn with replacement
has covariance ``D(x) / b``.  ``D`` is ``d x d`` and is never formed: with ``C`` the ``N x d`` matrix of
the centred gradients, ``D = C^T C / N`` has the same nonzero eigenvalues as the ``N x N`` Gram matrix
``G = C C^T / N``, which is formed (in float64) and diagonalised.
"""

from __future__ import annotations

from typing import Any

import torch

from hjsmooth.diagnostics._problem import Batch, LossFn, LossProblem, evaluation_mode
from hjsmooth.diagnostics._progress import progress_bar
from hjsmooth.diagnostics.lanczos import extreme_eigenpairs
from hjsmooth.diagnostics.result import NoiseSpectrum

__all__ = ["gradient_noise_spectrum", "per_sample_gradients", "FULL_EIGH_SAMPLES"]

#: up to this many samples every eigenvalue of the Gram matrix is computed (dense eigh); above, Lanczos
FULL_EIGH_SAMPLES = 4096
#: per-sample gradients computed per vmap call: about this many floats of gradients at once
FLOATS_PER_CHUNK = 2**23


def _sample_gradients_vmap(problem: LossProblem, batch: Batch, start: int, stop: int) -> torch.Tensor:
    space = problem.space
    params = space.as_dict(space.current())

    def one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(problem.model, {**problem.buffers, **p}, (x.unsqueeze(0),))
        return problem.loss_fn(out, y.unsqueeze(0))

    grads = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(
        params, batch.inputs[start:stop], batch.targets[start:stop]
    )
    return torch.cat([grads[n].reshape(stop - start, -1) for n in space.names], dim=1)


def _sample_gradients_loop(problem: LossProblem, batch: Batch, start: int, stop: int) -> torch.Tensor:
    rows = []
    for i in range(start, stop):
        with torch.enable_grad():
            loss = problem.loss_fn(problem.model(batch.inputs[i : i + 1]), batch.targets[i : i + 1])
            grads = torch.autograd.grad(loss, problem.space.params, allow_unused=True)
        rows.append(
            problem.space.flatten(
                [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, problem.space.params)]
            )
        )
    return torch.stack(rows)


def per_sample_gradients(problem: LossProblem, progress: Any = None) -> torch.Tensor:
    """The ``N x d`` matrix of per-sample gradients (model's device and dtype), by ``vmap(grad)`` in chunks.

    Models that ``torch.func.vmap`` cannot batch fall back to one backward pass per sample.
    """
    chunk = max(1, FLOATS_PER_CHUNK // problem.dim)
    out = torch.empty((problem.samples, problem.dim), device=problem.device, dtype=problem.dtype)
    row, vectorize = 0, True
    for batch in problem.batches:
        for start in range(0, batch.size, chunk):
            stop = min(batch.size, start + chunk)
            if vectorize:
                try:
                    block = _sample_gradients_vmap(problem, batch, start, stop)
                except Exception:  # noqa: BLE001 - not vmappable: the loop below raises real errors
                    vectorize = False
            if not vectorize:
                block = _sample_gradients_loop(problem, batch, start, stop)
            out[row : row + stop - start] = block.detach()
            row += stop - start
            if progress is not None:
                progress.update(stop - start)
    return out


def _gram(C: torch.Tensor) -> torch.Tensor:
    """``C C^T`` in float64, accumulated over column blocks so that at most a block is converted at once."""
    n, d = C.shape
    G = torch.zeros((n, n), dtype=torch.float64, device=C.device)
    step = max(1, FLOATS_PER_CHUNK // max(n, 1))
    for j in range(0, d, step):
        block = C[:, j : j + step].double()
        G += block @ block.T
    return G


def gradient_noise_spectrum(
    model: torch.nn.Module, loss_fn: LossFn, data: Any, k: int | None = None, *, progress: bool = True
) -> NoiseSpectrum:
    r"""The largest eigenvalues of the gradient-noise covariance :math:`D(x)`, its trace and its effective rank.

    .. math::  D(x) = \frac1N \sum_{i=1}^N (\nabla f_i(x) - \nabla f(x))(\nabla f_i(x) - \nabla f(x))^T,

    :math:`f_i` the loss of sample ``i`` alone (``loss_fn`` on a batch of one) and :math:`\nabla f` the
    mean of the :math:`\nabla f_i`.  The per-sample gradients come from ``torch.func.vmap(torch.func.grad)``
    (one backward pass per sample for models that cannot be vmapped); they are centred and their
    ``N x N`` Gram matrix is diagonalised (every eigenvalue up to ``N = 4096``, Lanczos for the ``k``
    largest above).  Memory: ``N d`` numbers for the gradients, ``N^2`` float64 for the Gram matrix.

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hessian_eigenvalues`; every sample of ``data`` enters ``D``.
    k : int, optional
        Number of eigenvalues, ``1 <= k <= min(N, d)``; default all ``min(N, d)`` (needs ``N <= 4096``).
    progress : bool
        Show a progress bar when the work lasts over two seconds.

    Returns
    -------
    NoiseSpectrum
        ``.eigenvalues`` (largest first), ``.trace``, ``.effective_rank``, ``.rank``, ``.gradient_norm``.
    """
    problem = LossProblem(model, loss_fn, data)
    n, d = problem.samples, problem.dim
    top = min(n, d)
    if k is None:
        if n > FULL_EIGH_SAMPLES:
            raise ValueError(f"`k` must be given when the data has more than {FULL_EIGH_SAMPLES} samples (got {n})")
        k = top
    k = problem.check_count(k, "k", maximum=top)
    with evaluation_mode(model):
        problem.check()
        with progress_bar(n, "per-sample gradients", progress) as bar:
            C = per_sample_gradients(problem, progress=bar)
    mean = C.mean(dim=0)
    C -= mean
    G = _gram(C) / n
    del C
    trace = float(torch.trace(G))
    frob2 = float((G * G).sum())
    rank = None
    if n <= FULL_EIGH_SAMPLES:
        every = torch.linalg.eigvalsh(G).flip(0).cpu().numpy()[:top]
        eigenvalues = every[:k].copy()
        threshold = max(every[0], 0.0) * d * problem.eps
        rank = int((every > threshold).sum())
    else:
        gen = torch.Generator(device=G.device).manual_seed(0)  # deterministic start: the Gram matrix is exact

        def random_vector() -> torch.Tensor:
            return torch.randn(n, generator=gen, device=G.device, dtype=G.dtype)

        pairs = extreme_eigenpairs(
            lambda v: G @ v,
            random_vector(),
            k,
            "largest",
            1e-8,
            50 * (k + 20),
            min(n, max(2 * k + 1, 20)),
            random_vector,
        )
        eigenvalues = pairs.values
    return NoiseSpectrum(
        eigenvalues=eigenvalues,
        trace=trace,
        effective_rank=trace**2 / frob2 if frob2 > 0 else 0.0,
        rank=rank,
        gradient_norm=float(torch.linalg.vector_norm(mean)),
        samples=n,
        dimension=d,
    )
