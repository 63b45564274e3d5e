"""Standard normal draws for the spin-glass model from any SPEC 7 generator argument."""

from __future__ import annotations

from typing import Any

import numpy as np

from hjsmooth.validation import check_seed

__all__ = ["generator", "standard_normal"]


def _is_torch_generator(rng: Any) -> bool:
    return type(rng).__module__.startswith("torch") and type(rng).__name__ == "Generator"


def generator(rng: Any, name: str = "rng") -> Any:
    """``rng`` as a generator: a new numpy one from fresh entropy for ``None``, a seeded one for an int,
    a ``numpy.random.Generator`` or ``torch.Generator`` as it is (it advances)."""
    if isinstance(rng, np.random.Generator) or _is_torch_generator(rng):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        return np.random.default_rng(check_seed(rng, name))
    raise TypeError(f"`{name}` must be None, an int seed, a numpy Generator or a torch.Generator, got {rng!r}")


def standard_normal(gen: Any, shape: tuple[int, ...]) -> np.ndarray:
    """iid standard normal float64 numbers of ``shape`` from ``gen`` (numpy or torch), as a numpy array."""
    if isinstance(gen, np.random.Generator):
        return gen.standard_normal(shape)
    import torch

    return torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64).cpu().numpy()
