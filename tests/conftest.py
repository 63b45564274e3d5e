"""Shared fixtures: the array backends every cross-backend test runs over."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest


def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _cupy_gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no driver, no device: no GPU
        return False


HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_TORCH_CUDA = _torch_cuda()
HAS_CUPY = _cupy_gpu()
HAS_GPU = HAS_TORCH_CUDA or HAS_CUPY


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not HAS_GPU:
            item.add_marker(skip_gpu)


@dataclass(frozen=True)
class Backend:
    """One array backend: converts numpy test data in and results out."""

    name: str

    def asarray(self, a: Any, dtype: str = "float64") -> Any:
        a = np.asarray(a, dtype=dtype)
        if self.name == "numpy":
            return a
        if self.name.startswith("torch"):
            import torch

            dev = "cuda" if self.name == "torch-cuda" else "cpu"
            return torch.as_tensor(a, device=dev)
        if self.name == "cupy":
            import cupy

            return cupy.asarray(a)
        raise ValueError(self.name)

    @staticmethod
    def to_numpy(x: Any) -> np.ndarray:
        from hjsmooth.backend import to_numpy

        return np.asarray(to_numpy(x))

    def is_same_kind(self, x: Any, like: Any) -> bool:
        """Same backend, device and dtype."""
        from hjsmooth.backend import backend_name

        if backend_name(x) != backend_name(like) or x.dtype != like.dtype:
            return False
        return str(getattr(x, "device", "cpu")) == str(getattr(like, "device", "cpu"))


_BACKEND_PARAMS = [
    pytest.param("numpy", id="numpy"),
    pytest.param("torch-cpu", id="torch-cpu", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch missing")),
    pytest.param("torch-cuda", id="torch-cuda", marks=pytest.mark.gpu),
    pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
]


@pytest.fixture(params=_BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each available backend: numpy, torch on the CPU, and on a GPU torch-cuda and CuPy."""
    if request.param == "torch-cuda" and not HAS_TORCH_CUDA:
        pytest.skip("torch has no CUDA device")
    if request.param == "cupy" and not HAS_CUPY:
        pytest.skip("CuPy has no GPU")
    return Backend(request.param)


@pytest.fixture
def one_torch_thread() -> Any:
    """One intra-op torch thread for the test: tiny tensors, and no oversubscription of a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator, so every statistical test is reproducible."""
    return np.random.default_rng(20261128)
