"""Random generators for the samplers: numpy ``Generator`` and ``torch.Generator``, passed in.

Every sampler takes its generator as an argument, so a result is reproducible from a seed
and no global random state is touched.  Two kinds are accepted:

* a ``numpy.random.Generator`` works with every backend: the noise is drawn on the host in
  float64 and copied to the array's backend, device and dtype.  The same seed therefore gives
  the same numbers for numpy and torch inputs (useful for cross-backend tests; on a GPU it
  costs a host-to-device copy per step).
* a ``torch.Generator`` works with torch tensors on the generator's device; the noise is drawn
  there directly, in the array's dtype.

The argument follows SPEC 7, as numpy and scipy do: ``None`` draws fresh entropy from the
operating system, an ``int`` seeds a new generator of the kind that suits the array
(:func:`make_generator`), and a generator is used as it is (and advances).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hjsmooth.backend import from_numpy, is_torch_array
from hjsmooth.validation import check_seed

__all__ = ["make_generator", "check_generator", "normal"]


def _is_torch_generator(rng: Any) -> bool:
    mod = type(rng).__module__
    return mod.startswith("torch") and type(rng).__name__ == "Generator"


def make_generator(seed: int | np.integer | None, like: Any) -> Any:
    """A new generator: ``torch.Generator`` on ``like``'s device for torch tensors, ``numpy.random.Generator``
    otherwise; seeded with ``seed`` (an integer in ``[0, 2**63)``), or from fresh OS entropy for ``None``."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`rng` must be None, a numpy Generator, a torch.Generator or an int seed, got {seed!r}")
        seed = check_seed(seed, "rng")
    if is_torch_array(like):
        import torch

        gen = torch.Generator(device=like.device)
        if seed is None:
            gen.seed()  # fresh, non-deterministic
        else:
            gen.manual_seed(int(seed))
        return gen
    return np.random.default_rng(seed)


def check_generator(rng: Any, like: Any, name: str = "rng") -> Any:
    """Return a generator usable with ``like`` (SPEC 7): ``rng`` itself if it is a generator, a new seeded
    one for an int, a new one from fresh entropy for ``None``.

    Raises ``TypeError`` for anything else and ``ValueError`` when a ``torch.Generator`` lives on another
    device than ``like``, or is combined with a non-torch array.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if _is_torch_generator(rng):
        if not is_torch_array(like):
            raise TypeError(
                f"`{name}` is a torch.Generator but the data is a {type(like).__name__}; pass a numpy Generator"
            )
        if rng.device.type != like.device.type:
            raise ValueError(f"`{name}` lives on {rng.device} but the data lives on {like.device}")
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return make_generator(rng, like)
    raise TypeError(f"`{name}` must be None, a numpy Generator, a torch.Generator or an int seed, got {rng!r}")


def normal(rng: Any, shape: tuple[int, ...], like: Any) -> Any:
    """Standard normal noise of ``shape`` on ``like``'s backend, device and dtype."""
    shape = tuple(int(s) for s in shape)
    if isinstance(rng, np.random.Generator):
        return from_numpy(rng.standard_normal(shape), like)
    import torch

    return torch.randn(shape, generator=rng, device=like.device, dtype=like.dtype)
