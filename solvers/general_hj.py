"""Hamilton-Jacobi equations with any Hamiltonian:

    u_t + H(x, grad u) = 1/(2 beta) Laplacian u,     u(x, 0) = f(x),

``H(x, p)`` a user function of two tuples of arrays of the grid's shape (the node coordinates
and the partial derivatives, one per axis), discretised by the monotone numerical Hamiltonians
of :mod:`hjsmooth.solvers.hamiltonians` (global, local and local-local Lax-Friedrichs for any
``H``; Godunov where ``H`` is declared convex) over the first-order, ENO2 or WENO5 one-sided
slopes of :mod:`hjsmooth.solvers.derivatives`, the central Laplacian, and the Runge-Kutta
methods of :mod:`hjsmooth.solvers.runge_kutta` with CFL-limited steps.

:class:`Hamiltonian` describes ``H`` and what the schemes may know about it: a bound on
``|dH/dp_k|`` (else estimated from ``H``), its convexity and minimiser, a numba-compiled twin
for the fused CPU engine, and whether it depends on the time or the value.
:class:`GeneralHJOperator` is the semi-discrete right-hand side; :func:`solve_general_hj` the
march (through the stepper registry's ``"hj_general_step"`` row).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hjsmooth.backend import array_namespace, asarray_like, to_numpy
from hjsmooth.grid import Grid
from hjsmooth.validation import as_field, check_beta, check_choice, check_count, check_real, check_time

from .boundary import axis_conditions, pad_axis
from .derivatives import ACCURACIES, GHOST_WIDTH, laplacian, laplacian_stiffness, one_sided_differences
from .hamiltonians import GENERAL_SCHEMES, godunov_slopes, lax_friedrichs_flux
from .hj_operator import DEFAULT_CFLS, INTEGRATORS, method_for
from .hj_stepping import initial_state, run_scheme, stage_projection, validate_common
from .result import PDESolution
from .runge_kutta import RKMethod
from .stepping import DEFAULT_MAX_STEPS

__all__ = [
    "Hamiltonian",
    "LinearForms",
    "as_hamiltonian",
    "GeneralHJOperator",
    "solve_general_hj",
    "BOUND_SAFETY",
    "resolve_general_scheme",
]

#: estimated bounds of ``|dH/dp_k|`` are the largest sampled derivative times this factor
BOUND_SAFETY = 1.25


@dataclass(frozen=True)
class Hamiltonian:
    """A Hamiltonian ``H(x, p)`` for ``u_t + H(x, grad u) = 1/(2 beta) Laplacian u``.

    Parameters
    ----------
    function : callable
        ``function(x, p) -> array``: ``x`` and ``p`` are tuples of ``ndim`` arrays of one shape
        (the node coordinates and the partial derivatives of ``u``, one per axis), on the solve's
        backend, device and dtype; the result has that shape.  With ``time_dependent`` it is called
        as ``function(x, p, t=t)``, with ``value_dependent`` also (or only) with ``u=u``.
    bound : None, float, sequence of float, or callable
        Bounds ``alpha_k >= |dH/dp_k|`` for the Lax-Friedrichs dissipation and the CFL step:
        ``None`` estimates them from ``function`` (central differences at the node's one-sided
        slopes and their mean, largest over the grid for global Lax-Friedrichs, per node for the
        local variants, times :data:`BOUND_SAFETY`: a sample, not a guarantee); a number or one
        per axis holds everywhere; a callable ``bound(x, p_lo, p_hi)`` (with the same ``t``/``u``
        keywords as ``function``) returns one bound per axis, arrays or numbers, valid for all
        ``p`` in the box ``p_lo <= p <= p_hi`` (tuples of arrays or 0-d arrays).
    convex : bool
        Declares that ``H`` does not decrease as any ``|p_k - p*_k|`` grows, ``p*`` the
        ``minimizer`` (convex separable ``H``; ``F(x) |p|``; ``|p|^2 / 2``...): enables the
        Godunov scheme, the default then.
    minimizer : None, float, sequence of float, or callable
        ``p*``: ``None`` for ``0``, a number or one per axis, or ``minimizer(x)`` returning one
        array per axis.
    compiled : callable, optional
        A numba-compiled twin of ``function`` for the fused CPU engine, called per node as
        ``compiled(x, p)`` with ``x`` and ``p`` 1-D float arrays of length ``ndim``.  A function
        written with ``x[k]``, ``p[k]`` and numpy's elementwise functions serves both:
        ``Hamiltonian(H, compiled=numba.njit(H))``.  Used when ``bound`` is ``None``, numbers or
        fields, the minimiser (for Godunov) numbers, and ``H`` depends on neither time nor value.
    time_dependent, value_dependent : bool
        Call ``function`` (and ``bound``) with ``t=`` the time of the stage, ``u=`` the values.
    forms : LinearForms, optional
        ``H`` as linear forms ``g(x).p + sum_m s_m |v_m(x).p|`` on the grid (what
        :mod:`hjsmooth.solvers.reachability` builds), which the fused CPU engine evaluates itself.

    ``bound`` may also be a tuple of ``ndim`` arrays of the grid's shape: bounds that depend on
    the node only.
    """

    function: Callable[..., Any]
    bound: Any = None
    convex: bool = False
    minimizer: Any = None
    compiled: Callable[..., Any] | None = None
    time_dependent: bool = False
    value_dependent: bool = False
    forms: Any = None

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"`hamiltonian` must be callable, got {self.function!r}")
        if self.compiled is not None and not callable(self.compiled):
            raise TypeError(f"`compiled` must be a numba-compiled function, got {self.compiled!r}")

    def keywords(self, t: float, u: Any) -> dict[str, Any]:
        """The keyword arguments ``function`` and ``bound`` take."""
        out: dict[str, Any] = {}
        if self.time_dependent:
            out["t"] = t
        if self.value_dependent:
            out["u"] = u
        return out

    def __call__(self, x: tuple[Any, ...], p: tuple[Any, ...], t: float = 0.0, u: Any = None) -> Any:
        return self.function(x, p, **self.keywords(t, u))


@dataclass(frozen=True)
class LinearForms:
    """``H(x, p) = g(x).p + sum_m s_m |v_m(x).p|`` with fields on the grid.

    Attributes
    ----------
    drift : tuple of arrays
        ``g_k``, one numpy array of the grid's shape per axis.
    vectors : tuple of tuples of arrays
        ``v_m``, each a tuple of ``ndim`` numpy arrays of the grid's shape.
    signs : tuple of float
        ``s_m`` (``+1`` or ``-1``).
    """

    drift: tuple[Any, ...]
    vectors: tuple[tuple[Any, ...], ...]
    signs: tuple[float, ...]

    def on(self, like: Any) -> LinearForms:
        """The same forms with fields on ``like``'s backend, device and dtype."""
        return LinearForms(
            tuple(asarray_like(g, like) for g in self.drift),
            tuple(tuple(asarray_like(c, like) for c in v) for v in self.vectors),
            self.signs,
        )

    def __call__(self, x: tuple[Any, ...], p: tuple[Any, ...]) -> Any:
        xp = array_namespace(p[0])
        value = None
        for g, q in zip(self.drift, p):
            term = g * q
            value = term if value is None else value + term
        for v, sign in zip(self.vectors, self.signs):
            dot = None
            for c, q in zip(v, p):
                dot = c * q if dot is None else dot + c * q
            value = value + sign * xp.abs(dot)
        return value


