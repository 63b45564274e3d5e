"""Array-backend helpers shared by the solvers, samplers and landscapes.

Every numeric function in hjsmooth starts with ``xp = array_namespace(x)`` and
allocates on ``x``'s device, so numpy arrays come back as numpy arrays, torch
tensors as torch tensors on the same device, CuPy arrays as CuPy arrays.  The
helpers below cover what the array API standard leaves out: moving data between
backends for kernels that exist for one backend only (the numba lower envelope,
the CuPy raw kernels), and telling which backend an array belongs to without
importing torch or CuPy when they are not already loaded.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device, is_cupy_array, is_numpy_array, is_torch_array

__all__ = [
    "array_namespace",
    "device",
    "is_numpy_array",
    "is_torch_array",
    "is_cupy_array",
    "is_cuda",
    "backend_name",
    "to_numpy",
    "from_numpy",
    "to_cupy",
    "from_cupy",
    "asarray_like",
    "numba_available",
    "cupy_available",
]


def numba_available() -> bool:
    """True if numba can be imported (the compiled CPU kernels need it)."""
    return importlib.util.find_spec("numba") is not None


def cupy_available() -> bool:
    """True if CuPy can be imported (the CUDA raw kernels need it; whether a GPU is present is
    not checked here: a CUDA array in hand says so)."""
    return importlib.util.find_spec("cupy") is not None


def backend_name(x: Any) -> str:
    """Return ``"numpy"``, ``"torch"`` or ``"cupy"`` for an array, else raise ``TypeError``."""
    if is_numpy_array(x):
        return "numpy"
    if is_torch_array(x):
        return "torch"
    if is_cupy_array(x):
        return "cupy"
    raise TypeError(f"expected a numpy, torch or CuPy array, got {type(x).__name__}")


def is_cuda(x: Any) -> bool:
    """True for CuPy arrays and torch tensors that live on a CUDA device."""
    if is_cupy_array(x):
        return True
    if is_torch_array(x):
        return x.device.type == "cuda"
    return False


def to_numpy(x: Any) -> np.ndarray:
    """Copy (or view, where possible) any supported array as a numpy array on the host."""
    if is_numpy_array(x):
        return x
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def from_numpy(a: np.ndarray, like: Any) -> Any:
    """Return numpy array ``a`` as an array of ``like``'s backend, device and dtype."""
    if is_numpy_array(like):
        return a.astype(like.dtype, copy=False)
    if is_torch_array(like):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to(device=like.device, dtype=like.dtype)
    if is_cupy_array(like):
        cupy = sys.modules["cupy"]
        with cupy.cuda.Device(like.device.id):
            return cupy.asarray(a, dtype=like.dtype)
    raise TypeError(f"unsupported array type {type(like).__name__}")


def to_cupy(x: Any) -> Any:
    """View a CUDA array (CuPy, or a CUDA torch tensor) as CuPy, without copying."""
    if is_cupy_array(x):
        return x
    cupy = __import__("cupy")
    return cupy.from_dlpack(x.contiguous())


def from_cupy(a: Any, like: Any) -> Any:
    """Return CuPy array ``a`` as an array of ``like``'s backend (CuPy or CUDA torch)."""
    if is_cupy_array(like):
        return a.astype(like.dtype, copy=False)
    import torch

    return torch.from_dlpack(a).to(dtype=like.dtype)


def asarray_like(values: Any, like: Any) -> Any:
    """Convert ``values`` (numpy array or Python scalars) to ``like``'s backend, device and dtype."""
    xp = array_namespace(like)
    if is_numpy_array(values) or np.isscalar(values):
        return from_numpy(np.asarray(values, dtype=np.float64), like)
    return xp.asarray(values, dtype=like.dtype, device=device(like))
