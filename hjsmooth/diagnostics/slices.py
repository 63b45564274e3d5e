"""Loss slices: the loss on a 1D or 2D grid of ``x + a d_1 + b d_2``, with filter-normalised directions.

Li, Xu, Taylor, Studer and Goldstein (2018), "Visualizing the loss landscape of neural nets": a random
Gaussian direction is rescaled filter by filter, so that each filter of the direction has the norm of
the same filter of the weights.  Then a step ``a`` along it changes every filter by the same relative
amount, whatever the filter's scale, and slices of networks with different weight scales compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from hjsmooth.diagnostics._problem import LossFn, LossProblem, ParameterSpace, evaluation_mode
from hjsmooth.diagnostics._progress import progress_bar
from hjsmooth.diagnostics._rng import torch_generator
from hjsmooth.diagnostics.evaluate import PointLosses
from hjsmooth.diagnostics.result import LossSlice

__all__ = ["loss_slice", "normalize_direction", "NORMALIZATIONS"]

NORMALIZATIONS = ("filter", "layer", None)


def normalize_direction(
    direction: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], normalization: str | None
) -> list[torch.Tensor]:
    """Scale a direction (parameter-shaped tensors) to the weights.

    * ``"filter"``: for every parameter with two or more dimensions, each slice along the first
      axis (a filter of a convolution: ``weight[o]``; a row of a linear layer: the weights into one
      unit) gets the norm of that slice of the weights.  Parameters with one dimension or none
      (biases, normalisation scales and shifts) get a zero direction, as Li et al. do: the slice
      does not move them.
    * ``"layer"``: each parameter tensor, whatever its shape, gets the norm of that tensor of the weights.
    * None: unchanged.

    A filter (or tensor) of the direction that is zero stays zero.
    """
    out = []
    for d, w in zip(direction, weights):
        if normalization is None:
            out.append(d.clone())
        elif normalization == "layer":
            dn = torch.linalg.vector_norm(d)
            out.append(d * (torch.linalg.vector_norm(w) / dn) if dn > 0 else torch.zeros_like(d))
        elif d.ndim <= 1:
            out.append(torch.zeros_like(d))
        else:
            dn = torch.linalg.vector_norm(d.reshape(d.shape[0], -1), dim=1)
            wn = torch.linalg.vector_norm(w.reshape(w.shape[0], -1), dim=1)
            scale = torch.where(dn > 0, wn / torch.where(dn > 0, dn, torch.ones_like(dn)), torch.zeros_like(dn))
            out.append(d * scale.reshape((-1,) + (1,) * (d.ndim - 1)))
    return out


def _directions(
    space: ParameterSpace, count: int, directions: Any, normalization: str | None, gen: torch.Generator
) -> list[list[torch.Tensor]]:
    weights = [p.detach() for p in space.params]
    if directions is None:
        raw = [
            [torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in weights] for _ in range(count)
        ]
    else:
        if isinstance(directions, torch.Tensor) or len(directions) != count:
            got = "a tensor" if isinstance(directions, torch.Tensor) else f"{len(directions)}"
            raise ValueError(f"`directions` must hold one direction per grid axis ({count}), got {got}")
        raw = [space.check_tensors(dirn, f"directions[{i}]") for i, dirn in enumerate(directions)]
    return [normalize_direction(r, weights, normalization) for r in raw]


def loss_slice(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Any,
    grid: Any,
    normalization: str | None = "filter",
    directions: Any = None,
    rng: Any = None,
    *,
    vectorize: bool | None = None,
    progress: bool = True,
) -> LossSlice:
    r"""The full-data loss on a 1D or 2D grid of the plane through the weights spanned by one or two directions.

    ``values[i] = f(x + a_i d_1)`` on a 1D grid and ``values[i, j] = f(x + a_i d_1 + b_j d_2)`` on a 2D one,
    with ``a = grid.axes[0]``, ``b = grid.axes[1]`` and ``x`` the model's trainable parameters.  The values
    live on ``grid``, so the grid solvers smooth them directly: ``hs.heat(slice.values, grid, t, beta)``,
    ``hs.local_entropy(...)``, ``hs.hopf_lax(slice.values, grid, t)`` are the PDE smoothings of the
    loss restricted to the plane.

    Parameters
    ----------
    model, loss_fn, data
        As in :func:`hessian_eigenvalues`.
    grid : hjsmooth.Grid
        1D or 2D grid of the coefficients; include 0 to see ``f(x)`` itself.
    normalization : {"filter", "layer", None}
        How the directions are scaled to the weights (:func:`normalize_direction`); applied to random
        and given directions alike (pass None to use given directions unchanged).
    directions : sequence, optional
        ``grid.ndim`` directions, each a list of parameter-shaped tensors or a flat vector of length ``d``
        (for example eigenvectors from :func:`hessian_eigenvalues`).  Default: independent Gaussian ones.
    rng : None, int, torch.Generator or numpy.random.Generator
        Source of the random directions (SPEC 7).
    vectorize : bool, optional
        Evaluate several points per call with ``torch.func.vmap`` (True) or one at a time (False);
        default: time both on the first points and keep the faster (vmap wins for small models).
    progress : bool
        Show a progress bar when the work lasts over two seconds.

    Returns
    -------
    LossSlice
        ``.values`` (float64 numpy, ``grid.shape``), ``.directions``, ``.grid``.
    """
    from hjsmooth.grid import Grid
    from hjsmooth.validation import check_choice

    if not isinstance(grid, Grid):
        raise TypeError(f"`grid` must be an hjsmooth.Grid, got {type(grid).__name__}")
    if grid.ndim not in (1, 2):
        raise ValueError(f"`grid` must have 1 or 2 dimensions (one per direction), got {grid.ndim}")
    normalization = check_choice(normalization, "normalization", NORMALIZATIONS)
    problem = LossProblem(model, loss_fn, data)
    gen = torch_generator(rng, problem.device)
    dirs = _directions(problem.space, grid.ndim, directions, normalization, gen)
    flat_dirs = torch.stack([problem.space.flatten(d) for d in dirs])  # (ndim, d)
    coeffs = torch.as_tensor(grid.points(), dtype=problem.dtype, device=problem.device)  # (size, ndim), C order
    x = problem.space.current()

    def make_chunk(start: int, stop: int) -> torch.Tensor:
        return x + coeffs[start:stop] @ flat_dirs

    with evaluation_mode(model):
        problem.check()
        evaluate = PointLosses(problem, vectorize=vectorize)
        with progress_bar(grid.size, "loss slice", progress) as bar:
            values = evaluate(make_chunk, grid.size, progress=bar)
    return LossSlice(grid=grid, values=values.reshape(grid.shape), directions=dirs, normalization=normalization)
