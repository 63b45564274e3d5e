"""Per-step tensor arithmetic shared by the optimizers, on lists of tensors.

Every helper acts in place on a list of tensors and has two paths: the ``foreach``
path (``torch._foreach_*``, one kernel launch per op and per device/dtype bucket on
CUDA) and a plain loop over tensors.  Both perform the same elementwise floating-point
operations in the same order, so they give identical results on the CPU.

Displacements rather than positions
-----------------------------------
The inner Langevin loop keeps the *displacement* ``d = y - x`` of the inner iterate
from the anchor ``x`` (and the running average ``m = <y> - x``), not ``y`` itself:
``d`` is small next to ``x``, so float32 loses nothing to cancellation when forming
``x - <y> = -m``, and the degenerate cases (``L = 1``, ``gamma = inf``) reduce to
exactly the operations of plain SGD.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Tensors = list[torch.Tensor]


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
    """``out <- a + b`` (used to place the parameters at ``x + d``)."""
    if not out:
        return
    if foreach:
        torch._foreach_copy_(out, a)
        torch._foreach_add_(out, b)
    else:
        for o, u, v in zip(out, a, b):
            torch.add(u, v, out=o)


def zero_(tensors: Tensors, foreach: bool) -> None:
    """``t <- 0``."""
    if not tensors:
        return
    if foreach:
        torch._foreach_zero_(tensors)
    else:
        for t in tensors:
            t.zero_()


def grads_or_zeros(params: Sequence[torch.Tensor]) -> Tensors:
    """The gradients of ``params``; a parameter the loss did not touch counts as gradient 0."""
    return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]


def inner_step_(
    disp: Tensors,
    grads: Tensors,
    bufs: Tensors | None,
    *,
    gamma: float,
    lr: float,
    momentum: float,
    foreach: bool,
) -> None:
    """One drift step of the inner loop on the displacement ``d = y - x``, in place.

    ``v = grad f(y) + d / gamma``; with ``momentum > 0``: ``buf <- momentum buf + v``, ``v = buf``;
    then ``d <- d - lr v``.  Without momentum this is evaluated as
    ``d <- (1 - lr/gamma) d - lr grad f(y)`` (two passes, no temporary).  ``gamma = inf``
    drops the coupling term (the factor is exactly 1).  ``grads`` is only read.
    """
    if not disp:
        return
    inv_gamma = 0.0 if math.isinf(gamma) else 1.0 / gamma
    if momentum > 0 and bufs is not None:
        if foreach:
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(bufs, disp, alpha=inv_gamma)
            torch._foreach_add_(disp, bufs, alpha=-lr)
        else:
            for d, g, b in zip(disp, grads, bufs):
                b.mul_(momentum).add_(g).add_(d, alpha=inv_gamma)
                d.add_(b, alpha=-lr)
        return
    shrink = 1.0 - lr * inv_gamma
    if foreach:
        if shrink != 1.0:
            torch._foreach_mul_(disp, shrink)
        torch._foreach_add_(disp, grads, alpha=-lr)
    else:
        for d, g in zip(disp, grads):
            if shrink != 1.0:
                d.mul_(shrink)
            d.add_(g, alpha=-lr)


def add_noise_(disp: Tensors, scale: float, generator: torch.Generator) -> None:
    """``d <- d + scale N(0, I)``, drawn from ``generator``.

    One flat standard normal vector is drawn per (device, dtype) bucket, on the
    generator's device, in the order of ``disp``; it is split over the tensors.
    """
    if scale == 0.0 or not disp:
        return
    for (device, dtype), idx in buckets(disp).items():
        sizes = [disp[i].numel() for i in idx]
        flat = torch.randn(sum(sizes), generator=generator, device=generator.device, dtype=dtype)
        if flat.device != device:
            flat = flat.to(device)
        pieces = [c.view_as(disp[i]) for c, i in zip(torch.split(flat, sizes), idx)]
        targets = [disp[i] for i in idx]
        torch._foreach_add_(targets, pieces, alpha=scale)


def running_average_(avg: Tensors, new: Tensors, alpha: float, foreach: bool) -> None:
    """``avg <- alpha avg + (1 - alpha) new`` (``alpha = 0`` keeps ``new``: one copy, the same numbers)."""
    if not avg:
        return
    if alpha == 0.0:
        copy_(avg, new, foreach)
        return
    if foreach:
        torch._foreach_mul_(avg, alpha)
        torch._foreach_add_(avg, new, alpha=1.0 - alpha)
    else:
        for a, n in zip(avg, new):
            a.mul_(alpha).add_(n, alpha=1.0 - alpha)


def set_grads_(params: Sequence[torch.Tensor], values: Tensors, scale: float, foreach: bool) -> Tensors:
    """``p.grad <- scale * value`` for each parameter (reusing ``p.grad`` when it exists); returns the grads.

    With ``values = m = <y> - x`` and ``scale = -1/gamma`` this is the Local Entropy
    gradient ``(x - <y>) / gamma``.
    """
    for p in params:
        if p.grad is None:
            p.grad = torch.empty_like(p)
    grads = [p.grad for p in params]
    if not grads:
        return grads
    if foreach:
        torch._foreach_copy_(grads, values)
        torch._foreach_mul_(grads, scale)
    else:
        for g, v in zip(grads, values):
            torch.mul(v, scale, out=g)
    return grads


def elastic_add_(out: Tensors, replica: Tensors, master: Tensors, rho: float, foreach: bool) -> None:
    """``out <- out + (x^a - x) / rho`` (nothing for ``rho = inf``)."""
    if not out or math.isinf(rho):
        return
    if foreach:
        diff = torch._foreach_sub(replica, master)
        torch._foreach_add_(out, diff, alpha=1.0 / rho)
    else:
        for o, r, m in zip(out, replica, master):
            o.add_(torch.sub(r, m), alpha=1.0 / rho)


def global_norm(tensors: Sequence[torch.Tensor]) -> float:
    """Euclidean norm of all entries of ``tensors`` together (one host sync)."""
    if not tensors:
        return 0.0
    norms = [torch.linalg.vector_norm(t.detach().to(torch.float64)) for t in tensors]
    devs = {n.device for n in norms}
    if len(devs) > 1:
        norms = [n.cpu() for n in norms]
    return float(torch.linalg.vector_norm(torch.stack(norms)))
