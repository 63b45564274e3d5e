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
from typing import Any

import torch

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._checks import warn_if_unstable

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

    The gradients handed to :meth:`update` are only read: an optimizer never writes into the
    gradient tensors it is given (the direction ``g + mu b`` is never formed; its two terms are
    added to ``d`` one after the other).

    Parameters
    ----------
    disp, avg : list of tensors
        Storage for ``d`` and ``m`` (real tensors; overwritten by the first :meth:`update`).
    buf : list of tensors or None
        The momentum buffer (``None`` when ``settings.momentum == 0``).
    settings : InnerSettings
    foreach : bool
        Use the ``torch._foreach_*`` kernels.
    fresh : bool
        Whether the next :meth:`update` is the first of the outer step (``y = <y> = x``).
    """

    def __init__(
        self,
        disp: Tensors,
        avg: Tensors,
        buf: Tensors | None,
        settings: InnerSettings,
        foreach: bool,
        fresh: bool = True,
    ) -> None:
        self.disp, self.avg, self.buf = disp, avg, buf
        self.settings = settings
        self.foreach = foreach
        self._fresh = fresh

    def reset(self, keep_buffer: bool) -> None:
        """Start a new outer step: ``y = <y> = x``; the buffer is zeroed unless ``keep_buffer``.

        ``d`` and ``m`` are not zeroed here: the first :meth:`update` writes them (the same
        numbers as updating zeros, two passes over memory fewer).
        """
        self._fresh = True
        if self.buf is not None and not keep_buffer:
            ops.zero_(self.buf, self.foreach)

    def update(self, grads: Tensors, noise: Noise | None) -> None:
        """One inner step with the gradients ``grads`` at ``y`` (real tensors, read only).

        With ``b' = mu b + g`` (``+ d/gamma`` when the coupling goes into the buffer) and
        ``c = 1/gamma`` (0 at the first step, where ``d = 0``)::

            no momentum:            d <- (1 - eta c) d - eta g
            Nesterov:               d <- (1 - eta c) d - eta g - eta mu b'
            heavy ball:             d <- (1 - eta c) d - eta b'     (c = 0 if the coupling is in b')

        then ``d <- d + sqrt(2 eta noise) xi`` and ``m <- alpha m + (1 - alpha) d``.
        ``noise(d, scale)`` adds ``scale N(0, I)`` to ``d``; it is called only when the noise is on.
        """
        s = self.settings
        d, b, fe = self.disp, self.buf, self.foreach
        fresh = self._fresh
        inv_gamma = 0.0 if math.isinf(s.gamma) or fresh else 1.0 / s.gamma  # y = x: no coupling yet
        if b is not None:
            self._buffer(grads, inv_gamma if s.coupling_in_momentum else 0.0)
        heavy = b is not None and not s.nesterov
        shrink = 1.0 if heavy and s.coupling_in_momentum else 1.0 - s.lr * inv_gamma
        first = grads if b is None or s.nesterov else b  # the term with coefficient -eta
        if fresh:
            ops.scaled_into_(d, first, -s.lr, fe)
        elif fe:
            if shrink != 1.0:
                torch._foreach_mul_(d, shrink)
            torch._foreach_add_(d, first, alpha=-s.lr)
        else:
            for di, t in zip(d, first):
                if shrink != 1.0:
                    di.mul_(shrink)
                di.add_(t, alpha=-s.lr)
        if b is not None and s.nesterov:
            ops.add_(d, b, -s.lr * s.momentum, fe)
        if noise is not None and s.noise > 0:
            noise(d, s.noise_scale)
        if fresh:  # <y> - x = alpha 0 + (1 - alpha) d
            ops.scaled_into_(self.avg, d, 1.0 - s.alpha, fe)
        else:
            ops.running_average_(self.avg, d, s.alpha, fe)
        self._fresh = False

    def _buffer(self, grads: Tensors, coupling: float) -> None:
        """``b <- mu b + g`` (``+ coupling d``)."""
        s, b = self.settings, self.buf
        assert b is not None
        if self.foreach:
            torch._foreach_mul_(b, s.momentum)
            torch._foreach_add_(b, grads)
        else:
            for bi, gi in zip(b, grads):
                torch.add(gi, bi, alpha=s.momentum, out=bi)
        if coupling:
            ops.add_(b, self.disp, coupling, self.foreach)

    def place(self, out: Tensors, anchors: Tensors, done: bool) -> None:
        """Write the next evaluation point into ``out``: ``x + d``, or ``x`` itself when the loop is ``done``."""
        if done:
            ops.copy_(out, anchors, self.foreach)
        else:
            ops.add_into_(out, anchors, self.disp, self.foreach)


class InnerLoopGroups:
    """What the optimizers running the inner loop (``LocalEntropy``, ``Parle``) do alike with their groups.

    A mixin for a :class:`~hjsmooth.optim._base.ClosureOptimizer`: the stability warning when a
    group is added, a generator only when some group draws noise, and the inner momentum buffers
    kept across outer steps (``keep_inner_buffer``) as persistent state.  ``_inner_buffer_like(p,
    state)`` gives the tensor a new buffer is shaped like (the parameter, or its stacked replicas).
    """

    param_groups: list[dict[str, Any]]
    state: Any
    _warned: set[int]

    def _warn_if_inner_unstable(self, group: dict[str, Any], index: int, label: str) -> None:
        """The ``UserWarning`` of :func:`warn_if_unstable` for a group with constant ``gamma`` and ``inner_lr``."""
        if not callable(group["gamma"]) and not callable(group["inner_lr"]):
            if warn_if_unstable(
                group["inner_lr"],
                group["gamma"],
                group["inner_momentum"],
                group["inner_nesterov"],
                group["coupling_in_momentum"],
                f"{label} param group {index}",
            ):
                self._warned.add(index)

    def _needs_generator(self) -> bool:
        return any(g["noise"] > 0 for g in self.param_groups)

    def _inner_buffer_like(self, p: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def _persistent_tensors(self) -> list[torch.Tensor]:
        out = []
        for group in self.param_groups:
            if group["keep_inner_buffer"] and group["inner_momentum"] > 0:
                for p in group["params"]:
                    if p.requires_grad:
                        st = self.state[p]
                        if "inner_buffer" not in st:
                            st["inner_buffer"] = torch.zeros_like(
                                self._inner_buffer_like(p, st), memory_format=torch.contiguous_format
                            )
                        out.append(st["inner_buffer"])
        return out
