"""Per-step tensor arithmetic shared by the optimizers, on lists of tensors.

Every helper acts in place on a list of tensors and has two paths: the ``foreach``
path (``torch._foreach_*``, one kernel launch per op and per device/dtype bucket on
CUDA) and a plain loop over tensors (fewer passes over memory on a CPU, where the
``foreach`` ops are loops too).  Both perform the same elementwise floating-point
operations, so they give the same results on the CPU.

Complex parameters are handled as their real view (``torch.view_as_real``), as
``torch.optim`` does: every helper here sees real tensors only, so noise has the same
variance on every real coordinate and no reduction drops an imaginary part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Tensors = list[torch.Tensor]


def real(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself, or its real view ``(..., 2)`` if it is complex."""
    return torch.view_as_real(t) if t.is_complex() else t


def reals(tensors: Sequence[torch.Tensor]) -> Tensors:
    """:func:`real` of each tensor."""
    return [torch.view_as_real(t) if t.is_complex() else t for t in tensors]


def buckets(tensors: Sequence[torch.Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """Indices of ``tensors`` grouped by (device, dtype), in first-seen order."""
    out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(tensors):
        out.setdefault((t.device, t.dtype), []).append(i)
    return out


def copy_(dst: Tensors, src: Tensors, foreach: bool) -> None:
    """``dst <- src``."""
    if not dst:
        return
    if foreach:
        torch._foreach_copy_(dst, src)
    else:
        for a, b in zip(dst, src):
            a.copy_(b)


def add_into_(out: Tensors, a: Tensors, b: Tensors, foreach: bool) -> None:
    """``out <- a + b`` (places the parameters at ``x + d``)."""
    if not out:
        return
    if foreach:
        torch._foreach_copy_(out, a)
        torch._foreach_add_(out, b)
    else:
        for o, u, v in zip(out, a, b):
            torch.add(u, v, out=o)


def add_(out: Tensors, other: Tensors, alpha: float, foreach: bool) -> None:
    """``out <- out + alpha other``."""
    if not out:
        return
    if foreach:
        torch._foreach_add_(out, other, alpha=alpha)
    else:
        for o, t in zip(out, other):
            o.add_(t, alpha=alpha)


def scale_(tensors: Tensors, factor: float, foreach: bool) -> None:
    """``t <- factor t``."""
    if not tensors:
        return
    if foreach:
        torch._foreach_mul_(tensors, factor)
    else:
        for t in tensors:
            t.mul_(factor)


def zero_(tensors: Tensors, foreach: bool) -> None:
    """``t <- 0``."""
    if not tensors:
        return
    if foreach:
        torch._foreach_zero_(tensors)
    else:
        for t in tensors:
            t.zero_()


def add_noise_(targets: Tensors, scale: float, generator: torch.Generator) -> None:
    """``t <- t + scale N(0, I)``, drawn from ``generator``.

    One flat standard normal vector is drawn per (device, dtype) bucket, on the
    generator's device, in the order of ``targets``; it is split over the tensors.
    """
    if scale == 0.0 or not targets:
        return
    for (device, dtype), idx in buckets(targets).items():
        sizes = [targets[i].numel() for i in idx]
        flat = torch.randn(sum(sizes), generator=generator, device=generator.device, dtype=dtype)
        if flat.device != device:
            flat = flat.to(device)
        pieces = [c.view_as(targets[i]) for c, i in zip(torch.split(flat, sizes), idx)]
        torch._foreach_add_([targets[i] for i in idx], pieces, alpha=scale)


def running_average_(avg: Tensors, new: Tensors, alpha: float, foreach: bool) -> None:
    """``avg <- alpha avg + (1 - alpha) new``, as one ``lerp`` (``alpha = 0`` keeps ``new``: one copy)."""
    if not avg:
        return
    if alpha == 0.0:
        copy_(avg, new, foreach)
        return
    if foreach:
        torch._foreach_lerp_(avg, new, 1.0 - alpha)
    else:
        for a, n in zip(avg, new):
            a.lerp_(n, 1.0 - alpha)


def scaled_into_(out: Tensors, values: Tensors, scale: float, foreach: bool) -> None:
    """``out <- scale * values``."""
    if not out:
        return
    if foreach:
        torch._foreach_copy_(out, values)
        torch._foreach_mul_(out, scale)
    else:
        for o, v in zip(out, values):
            torch.mul(v, scale, out=o)


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def finite_norm_sq(tensors: Sequence[torch.Tensor]) -> float | None:
    """``sum |t|^2`` over all tensors, or ``None`` if any entry is NaN or infinite.

    One fused reduction per device and dtype class: the Euclidean norms of all tensors come
    from one ``torch._foreach_norm`` (NaN and inf propagate into them; half-precision
    tensors are reduced in float32) and are moved to the host once.  A tensor whose norm
    overflows its dtype (a float32 gradient with entries beyond ~1e19) counts as non-finite.
    """
    total = 0.0
    groups: dict[tuple[torch.device, bool], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype in _LOW_PRECISION), []).append(t)
    for (_, low), group in groups.items():
        norms = torch._foreach_norm(group, 2, dtype=torch.float32) if low else torch._foreach_norm(group)
        value = float(norms[0].double().square() if len(norms) == 1 else torch.stack(norms).double().square().sum())
        if not math.isfinite(value):
            return None
        total += value
    return total


def global_norm(tensors: Sequence[torch.Tensor]) -> float:
    """Euclidean norm of all entries of ``tensors`` together (one fused norm and one host sync per device)."""
    total = 0.0
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        by_device.setdefault(t.device, []).append(t)
    for group in by_device.values():
        total += float(torch.stack(torch._foreach_norm(group)).double().square().sum())
    return total**0.5
