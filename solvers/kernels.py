"""Kernel selection: which implementation runs an operator on a given array, decided once per solve.

Every grid solver that has more than one implementation of its inner operator asks this module,
once, before its time loop (or its transform), which one to use for the array it was given:

========================  ===========  =========================================================
operator                  device       engines, in order of preference
========================  ===========  =========================================================
``"hj_step"``             ``"cpu"``    ``"numba"`` (fused stages, every stencil), ``"array"``
``"hj_step"``             ``"cuda"``   ``"cuda"`` (fused raw kernel, three-point stencil), ``"array"``
``"fp_step"``             ``"cpu"``    ``"numba"`` (fused stencil), ``"array"``
``"fp_step"``             ``"cuda"``   ``"cuda"`` (fused raw kernel), ``"array"``
``"lower_envelope"``      ``"cpu"``    ``"numba"``, ``"array"`` (brute force)
``"lower_envelope"``      ``"cuda"``   ``"cuda"``, ``"array"`` (brute force)
========================  ===========  =========================================================

``"cpu"`` covers numpy arrays and torch tensors on the CPU (the numba kernels read a torch
tensor through a zero-copy numpy view), ``"cuda"`` CuPy arrays and CUDA torch tensors, and
any other array (e.g. torch on another device) has only the ``"array"`` engine.  An engine
is taken when its package is importable (through :func:`hjsmooth.backend.numba_available`
and :func:`hjsmooth.backend.cupy_available`) and the solver says the case is one it
supports; otherwise the next engine of the row is tried.

The numba and CUDA kernels of the Hamilton-Jacobi step share one table of scheme codes and
one of boundary codes (:data:`SCHEME_CODES`, :data:`BC_CODES`); the numba kernels also take
the stencil by its code (:data:`ACCURACY_CODES`); the kernels never see a name.  The CUDA
kernel has the three-point stencil only: ENO2 and WENO5 on a GPU array run the array code
(its ``supports`` says no, so :func:`select_engine` falls through to ``"array"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hjsmooth.backend import cupy_available, is_cupy_array, is_numpy_array, is_torch_array, numba_available

from .derivatives import GHOST_WIDTH

__all__ = ["ENGINES", "SCHEME_CODES", "BC_CODES", "ACCURACY_CODES", "device_kind", "select_engine", "NODES_PER_THREAD",
           "numba_threads"]

#: numerical Hamiltonian -> integer code, the same in the numba and the CUDA kernels
SCHEME_CODES: Mapping[str, int] = {"godunov": 0, "lax_friedrichs": 1, "engquist_osher": 2, "hybrid": 3}
#: boundary condition -> ghost rule code (Dirichlet fills its ghosts by linear extrapolation)
BC_CODES: Mapping[str, int] = {"extrapolate": 0, "dirichlet": 0, "neumann": 1, "periodic": 2}
#: stencil -> code, which is its ghost width (three points: 1, ENO2: 2, WENO5: 3)
ACCURACY_CODES: Mapping[str, int] = dict(GHOST_WIDTH)

#: (operator, device kind) -> engines in order of preference
ENGINES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("hj_step", "cpu"): ("numba", "array"),
    ("hj_step", "cuda"): ("cuda", "array"),
    ("hj_step", "other"): ("array",),
    ("fp_step", "cpu"): ("numba", "array"),
    ("fp_step", "cuda"): ("cuda", "array"),
    ("fp_step", "other"): ("array",),
    ("lower_envelope", "cpu"): ("numba", "array"),
    ("lower_envelope", "cuda"): ("cuda", "array"),
    ("lower_envelope", "other"): ("array",),
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


def select_engine(operator: str, like: Any, supports: Callable[[str], bool] = lambda engine: True) -> str:
    """The engine that runs ``operator`` on arrays like ``like``.

    Parameters
    ----------
    operator : {"hj_step", "fp_step", "lower_envelope"}
        The operator (a row group of :data:`ENGINES`).
    like : array
        An array of the backend, device and dtype the solve runs on.
    supports : callable
        ``supports(engine)`` is false where the solver knows that engine cannot do this case
        (a scheme it lacks, a dtype, rates on another device...).  ``"array"`` is never asked.

    Returns
    -------
    str
        The first engine of the row whose package is importable and that ``supports`` the case.
    """
    try:
        row = ENGINES[(operator, device_kind(like))]
    except KeyError:
        operators = sorted({op for op, _ in ENGINES})
        raise ValueError(f"unknown `operator` {operator!r}; valid values are {', '.join(map(repr, operators))}") from None
    for engine in row:
        if engine == "array" or (_PACKAGES[engine]() and supports(engine)):
            return engine
    raise ValueError(f"no engine of {row!r} can run {operator!r} on {type(like).__name__} here")


class numba_threads:  # noqa: N801 - used as a context manager, like numba's own functions
    """Run the numba kernels of a block on ``min(numba threads, nodes // NODES_PER_THREAD)`` threads
    (at least one), and restore the thread count after it."""

    def __init__(self, nodes: int):
        import numba

        self._numba = numba
        self.threads = max(1, min(numba.get_num_threads(), int(nodes) // NODES_PER_THREAD))
        self._before = 0

    def __enter__(self) -> "numba_threads":
        self._before = self._numba.get_num_threads()
        if self.threads != self._before:
            self._numba.set_num_threads(min(self.threads, self._before))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._numba.set_num_threads(self._before)
