"""The stepper registry: which implementation runs an operator on a given array, decided once per solve.

Every grid solver with more than one implementation of its inner operator asks this module once,
before its time loop (or its transform), through :func:`build`: the engines of the array's device
are tried in the order of :data:`ENGINES`, and the first whose package is importable and whose
``supports(case, like)`` is true builds the object that does the work, ``factory(case, like)``.
Both functions are named in one table, :data:`IMPLEMENTATIONS`, by module and attribute, so that
nothing imports numba or CuPy before a solve needs it:

=========================  ===========  ==========================================================
operator                   device       engines, in order of preference
=========================  ===========  ==========================================================
``"hj_step"``              ``"cpu"``    ``"numba"`` (fused stages, every stencil), ``"array"``
``"hj_step"``              ``"cuda"``   ``"cuda"`` (fused kernel, three-point stencil), ``"array"``
``"hj_general_step"``      ``"cpu"``    ``"numba"`` (a compiled or control-affine ``H``), ``"array"``
``"fp_step"``              ``"cpu"``    ``"numba"`` (fused stencil), ``"array"``
``"fp_step"``              ``"cuda"``   ``"cuda"`` (fused kernel), ``"array"``
``"lower_envelope"``       ``"cpu"``    ``"numba"``, ``"array"`` (brute force)
``"lower_envelope"``       ``"cuda"``   ``"cuda"``, ``"array"`` (brute force)
``"log_sum_exp"``          ``"cpu"``    ``"numba"`` (per-entry loop), ``"array"`` (chunked)
=========================  ===========  ==========================================================

``"cpu"`` covers numpy arrays and torch tensors on the CPU (the numba kernels read a torch
tensor through a zero-copy numpy view), ``"cuda"`` CuPy arrays and CUDA torch tensors, and
any other array (e.g. torch on another device) has only the ``"array"`` engine, which supports
every case.  The case is whatever the solver needs its engine to know (the semi-discrete
operator and the stage projection of a Hamilton-Jacobi solve, the Fokker-Planck operator, or
nothing); the registry never looks inside it.

The numba and CUDA kernels of the Hamilton-Jacobi step share one table of scheme codes and
one of boundary codes (:data:`SCHEME_CODES`, :data:`BC_CODES`); the numba kernels also take
the stencil by its code (:data:`ACCURACY_CODES`); the kernels never see a name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hjsmooth.backend import cupy_available, is_cupy_array, is_numpy_array, is_torch_array, numba_available

from .derivatives import GHOST_WIDTH

__all__ = [
    "ENGINES",
    "IMPLEMENTATIONS",
    "Implementation",
    "SCHEME_CODES",
    "BC_CODES",
    "ACCURACY_CODES",
    "device_kind",
    "select_engine",
    "build",
    "NODES_PER_THREAD",
    "numba_threads",
]

#: numerical Hamiltonian -> integer code, the same in the numba and the CUDA kernels
SCHEME_CODES: Mapping[str, int] = {
    "godunov": 0,
    "lax_friedrichs": 1,
    "engquist_osher": 2,
    "hybrid": 3,
    "local_lax_friedrichs": 4,
    "local_local_lax_friedrichs": 5,
}
#: boundary condition -> ghost rule code (Dirichlet fills its ghosts by linear extrapolation)
BC_CODES: Mapping[str, int] = {"extrapolate": 0, "dirichlet": 0, "neumann": 1, "periodic": 2}
#: stencil -> code, which is its ghost width (three points: 1, ENO2: 2, WENO5: 3)
ACCURACY_CODES: Mapping[str, int] = dict(GHOST_WIDTH)

#: (operator, device kind) -> engines in order of preference
ENGINES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("hj_step", "cpu"): ("numba", "array"),
    ("hj_step", "cuda"): ("cuda", "array"),
    ("hj_step", "other"): ("array",),
    ("hj_general_step", "cpu"): ("numba", "array"),
    ("hj_general_step", "cuda"): ("array",),
    ("hj_general_step", "other"): ("array",),
    ("fp_step", "cpu"): ("numba", "array"),
    ("fp_step", "cuda"): ("cuda", "array"),
    ("fp_step", "other"): ("array",),
    ("lower_envelope", "cpu"): ("numba", "array"),
    ("lower_envelope", "cuda"): ("cuda", "array"),
    ("lower_envelope", "other"): ("array",),
    ("log_sum_exp", "cpu"): ("numba", "array"),
    ("log_sum_exp", "cuda"): ("array",),
    ("log_sum_exp", "other"): ("array",),
}


@dataclass(frozen=True)
class Implementation:
    """Where one engine's implementation of an operator lives.

    Attributes
    ----------
    module : str
        Module inside ``hjsmooth.solvers`` (e.g. ``"_numba_hj"``).
    factory : str
        Attribute of the module called as ``factory(case, like)`` to build the worker.
    supports : str or None
        Attribute called as ``supports(case, like) -> bool``; ``None``: every case.
    """

    module: str
    factory: str
    supports: str | None = None

    def attribute(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{__package__}.{self.module}"), name)


#: (operator, engine) -> its implementation: the one table every solver asks
IMPLEMENTATIONS: Mapping[tuple[str, str], Implementation] = {
    ("hj_step", "numba"): Implementation("_numba_hj", "numba_stepper", "numba_supports"),
    ("hj_step", "cuda"): Implementation("_fused_hj", "cuda_stepper", "cuda_supports"),
    ("hj_step", "array"): Implementation("hj_stepping", "ArrayStepper"),
    ("hj_general_step", "numba"): Implementation(
        "_numba_general_hj", "numba_general_stepper", "numba_general_supports"
    ),
    ("hj_general_step", "array"): Implementation("hj_stepping", "ArrayStepper"),
    ("fp_step", "numba"): Implementation("_numba_fp", "NumbaFPStepper", "numba_fp_supports"),
    ("fp_step", "cuda"): Implementation("_fused_fp", "CudaFPStepper", "cuda_fp_supports"),
    ("fp_step", "array"): Implementation("fokker_planck", "ArrayFPStepper"),
    ("lower_envelope", "numba"): Implementation("hopf_lax", "numba_envelope"),
    ("lower_envelope", "cuda"): Implementation("hopf_lax", "cuda_envelope"),
    ("lower_envelope", "array"): Implementation("hopf_lax", "brute_force_envelope"),
    ("log_sum_exp", "numba"): Implementation("_numba_logsumexp", "numba_logsumexp"),
    ("log_sum_exp", "array"): Implementation("cole_hopf", "chunked_logsumexp"),
}

#: the fewest grid nodes a numba thread gets: a stencil pass over fewer nodes is shorter than what
#: a parallel region costs to start and join (and, on an oversubscribed machine, than the wait
#: for a descheduled thread), so smaller grids run on fewer threads (256^2: one)
NODES_PER_THREAD = 1 << 16

_PACKAGES: Mapping[str, Callable[[], bool]] = {
    "numba": numba_available,
    "cuda": cupy_available,
    "array": lambda: True,
}


def device_kind(x: Any) -> str:
    """``"cpu"`` (numpy, CPU torch), ``"cuda"`` (CuPy, CUDA torch) or ``"other"``."""
    if is_numpy_array(x):
        return "cpu"
    if is_cupy_array(x):
        return "cuda"
    if is_torch_array(x):
        return {"cpu": "cpu", "cuda": "cuda"}.get(x.device.type, "other")
    return "other"


def _row(operator: str, like: Any) -> tuple[str, ...]:
    try:
        return ENGINES[(operator, device_kind(like))]
    except KeyError:
        operators = sorted({op for op, _ in ENGINES})
        raise ValueError(
            f"unknown `operator` {operator!r}; valid values are {', '.join(map(repr, operators))}"
        ) from None


def select_engine(operator: str, like: Any, case: Any = None) -> str:
    """The engine that runs ``operator`` on arrays like ``like`` for ``case``.

    Parameters
    ----------
    operator : str
        The operator (a row group of :data:`ENGINES`).
    like : array
        An array of the backend, device and dtype the solve runs on.
    case : object
        Passed to the engines' ``supports``, which is false where an engine cannot do this case
        (a scheme it lacks, a dtype, rates on another device...).  ``"array"`` supports every case.

    Returns
    -------
    str
        The first engine of the row whose package is importable and that supports the case.
    """
    for engine in _row(operator, like):
        if engine == "array":
            return engine
        if not _PACKAGES[engine]():
            continue
        implementation = IMPLEMENTATIONS[(operator, engine)]
        if implementation.supports is None or implementation.attribute(implementation.supports)(case, like):
            return engine
    raise ValueError(f"no engine of {_row(operator, like)!r} can run {operator!r} on {type(like).__name__} here")


def build(operator: str, like: Any, case: Any = None, engine: str | None = None) -> tuple[str, Any]:
    """``(engine, worker)``: the engine :func:`select_engine` picks (or ``engine``, when given) and the
    object its factory builds for ``case`` and arrays like ``like``."""
    engine = select_engine(operator, like, case) if engine is None else engine
    implementation = IMPLEMENTATIONS[(operator, engine)]
    return engine, implementation.attribute(implementation.factory)(case, like)


class numba_threads:  # noqa: N801 - used as a context manager, like numba's own functions
    """Run the numba kernels of a block on ``min(numba threads, nodes // NODES_PER_THREAD)`` threads
    (at least one), and restore the thread count after it."""

    def __init__(self, nodes: int):
        import numba

        self._numba = numba
        self.threads = max(1, min(numba.get_num_threads(), int(nodes) // NODES_PER_THREAD))
        self._before = 0

    def __enter__(self) -> numba_threads:
        self._before = self._numba.get_num_threads()
        if self.threads != self._before:
            self._numba.set_num_threads(min(self.threads, self._before))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._numba.set_num_threads(self._before)
