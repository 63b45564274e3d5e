"""A fused numba step for the explicit Scharfetter-Gummel Fokker-Planck scheme on the CPU.

One forward-Euler step ``rho + dt L rho`` of the operator of
:class:`hjsmooth.solvers.scharfetter_gummel.FokkerPlanckOperator` when all its links run
along the axes (a diagonal diffusion), for every boundary condition: for node ``P``

    (L rho)_P = -A_P rho_P + sum_k [ -(F_k[P] rho_P - B_k[P] rho_{P+e_k})
                                     + (F_k[P-e_k] rho_{P-e_k} - B_k[P-e_k] rho_P) ],

``F_k``/``B_k`` the forward/backward rates of the link ``P -> P + e_k`` (packed once per
solve into arrays of the grid's shape by :func:`hjsmooth.solvers._fused_fp.packed_rates`,
the same arrays the CUDA kernel reads) and ``A`` the absorption rate.  The flow of every
link is formed with the same operations at both of its ends, so it leaves one cell exactly
as it enters the other and mass is conserved to rounding.  Lines of the contiguous axis run
in parallel; the interior of a line is a branch-free loop, its two end nodes are done apart.
The stepper ping-pongs between two buffers allocated once per solve: nothing is allocated
per step.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from hjsmooth.backend import from_numpy, is_numpy_array, to_numpy

from ._fused_fp import axis_links_only, packed_rates, rates_like
from .kernels import numba_threads

__all__ = ["NumbaFPStepper", "numba_fp_supports"]


def numba_fp_supports(operator: Any, rho: Any) -> bool:
    """True for float32/float64 densities of 1 to 3 axes and an operator with axis links only (a
    diagonal diffusion) whose rates live on ``rho``'s backend and dtype."""
    if str(rho.dtype).rsplit(".", 1)[-1] not in ("float32", "float64") or not 1 <= rho.ndim <= 3:
        return False
    return axis_links_only(operator) and rates_like(operator, rho)


@numba.njit(cache=True)
def _end_node(rho, f0, b0, f1, b1, f2, b2, absorption, i0, i1, j, n0, n1, n2, periodic, absorb, ndim, dt):
    # pragma: no cover - compiled
    """``rho + dt (L rho)`` at one node by the general rule (any position, either boundary kind)."""
    r = rho[i0, i1, j]
    acc = -absorption[i0, i1, j] * r if absorb else r - r
    for axis in range(3 - ndim, 3):
        if axis == 0:
            i, n = i0, n0
        elif axis == 1:
            i, n = i1, n1
        else:
            i, n = j, n2
        has_next = periodic or i < n - 1
        has_prev = periodic or i > 0
        nxt = (i + 1) % n
        prv = (i - 1 + n) % n
        if axis == 0:
            if has_next:
                acc -= f0[i0, i1, j] * r - b0[i0, i1, j] * rho[nxt, i1, j]
            if has_prev:
                acc += f0[prv, i1, j] * rho[prv, i1, j] - b0[prv, i1, j] * r
        elif axis == 1:
            if has_next:
                acc -= f1[i0, i1, j] * r - b1[i0, i1, j] * rho[i0, nxt, j]
            if has_prev:
                acc += f1[i0, prv, j] * rho[i0, prv, j] - b1[i0, prv, j] * r
        else:
            if has_next:
                acc -= f2[i0, i1, j] * r - b2[i0, i1, j] * rho[i0, i1, nxt]
            if has_prev:
                acc += f2[i0, i1, prv] * rho[i0, i1, prv] - b2[i0, i1, prv] * r
    return r + dt * acc


@numba.njit(cache=True)
def _cross_line(acc, rho, f, b, src, nb_next, nb_prev, w_next, w_prev, n2):  # pragma: no cover - compiled
    """Add the flows of one transverse axis along a line: links to the lines ``nb_next``/``nb_prev``.

    ``src``, ``nb_next``, ``nb_prev`` are ``(i0, i1)`` pairs; ``w_next``/``w_prev`` are 1 or 0
    (the link exists or leaves the box), so a missing link adds exactly zero."""
    r = rho[src[0], src[1]]
    fp = f[src[0], src[1]]
    bp = b[src[0], src[1]]
    rn = rho[nb_next[0], nb_next[1]]
    fq = f[nb_prev[0], nb_prev[1]]
    bq = b[nb_prev[0], nb_prev[1]]
    rq = rho[nb_prev[0], nb_prev[1]]
    for j in range(n2):
        acc[j] += w_prev * (fq[j] * rq[j] - bq[j] * r[j]) - w_next * (fp[j] * r[j] - bp[j] * rn[j])


