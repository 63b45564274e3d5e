r"""The spherical p-spin glass of thesis chapter 2, with an optional random field.

The Hamiltonian (2.4), scaled by the coupling ``J`` as in (2.7)-(2.8), and perturbed by a field
``h`` as in (2.14):

.. math::

    H(\sigma) = -\frac{J}{N^{(p-1)/2}} \sum_{i_1, \dots, i_p = 1}^N J_{i_1 \dots i_p}
                 \sigma_{i_1} \cdots \sigma_{i_p},
    \qquad \tilde H(\sigma) = H(\sigma) - h^\top \sigma,

on the sphere :math:`S^{N-1}(\sqrt N) = \{\sigma : |\sigma|^2 = N\}`, with iid standard Gaussian
couplings :math:`J_{i_1 \dots i_p}` and :math:`h \sim N(0, v^2 I)`.  ``H`` is centred Gaussian with
covariance :math:`E[H(\sigma) H(\sigma')] = J^2 N (\sigma\cdot\sigma'/N)^p`, so it is of order ``N``
and its minima lie near :math:`-E_0 N` (:func:`~hjsmooth.spinglass.ground_state_energy`).
"""

from __future__ import annotations

import math
from typing import Any

from hjsmooth.backend import array_namespace, backend_name, device, from_numpy
from hjsmooth.spinglass._random import generator, standard_normal
from hjsmooth.spinglass._tables import MultisetTable, multiset_table, symmetrise
from hjsmooth.validation import as_field, check_count, check_nonnegative_real, check_positive

__all__ = ["SphericalSpinGlass", "MAX_COUPLINGS"]

#: The largest dense coupling tensor the model builds (``N^p`` float64 numbers, 2 GiB).
MAX_COUPLINGS = 2**28

#: Rows of a batch contracted at once: keeps the gathered products near 32 MiB.
_CHUNK_ELEMENTS = 2**22


