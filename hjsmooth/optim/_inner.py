r"""The inner Langevin loop of Local Entropy: one state object, used by every optimizer that runs it.

Given the anchor ``x``, the loop samples ``rho(y) ∝ exp(-beta (f(y) + |y - x|^2/(2 gamma)))``
and averages the samples (thesis Algorithm 2, (4.39)-(4.41), (5.8a)-(5.8b)).  One inner
step with gradient ``g = grad f(y)`` (minibatch), step ``eta = inner_lr``, momentum
``mu = inner_momentum`` and ``noise = 1/beta`` is, by default (``coupling_in_momentum=False``,
as in the original Entropy-SGD code),

.. math::

    b &\leftarrow \mu\, b + g, \qquad v = g + \mu\, b \ \ (\text{Nesterov; heavy ball: } v = b) \\
    y &\leftarrow y - \eta \big(v + (y - x)/\gamma\big) + \sqrt{2 \eta\, \texttt{noise}}\;\xi \\
    \langle y\rangle &\leftarrow \alpha \langle y\rangle + (1 - \alpha)\, y,

the coupling added *after* the momentum.  With ``coupling_in_momentum=True`` the buffer
sees the whole drift (``b <- mu b + g + (y - x)/gamma``, then ``v`` as above and
``y <- y - eta v``): momentum SGD on ``f(y) + |y - x|^2/(2 gamma)``, as the
hamilton-jacobi and Parle codes do.  The noise is never put into the buffer.

The state is kept as displacements from the anchor, ``d = y - x`` and ``m = <y> - x``,
so that float32 loses nothing to cancellation when forming ``x - <y> = -m`` (``d`` is
small next to ``x``).  It works on any list of real tensors: one parameter per tensor
(``LocalEntropy``, the sequential Parle path, where they are views of a replica's slice)
or stacked replicas ``(n, *p.shape)`` (the vectorised Parle path).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hjsmooth.optim import _foreach as F

Tensors = list[torch.Tensor]
Noise = Callable[[Tensors, float], None]


@dataclass(frozen=True)
class InnerSettings:
    """The inner loop's hyper-parameters for one outer step (schedules already resolved)."""

    gamma: float
    lr: float
    noise: float
    alpha: float
    momentum: float
    nesterov: bool
    coupling_in_momentum: bool

    @property
    def noise_scale(self) -> float:
        """``sqrt(2 inner_lr noise)``: the standard deviation of the noise added per inner step."""
        return math.sqrt(2.0 * self.lr * self.noise) if self.noise > 0 else 0.0


class InnerLoop:
    """Displacement ``d = y - x``, running average ``m = <y> - x`` and momentum buffer of one inner loop.

    Parameters
    ----------
    disp, avg : list of tensors
        Storage for ``d`` and ``m`` (real tensors; overwritten by :meth:`reset`).
    buf : list of tensors or None
        The momentum buffer (``None`` when ``settings.momentum == 0``).
    settings : InnerSettings
    foreach : bool
        Use the ``torch._foreach_*`` kernels.
    """

    def __init__(self, disp: Tensors, avg: Tensors, buf: Tensors | None, settings: InnerSettings,
                 foreach: bool) -> None:
        self.disp, self.avg, self.buf = disp, avg, buf
        self.settings = settings
        self.foreach = foreach
        self._fresh = True

    def reset(self, keep_buffer: bool) -> None:
        """Start a new outer step: ``y = <y> = x``; the buffer is zeroed unless ``keep_buffer``.

        ``d`` and ``m`` are not zeroed here: the first :meth:`update` writes them (the same
        numbers as updating zeros, two passes over memory fewer).
        """
        self._fresh = True
        if self.buf is not None and not keep_buffer:
            F.zero_(self.buf, self.foreach)

    def update(self, grads: Tensors, noise: Noise | None) -> None:
        """One inner step with the gradients ``grads`` at ``y`` (real tensors, used as scratch space).

        ``noise(d, scale)`` adds ``scale N(0, I)`` to ``d``; it is called only when the
        noise is on.
        """
        s = self.settings
        d = self.disp
        fresh = self._fresh
        inv_gamma = 0.0 if math.isinf(s.gamma) or fresh else 1.0 / s.gamma  # y = x: no coupling yet
        if s.coupling_in_momentum and inv_gamma and self.buf is not None:
            self._add_(grads, d, inv_gamma)  # g <- g + d/gamma: the buffer sees the coupling
            inv_gamma = 0.0
        if self.buf is not None:
            v = self._momentum(grads)
        else:
            v = grads
        if fresh:  # d = 0 - eta v
            F.scaled_into_(d, v, -s.lr, self.foreach)
        else:
            shrink = 1.0 - s.lr * inv_gamma  # y - x <- (1 - eta/gamma)(y - x) - eta v
            if self.foreach:
                if shrink != 1.0:
                    torch._foreach_mul_(d, shrink)
                torch._foreach_add_(d, v, alpha=-s.lr)
            else:
                for di, vi in zip(d, v):
                    if shrink != 1.0:
                        di.mul_(shrink)
                    di.add_(vi, alpha=-s.lr)
        if noise is not None and s.noise > 0:
            noise(d, s.noise_scale)
        if fresh:  # <y> - x = alpha 0 + (1 - alpha) d
            F.scaled_into_(self.avg, d, 1.0 - s.alpha, self.foreach)
        else:
            F.running_average_(self.avg, d, s.alpha, self.foreach)
        self._fresh = False

    def _momentum(self, grads: Tensors) -> Tensors:
        """``b <- mu b + g`` and the direction: ``g + mu b`` (Nesterov, written into ``g``) or ``b``."""
        s, b = self.settings, self.buf
        assert b is not None
        if self.foreach:
            torch._foreach_mul_(b, s.momentum)
            torch._foreach_add_(b, grads)
            if not s.nesterov:
                return b
            torch._foreach_add_(grads, b, alpha=s.momentum)
            return grads
        for bi, gi in zip(b, grads):
            torch.add(gi, bi, alpha=s.momentum, out=bi)
            if s.nesterov:
                gi.add_(bi, alpha=s.momentum)
        return grads if s.nesterov else b

    def _add_(self, out: Tensors, other: Tensors, alpha: float) -> None:
        if self.foreach:
            torch._foreach_add_(out, other, alpha=alpha)
        else:
            for o, t in zip(out, other):
                o.add_(t, alpha=alpha)

    def place(self, out: Tensors, anchors: Tensors, done: bool) -> None:
        """Write the next evaluation point into ``out``: ``x + d``, or ``x`` itself when the loop is ``done``."""
        if done:
            F.copy_(out, anchors, self.foreach)
        else:
            F.add_into_(out, anchors, self.disp, self.foreach)