def as_hamiltonian(value: Any) -> Hamiltonian:
    """``value`` as a :class:`Hamiltonian` (a plain callable is wrapped with the defaults)."""
    if isinstance(value, Hamiltonian):
        return value
    if callable(value):
        return Hamiltonian(value)
    raise TypeError(f"`hamiltonian` must be a callable H(x, p) or a Hamiltonian, got {value!r}")


def _per_axis(value: Any, ndim: int, name: str, *, nonnegative: bool) -> tuple[float, ...]:
    """A number or one per axis, as a tuple of floats."""
    values = (value,) * ndim if np.isscalar(value) else tuple(value)
    if len(values) != ndim:
        raise ValueError(f"`{name}` must be a number or one per axis ({ndim}), got {value!r}")
    out = tuple(check_real(v, name) for v in values)
    if any(not math.isfinite(v) or (nonnegative and v < 0) for v in out):
        raise ValueError(f"`{name}` must hold finite{' non-negative' if nonnegative else ''} numbers, got {value!r}")
    return out


def resolve_general_scheme(scheme: str, hamiltonian: Hamiltonian) -> str:
    """``"auto"``: Godunov for a declared-convex ``H``, global Lax-Friedrichs otherwise."""
    if scheme == "auto":
        return "godunov" if hamiltonian.convex else "lax_friedrichs"
    if scheme == "godunov" and not hamiltonian.convex:
        raise ValueError(
            "`scheme` 'godunov' needs a Hamiltonian declared convex (Hamiltonian(H, convex=True)); "
            "use a Lax-Friedrichs scheme for any other"
        )
    return scheme