class SphericalSpinGlass:
    r"""The spherical p-spin Hamiltonian :math:`\tilde H = H - h^\top\sigma` of (2.4) and (2.14).

    Every method takes configurations ``sigma`` of shape ``(..., n)`` (a batch over the leading
    axes; numpy or torch, float32 or float64) and returns the same array type, device and dtype.
    The points are meant to lie on :math:`S^{n-1}(\sqrt n)`; the tangent projections use the
    sphere through ``sigma`` (radius :math:`|\sigma|`).

    Parameters
    ----------
    n : int
        Number of spins ``N`` (``>= 2``).
    p : int
        Order of the interaction (``>= 2``); ``p = 3`` in the thesis' experiments.
    field : float
        Standard deviation ``v`` of the random field ``h`` (2.14); 0 gives the unperturbed model.
    coupling : float
        The constant ``J > 0`` that scales ``H`` (2.7); the critical field is ``J sqrt(p (p - 2))``.
    rng : None, int, numpy.random.Generator or torch.Generator
        Draws the couplings, then the direction of ``h`` (always drawn, so one seed gives the same
        couplings and the same field direction for every ``field``).

    Attributes
    ----------
    couplings : numpy.ndarray
        The iid standard normal tensor :math:`J_{i_1 \dots i_p}`, shape ``(n,) * p``.
    h : numpy.ndarray
        The field, shape ``(n,)``.

    Notes
    -----
    The couplings are symmetrised once and folded into a matrix over index multisets, so a
    batch of ``B`` configurations costs one ``(B, C(n + p - 2, p - 1)) @ (C(n + p - 2, p - 1), n)``
    matrix product per gradient (for ``p = 3``, ``n = 100``: 5050 columns).
    """

    def __init__(self, n: int, p: int = 3, *, field: float = 0.0, coupling: float = 1.0, rng: Any = None) -> None:
        self.n = check_count(n, "n", minimum=2)
        self.p = check_count(p, "p", minimum=2)
        self.field = check_nonnegative_real(field, "field")
        self.coupling = check_positive(coupling, "coupling")
        if self.n**self.p > MAX_COUPLINGS:
            raise ValueError(
                f"the dense coupling tensor would hold n**p = {self.n}**{self.p} = {self.n**self.p} "
                f"numbers, more than {MAX_COUPLINGS}; use a smaller `n` or `p`"
            )
        gen = generator(rng)
        self.couplings = standard_normal(gen, (self.n,) * self.p)
        self.h = self.field * standard_normal(gen, (self.n,))
        self._scale = self.coupling * self.n ** (-(self.p - 1) / 2)
        symmetric = symmetrise(self.couplings)
        self._tables = {self.p - 1: multiset_table(symmetric, self.p - 1)}
        self._symmetric: Any = symmetric  # kept until the Hessian's table is built
        self._cache: dict[tuple[Any, ...], Any] = {}

    def __repr__(self) -> str:
        return f"SphericalSpinGlass(n={self.n}, p={self.p}, field={self.field!r}, coupling={self.coupling!r})"

    @property
    def regime_parameter(self) -> float:
        """``B`` of (2.15) for this model's field and coupling (:func:`~hjsmooth.spinglass.regime_parameter`)."""
        from hjsmooth.spinglass.field import regime_parameter

        return regime_parameter(self.field, self.p, self.coupling)

    # ------------------------------------------------------------------ plumbing
    def _table(self, r: int, like: Any) -> MultisetTable:
        if r not in self._tables:
            assert self._symmetric is not None  # dropped only once both tables exist
            self._tables[r] = multiset_table(self._symmetric, r)
        if len(self._tables) == 2:
            self._symmetric = None
        key = (r, backend_name(like), str(device(like)), like.dtype)
        if key not in self._cache:
            self._cache[key] = self._tables[r].like(like)
        return self._cache[key]

    def _field_like(self, like: Any) -> Any:
        key = ("h", backend_name(like), str(device(like)), like.dtype)
        if key not in self._cache:
            self._cache[key] = from_numpy(self.h, like)
        return self._cache[key]

    def _batch(self, sigma: Any) -> tuple[Any, tuple[int, ...]]:
        sigma = as_field(sigma, "sigma")
        if sigma.ndim == 0 or sigma.shape[-1] != self.n:
            raise ValueError(f"`sigma` must have shape (..., n) with n = {self.n}, got shape {tuple(sigma.shape)}")
        xp = array_namespace(sigma)
        return xp.reshape(sigma, (-1, self.n)), tuple(sigma.shape[:-1])

    def _chunks(self, rows: int, r: int) -> list[slice]:
        width = math.comb(self.n + r - 1, r) * self.n ** (self.p - 1 - r)
        size = max(1, _CHUNK_ELEMENTS // max(width, 1))
        return [slice(i, min(i + size, rows)) for i in range(0, max(rows, 1), size)]

    def _grad_h(self, s: Any) -> Any:
        """Euclidean gradient of the unperturbed ``H`` for rows ``s`` of shape ``(batch, n)``."""
        xp = array_namespace(s)
        table = self._table(self.p - 1, s)
        parts = [table.contract(s[c]) for c in self._chunks(s.shape[0], self.p - 1)]
        out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
        return (-self._scale * self.p) * out

    def _value_and_egrad(self, s: Any) -> tuple[Any, Any]:
        """``(H~(s), grad H~(s))`` (Euclidean) for rows of shape ``(batch, n)``; ``H = s . grad H / p`` (Euler)."""
        xp = array_namespace(s)
        grad_h = self._grad_h(s)
        h = self._field_like(s)
        value = xp.sum(s * grad_h, axis=1) / self.p - s @ h
        return value, grad_h - h

    # ------------------------------------------------------------------ public
    def energy(self, sigma: Any) -> Any:
        r"""The energy :math:`\tilde H(\sigma) = H(\sigma) - h^\top\sigma` of (2.4) and (2.14), shape ``(...)``.

        Not divided by ``N``: minima lie near :math:`-E_0 N`.
        """
        s, lead = self._batch(sigma)
        xp = array_namespace(s)
        return xp.reshape(self._value_and_egrad(s)[0], lead)

    def euclidean_grad(self, sigma: Any) -> Any:
        r"""The gradient of :math:`\tilde H` in :math:`\mathbb{R}^N`, shape ``(..., n)``: the thesis' expression
        below (2.32), :math:`-\nabla_i \tilde H = J N^{-(p-1)/2} \sum_{\text{positions of } i} J_{\dots i \dots}
        \sigma \cdots \sigma + h_i`."""
        s, lead = self._batch(sigma)
        xp = array_namespace(s)
        return xp.reshape(self._value_and_egrad(s)[1], (*lead, self.n))

    def grad(self, sigma: Any) -> Any:
        r"""The Riemannian gradient: the Euclidean one projected on the tangent plane at ``sigma``,

        .. math:: \operatorname{grad} \tilde H(\sigma) = P_\sigma \nabla \tilde H(\sigma),
                  \qquad P_\sigma = I - \sigma\sigma^\top / |\sigma|^2,

        as in section 2.4.1 ("we project the gradient on the tangent plane"); shape ``(..., n)``.
        """
        s, lead = self._batch(sigma)
        xp = array_namespace(s)
        g = self._value_and_egrad(s)[1]
        radial = xp.sum(s * g, axis=1, keepdims=True) / xp.sum(s * s, axis=1, keepdims=True)
        return xp.reshape(g - radial * s, (*lead, self.n))

    def hessian(self, sigma: Any) -> Any:
        r"""The Riemannian Hessian on the sphere, as an ``n x n`` matrix acting on :math:`\mathbb{R}^N`:

        .. math:: \operatorname{Hess} \tilde H(\sigma) = P_\sigma \Big(\nabla^2 H(\sigma)
                  - \frac{\sigma^\top \nabla \tilde H(\sigma)}{|\sigma|^2} I\Big) P_\sigma,

        with :math:`\nabla^2 H = -J N^{-(p-1)/2} p (p-1) \sum S_{ij\,i_3 \dots i_p} \sigma_{i_3}\cdots\sigma_{i_p}`
        (``S`` the symmetrised couplings; the field is linear and adds no curvature).  Restricted to
        the tangent plane it is the second derivative along geodesics; ``sigma`` is in its kernel.
        At a critical point of the unperturbed model the shift is :math:`-p H/N` (Euler), the
        :math:`-p u I` of Lemma 2.5.  Shape ``(..., n, n)``.
        """
        s, lead = self._batch(sigma)
        xp = array_namespace(s)
        table = self._table(self.p - 2, s)
        parts = []
        for c in self._chunks(s.shape[0], self.p - 2):
            rows = s[c]
            curvature = (-self._scale * self.p * (self.p - 1)) * xp.reshape(table.contract(rows), (-1, self.n, self.n))
            g = self._value_and_egrad(rows)[1]
            norm2 = xp.sum(rows * rows, axis=1)
            u = rows / xp.sqrt(norm2)[:, None]
            shift = xp.sum(rows * g, axis=1) / norm2
            au = xp.sum(curvature * u[:, None, :], axis=2)
            uau = xp.sum(u * au, axis=1)
            outer = u[:, :, None] * u[:, None, :]
            eye = xp.eye(self.n, dtype=s.dtype, device=device(s))
            projected = (
                curvature - u[:, :, None] * au[:, None, :] - au[:, :, None] * u[:, None, :] + uau[:, None, None] * outer
            )
            parts.append(projected - shift[:, None, None] * (eye - outer))
        out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
        return xp.reshape(out, (*lead, self.n, self.n))

    def index(self, sigma: Any, *, tol: float = 0.0) -> Any:
        r"""The index at ``sigma``: the number of eigenvalues of the Riemannian Hessian below ``-tol``
        on the tangent plane (``n - 1`` eigenvalues; 0 at a local minimum).  Integer array of shape ``(...)``."""
        tol = check_nonnegative_real(tol, "tol")
        s, lead = self._batch(sigma)
        xp = array_namespace(s)
        counts = []
        for c in self._chunks(s.shape[0], max(self.p - 2, 0)):
            rows = s[c]
            hess = self.hessian(rows)
            u = rows / xp.sqrt(xp.sum(rows * rows, axis=1))[:, None]
            # the normal direction gets eigenvalue +1, so that it is never counted
            eig = xp.linalg.eigvalsh(hess + u[:, :, None] * u[:, None, :])
            counts.append(xp.sum(xp.astype(eig < -tol, xp.int64), axis=1))
        out = counts[0] if len(counts) == 1 else xp.concat(counts, axis=0)
        return xp.reshape(out, lead)
