"""The random generator of every diagnostic (SPEC 7), as a ``torch.Generator`` on the model's device.

* ``rng=None``: a new generator seeded from fresh operating-system entropy;
* an ``int``: a new generator seeded with it (the same seed gives the same draws);
* a ``torch.Generator``: used as is (its state advances), when it lives on the model's device type;
* a ``numpy.random.Generator``: used as is to draw the seed of a new ``torch.Generator`` (one 63-bit
  integer per call, so the numpy generator advances and the next call draws differently).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["torch_generator"]


def torch_generator(rng: Any, device: torch.device, name: str = "rng") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` from ``rng`` (``None``, an int seed, or a generator)."""
    if isinstance(rng, torch.Generator):
        if rng.device.type != torch.device(device).type:
            raise ValueError(f"`{name}` lives on {rng.device} but the model lives on {device}")
        return rng
    if rng is None:
        gen = torch.Generator(device=device)
        gen.manual_seed(int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
        return gen
    if isinstance(rng, np.random.Generator):
        seed = int(rng.integers(0, 2**63 - 1))
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        seed = int(rng)
        if seed < 0:
            raise ValueError(f"`{name}` must be a non-negative seed, got {seed!r}")
    else:
        raise TypeError(f"`{name}` must be None, an int seed, a torch.Generator or a numpy Generator, got {rng!r}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