class GeneralHJOperator:
    """The semi-discrete right-hand side ``L(u) = -H_hat(x, p-, p+) + nu Laplacian u``.

    ``H_hat`` is the numerical Hamiltonian named by ``scheme`` (module docstring of
    :mod:`hjsmooth.solvers.hamiltonians`), ``p-``, ``p+`` the one-sided slopes of the stencil,
    ``nu = 1/(2 beta)``.  The step is

        dt = C cfl / (max_x sum_k alpha_k(x) / h_k + 2 nu (s/4) sum_k 1/h_k^2)

    (``alpha_k`` the Lax-Friedrichs coefficients; for Godunov the local-local bounds; ``C`` the
    integrator's step coefficient, ``s`` the Laplacian's stiffness), recomputed at every step.
    With ``nonincreasing`` the right-hand side is ``min(L(u), 0)``: values never grow (the
    backward reachable tube of :mod:`hjsmooth.solvers.reachability`).

    Parameters
    ----------
    grid : Grid
    hamiltonian : Hamiltonian
    scheme, accuracy : str
    bc : tuple of str
        The boundary condition of every axis.
    beta, cfl : float
    method : RKMethod
    like : array
        An array of the solve's backend, device and dtype (the coordinates are made like it).
    horizon : float
        The step when nothing moves.
    nonincreasing : bool
    """

    def __init__(
        self,
        grid: Grid,
        hamiltonian: Hamiltonian,
        scheme: str,
        accuracy: str,
        bc: tuple[str, ...],
        beta: float,
        cfl: float,
        method: RKMethod,
        like: Any,
        horizon: float = 1.0,
        nonincreasing: bool = False,
    ):
        self.grid = grid
        if hamiltonian.forms is not None:  # the forms' fields on the solve's backend
            hamiltonian = replace(hamiltonian, function=hamiltonian.forms.on(like))
        self.hamiltonian = hamiltonian
        self.spacing = tuple(float(h) for h in grid.spacing)
        self.scheme = scheme
        self.accuracy = accuracy
        self.bc = axis_conditions(bc, grid.ndim)
        self.width = GHOST_WIDTH[accuracy]
        self.nu = 0.0 if math.isinf(beta) else 0.5 / beta
        self.cfl = cfl
        self.method = method
        self.horizon = horizon
        self.nonincreasing = nonincreasing
        self.viscous_rate = 2.0 * self.nu * laplacian_stiffness(accuracy) / 4.0 * sum(1.0 / h**2 for h in self.spacing)
        self.x = tuple(asarray_like(c, like) for c in grid.coords)
        ndim = grid.ndim
        bound = hamiltonian.bound
        self.constant_bound: tuple[float, ...] | None = None
        self.field_bound: tuple[Any, ...] | None = None
        if bound is not None and not callable(bound):
            if np.isscalar(bound) or all(np.isscalar(b) for b in bound):
                self.constant_bound = _per_axis(bound, ndim, "bound", nonnegative=True)
            else:
                fields = tuple(as_field(b, "bound", grid.shape) for b in bound)
                if len(fields) != ndim:
                    raise ValueError(f"`bound` must hold one field per axis ({ndim}), got {len(fields)}")
                self.field_bound = tuple(asarray_like(to_numpy(b), like) for b in fields)
        minimizer = hamiltonian.minimizer
        if minimizer is None:
            self.minimizer: tuple[Any, ...] = (0.0,) * ndim
        elif callable(minimizer):
            self.minimizer = tuple(minimizer(self.x))
            if len(self.minimizer) != ndim:
                raise ValueError(f"`minimizer` must return one array per axis ({ndim}), got {len(self.minimizer)}")
        else:
            self.minimizer = _per_axis(minimizer, ndim, "minimizer", nonnegative=False)
        self._cached_state: Any = None
        self._cached_rhs: Any = None

    # -- the pieces of L ------------------------------------------------------------------------------
    def slopes(self, u: Any) -> tuple[list[Any], tuple[Any, ...], tuple[Any, ...]]:
        """The padded fields per axis and the one-sided slopes ``(p-, p+)``, one array per axis each."""
        padded = [pad_axis(u, axis, self.width, self.bc[axis]) for axis in range(u.ndim)]
        pairs = [one_sided_differences(padded[axis], axis, h, self.accuracy) for axis, h in enumerate(self.spacing)]
        return padded, tuple(m for m, _ in pairs), tuple(p for _, p in pairs)

    def _derivative(self, p: tuple[Any, ...], axis: int, step: Any, t: float, u: Any) -> Any:
        """``dH/dp_axis`` at ``p`` by a central difference of width ``2 step``."""
        up = tuple(q + step if k == axis else q for k, q in enumerate(p))
        down = tuple(q - step if k == axis else q for k, q in enumerate(p))
        return (self.hamiltonian(self.x, up, t, u) - self.hamiltonian(self.x, down, t, u)) / (2.0 * step)

    def estimated_bounds(self, samples: list[tuple[Any, ...]], t: float, u: Any, local: bool) -> tuple[Any, ...]:
        """:data:`BOUND_SAFETY` times the largest ``|dH/dp_k|`` at the sampled slope vectors, per node
        (``local``) or over the grid; each derivative is a central difference of half-width
        ``eps^(1/3) max(1, |p_k|)``."""
        xp = array_namespace(samples[0][0])
        root = float(np.finfo(np.float32 if samples[0][0].dtype == xp.float32 else np.float64).eps) ** (1.0 / 3.0)
        out = []
        for axis in range(len(samples[0])):
            largest: Any = None
            for p in samples:
                magnitude = xp.abs(p[axis])
                step = root * xp.maximum(magnitude, xp.ones_like(magnitude))
                d = xp.abs(self._derivative(p, axis, step, t, u))
                largest = d if largest is None else xp.maximum(largest, d)
            out.append(BOUND_SAFETY * (largest if local else xp.max(largest)))
        return tuple(out)

    def bounds(
        self, p_minus: tuple[Any, ...], p_plus: tuple[Any, ...], mean: tuple[Any, ...], t: float, u: Any
    ) -> tuple[Any, ...]:
        """``alpha_k`` per axis (arrays of the grid's shape or scalars) for this scheme."""
        if self.constant_bound is not None:
            return self.constant_bound
        if self.field_bound is not None:
            return self.field_bound
        xp = array_namespace(p_minus[0])
        local = self.scheme != "lax_friedrichs"
        bound = self.hamiltonian.bound
        if bound is None:
            return self.estimated_bounds([p_minus, p_plus, mean], t, u, local)
        keywords = self.hamiltonian.keywords(t, u)
        low = tuple(xp.minimum(m, p) for m, p in zip(p_minus, p_plus))
        high = tuple(xp.maximum(m, p) for m, p in zip(p_minus, p_plus))
        if self.scheme in ("local_local_lax_friedrichs", "godunov"):
            return tuple(bound(self.x, low, high, **keywords))
        global_low = tuple(xp.min(v) for v in low)
        global_high = tuple(xp.max(v) for v in high)
        if self.scheme == "lax_friedrichs":
            return tuple(bound(self.x, global_low, global_high, **keywords))
        alphas = []  # local Lax-Friedrichs: the node's own interval along axis k, the global ones elsewhere
        for axis in range(len(p_minus)):
            box_low = tuple(low[k] if k == axis else global_low[k] for k in range(len(low)))
            box_high = tuple(high[k] if k == axis else global_high[k] for k in range(len(high)))
            alphas.append(tuple(bound(self.x, box_low, box_high, **keywords))[axis])
        return tuple(alphas)

    def evaluate(self, u: Any, t: float = 0.0) -> tuple[Any, float]:
        """Return ``(L(u), max_x sum_k alpha_k / h_k)`` (the rate as a Python float)."""
        xp = array_namespace(u)
        padded, p_minus, p_plus = self.slopes(u)
        mean = tuple(0.5 * (m + p) for m, p in zip(p_minus, p_plus))
        alphas = self.bounds(p_minus, p_plus, mean, t, u)
        if self.scheme == "godunov":
            flux = self.hamiltonian(self.x, godunov_slopes(p_minus, p_plus, self.minimizer), t, u)
        else:
            flux = lax_friedrichs_flux(self.hamiltonian(self.x, mean, t, u), alphas, p_minus, p_plus)
        rhs = -flux
        if self.nu > 0.0:
            rhs = rhs + self.nu * laplacian(padded, self.spacing, self.width, self.accuracy)
        if self.nonincreasing:
            rhs = xp.minimum(rhs, xp.zeros_like(rhs))
        speed: Any = None
        for alpha, h in zip(alphas, self.spacing):
            term = alpha / h
            speed = term if speed is None else speed + term
        rate = float(xp.max(speed)) if hasattr(speed, "shape") else float(speed)
        return rhs, rate

    # -- the operator interface of the steppers -------------------------------------------------------
    def rhs(self, u: Any, t: float = 0.0) -> Any:
        """``L(u)`` at time ``t``."""
        return self.evaluate(u, t)[0]

    def stable_dt(self, u: Any, t: float = 0.0) -> float:
        """The CFL step at state ``u`` (and cache ``L(u)`` for the step that follows)."""
        rhs, rate = self.evaluate(u, t)
        self._cached_state, self._cached_rhs = u, rhs
        return self.step_for_rate(rate)

    def step_for_rate(self, rate: float) -> float:
        """The CFL step ``C cfl / (rate + viscous rate)``."""
        denominator = rate + self.viscous_rate
        if not math.isfinite(denominator):
            raise FloatingPointError(f"the solution blew up (wave speed {denominator!r}); is `bound` finite?")
        return self.method.coefficient * self.cfl / denominator if denominator > 0.0 else self.horizon

    def cached_rhs(self, u: Any) -> Any | None:
        """``L(u)`` if :meth:`stable_dt` was just called on this very array, else ``None``."""
        return self._cached_rhs if u is self._cached_state else None


