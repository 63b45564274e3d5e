r"""Projected gradient descent on the sphere, from many starts at once (thesis section 2.4.1).

From each start :math:`\sigma^0 \in S^{N-1}(\sqrt N)`:

.. math:: \sigma^{k+1} = \sqrt N \, \frac{\sigma^k - \eta\, P_{\sigma^k} \nabla \tilde H(\sigma^k)}
                                       {|\sigma^k - \eta\, P_{\sigma^k} \nabla \tilde H(\sigma^k)|},

stopped when :math:`|P_{\sigma^k} \nabla \tilde H(\sigma^k)| \le` ``tol`` (the thesis: ``eta = 0.1``,
``tol = 1e-4``).  The runs are one batch; a run leaves the batch when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hjsmooth.backend import array_namespace, to_numpy
from hjsmooth.spinglass.model import SphericalSpinGlass
from hjsmooth.spinglass.sphere import project_to_sphere
from hjsmooth.validation import check_count, check_positive

__all__ = ["DescentResult", "projected_gradient_descent"]


@dataclass(frozen=True)
class DescentResult:
    """The ends of a batch of projected gradient descents.

    Attributes
    ----------
    sigma : array
        The last iterate of every run, shape ``(runs, n)``, the starts' array type and dtype.
    energy : array
        :math:`\\tilde H` there, shape ``(runs,)`` (not divided by ``n``).
    grad_norm : array
        :math:`|P_\\sigma \\nabla \\tilde H|` there, shape ``(runs,)``.
    steps : numpy.ndarray
        Gradient steps taken by each run.
    converged : numpy.ndarray
        Whether each run reached ``grad_norm <= tol``.
    """

    sigma: Any
    energy: Any
    grad_norm: Any
    steps: Any
    converged: Any

    @property
    def success(self) -> bool:
        """True when every run converged."""
        return bool(self.converged.all())

    @property
    def message(self) -> str:
        done = int(self.converged.sum())
        return f"{done} of {self.converged.size} runs converged"


def projected_gradient_descent(
    model: SphericalSpinGlass,
    start: Any,
    *,
    step: float = 0.1,
    tol: float = 1e-4,
    max_steps: int = 20_000,
    progress: bool = True,
) -> DescentResult:
    """Run projected gradient descent on ``model`` from every row of ``start`` (shape ``(runs, n)``).

    Parameters
    ----------
    model : SphericalSpinGlass
    start : array
        Starting configurations (numpy or torch), projected on the sphere first.
    step : float
        The step size ``eta`` (thesis: 0.1).
    tol : float
        Stop a run when its projected gradient has norm ``<= tol`` (thesis: ``1e-4``).
    max_steps : int
        Stop every run after this many steps (``converged`` says which ones met ``tol``).
    progress : bool
        Show a tqdm bar of the converged runs when the descent lasts over two seconds.
    """
    from tqdm.auto import tqdm

    if not isinstance(model, SphericalSpinGlass):
        raise TypeError(f"`model` must be a SphericalSpinGlass, got {type(model).__name__}")
    step = check_positive(step, "step")
    tol = check_positive(tol, "tol")
    max_steps = check_count(max_steps, "max_steps", minimum=0)
    sigma = project_to_sphere(start)
    if sigma.ndim != 2 or sigma.shape[1] != model.n:
        raise ValueError(f"`start` must have shape (runs, n) with n = {model.n}, got shape {tuple(sigma.shape)}")
    xp = array_namespace(sigma)
    sigma = xp.asarray(sigma, copy=True)
    runs = sigma.shape[0]
    steps = xp.zeros(runs, dtype=xp.int64)
    converged = xp.zeros(runs, dtype=xp.bool)
    grad_norm = xp.zeros(runs, dtype=sigma.dtype)
    active = xp.arange(runs)
    with tqdm(total=runs, desc="gradient descent", unit="run", delay=2.0, leave=False, disable=not progress) as bar:
        for k in range(max_steps + 1):
            rows = sigma[active]
            g = model.grad(rows)
            norm = xp.sqrt(xp.sum(g * g, axis=1))
            grad_norm[active] = norm
            steps[active] = k
            done = norm <= tol
            converged[active[done]] = True
            bar.update(int(xp.sum(xp.astype(done, xp.int64))))
            keep = ~done
            active, rows, g = active[keep], rows[keep], g[keep]
            if active.shape[0] == 0 or k == max_steps:
                break
            sigma[active] = project_to_sphere(rows - step * g)
    return DescentResult(
        sigma=sigma,
        energy=model.energy(sigma),
        grad_norm=grad_norm,
        steps=to_numpy(steps),
        converged=to_numpy(converged),
    )
