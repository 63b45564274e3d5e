"""How every CUDA source of the project is built and compiled, and the launch geometry of the
stencil kernels (``_fused_hj``, ``_fused_fp``).

Sources are built one way, :func:`cuda_source`: a body of templated device code, then one
``extern "C"`` entry point per instantiation, formatted from an entry template; they are
compiled one way, :func:`raw_kernel` (CuPy ``RawModule``, C++14, cached per source and name).

An array of 1 to 3 axes is seen as ``(n0, n1, n2)`` with ones *in front*, so ``n2`` is
always the contiguous axis.  Threads of a block run along axis 2 (coalesced loads), the
launch grid's ``y`` runs over strips of ``rows`` nodes of axis 1 and its ``z`` over axis 0.
The kernels loop over ``y`` and ``z`` with a grid stride, so capping those two launch
dimensions at CUDA's 65535 loses nothing, and no kernel recovers an index by division.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["launch_config", "raw_kernel", "cuda_source", "C_TYPES", "STRIP_TRAVERSAL"]

C_TYPES = {"float32": "float", "float64": "double"}  # dtype name -> CUDA scalar type

# The device side of launch_config: calls strip(i0, i2, start, stop) for every strip
# [start, stop) of axis 1 that this thread owns (nodes (i0, i1, i2), start <= i1 < stop).
STRIP_TRAVERSAL = r"""
template <typename Strip>
__device__ __forceinline__ void for_each_strip(int n0, int n1, int n2, int rows, Strip strip) {
    const int i2 = blockIdx.x * blockDim.x + threadIdx.x;
    if (i2 >= n2) return;
    for (int i0 = blockIdx.z; i0 < n0; i0 += gridDim.z) {
        for (int start = blockIdx.y * rows; start < n1; start += gridDim.y * rows) {
            strip(i0, i2, start, start + rows < n1 ? start + rows : n1);
        }
    }
}
"""

_MAX_THREADS = 256
_MAX_GRID_YZ = 65535


def launch_config(
    shape: tuple[int, ...], rows: int = 1, max_grid_yz: int = _MAX_GRID_YZ
) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """``(grid, block, (n0, n1, n2))`` of the launch for an array of ``shape`` (1 to 3 axes).

    Blocks of up to 256 threads (a multiple of 32) along the contiguous axis; the launch grid's
    ``y`` covers the strips of ``rows`` nodes of axis 1 and its ``z`` axis 0, each capped at
    ``max_grid_yz`` (65535, CUDA's limit; the kernel loops over what a capped dimension leaves).
    """
    if not 1 <= len(shape) <= 3:
        raise ValueError(f"`shape` must have 1 to 3 axes, got {shape!r}")
    if rows < 1:
        raise ValueError(f"`rows` must be >= 1, got {rows!r}")
    n0, n1, n2 = (1,) * (3 - len(shape)) + tuple(int(n) for n in shape)
    threads = min(_MAX_THREADS, 32 * ((n2 + 31) // 32))
    grid = ((n2 + threads - 1) // threads, min(max_grid_yz, (n1 + rows - 1) // rows), min(max_grid_yz, n0))
    return grid, (threads, 1, 1), (n0, n1, n2)


def cuda_source(body: str, entry: str, entries: list[dict[str, Any]], *, strips: bool = False) -> str:
    """``body`` followed by ``entry.format(**e, T=<CUDA type of e["dtype"]>)`` for each ``e`` of ``entries``.

    ``strips`` puts :data:`STRIP_TRAVERSAL` (the device side of :func:`launch_config`) in front.
    """
    return (
        (STRIP_TRAVERSAL if strips else "") + body + "".join(entry.format(**e, T=C_TYPES[e["dtype"]]) for e in entries)
    )


@cache
def raw_kernel(source: str, name: str) -> Any:
    """Entry point ``name`` of ``source`` compiled by CuPy (C++14), once per source and name."""
    import cupy

    return cupy.RawModule(code=source, options=("--std=c++14",)).get_function(name)