@numba.njit(cache=True, parallel=True)
def _fp_step_kernel(rho, out, f0, b0, f1, b1, f2, b2, absorption, periodic, absorb, ndim, dt):
    # pragma: no cover - compiled
    """``out = rho + dt L rho`` (3D views, the last ``ndim`` axes real)."""
    n0, n1, n2 = rho.shape
    zero = dt - dt
    one = zero + 1
    for line in numba.prange(n0 * n1):
        i0 = line // n1
        i1 = line - i0 * n1
        acc = out[i0, i1]
        r = rho[i0, i1]
        if absorb:
            a = absorption[i0, i1]
            for j in range(n2):
                acc[j] = -a[j] * r[j]
        else:
            for j in range(n2):
                acc[j] = zero
        if ndim == 3:
            w_next = one if (periodic or i0 < n0 - 1) else zero
            w_prev = one if (periodic or i0 > 0) else zero
            _cross_line(acc, rho, f0, b0, (i0, i1), ((i0 + 1) % n0, i1), ((i0 - 1 + n0) % n0, i1), w_next, w_prev, n2)
        if ndim >= 2:
            w_next = one if (periodic or i1 < n1 - 1) else zero
            w_prev = one if (periodic or i1 > 0) else zero
            _cross_line(acc, rho, f1, b1, (i0, i1), (i0, (i1 + 1) % n1), (i0, (i1 - 1 + n1) % n1), w_next, w_prev, n2)
        # the contiguous axis: interior nodes without a branch
        fr = f2[i0, i1]
        br = b2[i0, i1]
        for j in range(1, n2 - 1):
            acc[j] += (fr[j - 1] * r[j - 1] - br[j - 1] * r[j]) - (fr[j] * r[j] - br[j] * r[j + 1])
        for j in range(1, n2 - 1):
            acc[j] = r[j] + dt * acc[j]
        for j in (0, n2 - 1):
            acc[j] = _end_node(
                rho, f0, b0, f1, b1, f2, b2, absorption, i0, i1, j, n0, n1, n2, periodic, absorb, ndim, dt
            )


class NumbaFPStepper:
    """Forward-Euler steps of an axis-links-only operator on preallocated buffers (numpy or CPU torch).

    Parameters
    ----------
    operator : FokkerPlanckOperator
        With axis links only.
    like : array
        The initial density (its dtype is the computation's).
    """

    def __init__(self, operator: Any, like: Any):
        self.like = like
        host = to_numpy(like)
        self.dtype = host.dtype
        self.shape = tuple(host.shape)
        self.ndim = host.ndim
        view = (1,) * (3 - self.ndim) + self.shape
        rates = [np.ascontiguousarray(to_numpy(r), dtype=self.dtype).reshape(view) for r in packed_rates(operator)]
        dummy = np.zeros((1, 1, 1), dtype=self.dtype)
        while len(rates) < 6:
            rates.insert(0, dummy)
        self.rates = tuple(rates)
        self.periodic = operator.bc == "periodic"
        self.absorb = operator.absorption is not None
        self.absorption = (
            np.ascontiguousarray(to_numpy(operator.absorption), dtype=self.dtype).reshape(view)
            if self.absorb
            else dummy
        )
        self.buffers = [np.empty(view, dtype=self.dtype) for _ in range(2)]
        self.threads = numba_threads(host.size)

    def start(self, rho: Any) -> np.ndarray:
        self.buffers[0][...] = np.asarray(to_numpy(rho), dtype=self.dtype).reshape(self.buffers[0].shape)
        return self.buffers[0]

    def read(self, state: np.ndarray) -> Any:
        values = state.reshape(self.shape).copy()
        return values if is_numpy_array(self.like) else from_numpy(values, self.like)

    def step(self, state: np.ndarray, dt: float) -> np.ndarray:
        out = self.buffers[1] if state is self.buffers[0] else self.buffers[0]
        with self.threads:
            _fp_step_kernel(  # type: ignore[call-arg]  # numba's Dispatcher takes the kernel's arguments
                state, out, *self.rates, self.absorption, self.periodic, self.absorb, self.ndim, self.dtype.type(dt)
            )
        return out