def solve_general_hj(
    f: Any,
    grid: Grid,
    t: float,
    hamiltonian: Any,
    *,
    beta: float = float("inf"),
    scheme: str = "auto",
    bc: Any = "extrapolate",
    accuracy: str = "first",
    integrator: str = "auto",
    cfl: float | None = None,
    dt: float | None = None,
    save_at: Sequence[float] | int | None = None,
    progress: bool | None = None,
    bc_value: Any = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    nonincreasing: bool = False,
    desc: str = "HJ",
) -> PDESolution:
    """Solve ``u_t + H(x, grad u) = 1/(2 beta) Laplacian u``, ``u(., 0) = f``, up to time ``t``.

    The arguments are those of :func:`hjsmooth.solvers.hj.solve_hj` (which calls this function
    when given a ``hamiltonian``); ``nonincreasing`` marches ``u_t = min(L(u), 0)``."""
    hamiltonian = as_hamiltonian(hamiltonian)
    beta = check_beta(beta, "beta")
    check_choice(scheme, "scheme", ("auto", *GENERAL_SCHEMES))
    check_choice(accuracy, "accuracy", ACCURACIES)
    check_choice(integrator, "integrator", INTEGRATORS)
    scheme = resolve_general_scheme(scheme, hamiltonian)
    method = method_for(scheme, accuracy, integrator)
    if cfl is None:
        cfl = DEFAULT_CFLS[method.name]
    bc, cfl, dt = validate_common(grid, bc, cfl, dt)
    f = as_field(f, "f", grid.shape)
    t = check_time(t, "t")
    max_steps = check_count(max_steps, "max_steps")
    u0 = initial_state(f, bc)
    project = stage_projection(u0, bc, bc_value)
    operator = GeneralHJOperator(
        grid,
        hamiltonian,
        scheme,
        accuracy,
        bc,
        beta,
        cfl,
        method,
        u0,
        horizon=max(t, 1e-300),
        nonincreasing=nonincreasing,
    )
    result, info = run_scheme(
        u0,
        grid,
        t,
        operator,
        project,
        dt=dt,
        save_at=save_at,
        progress=progress,
        desc=f"{desc} {scheme}/{accuracy}",
        max_steps=max_steps,
        kind="hj_general_step",
    )
    info["beta"] = beta
    info["hamiltonian"] = "general"
    bc_text = info["bc"]
    return PDESolution(
        values=result.state,
        times=result.times,
        snapshots=result.snapshots,
        steps=result.steps,
        success=True,
        message=f"{scheme}/{accuracy} HJ scheme for a general H, bc={bc_text}: {result.steps} steps, "
        f"last dt={result.last_dt:.3g}",
        info=info,
    )
