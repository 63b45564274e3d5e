"""Local Entropy optimizers: the ``LocalEntropy`` wrapper, ``EntropySGD`` and ``HJ``.

They descend Local Entropy ``f_gamma = u(., gamma)``, the solution at time ``gamma`` of
the viscous Hamilton-Jacobi equation ``u_t = -1/2 |grad u|^2 + 1/(2 beta) Laplacian u``
with ``u(., 0) = f`` (thesis (4.1), (3.10)).  Its gradient is

    grad f_gamma(x) = (x - <y>) / gamma,

``<y>`` the mean of ``rho(y) ∝ exp(-beta (f(y) + |x - y|^2 / (2 gamma)))``, which an inner
Langevin loop estimates (thesis Algorithm 2, (4.39)-(4.41)).  ``HJ`` is the inviscid
limit ``beta = inf``: no noise, last iterate, so ``<y>`` is the proximal point and the
step is the gradient of the Hopf-Lax solution, ``(x - prox_{gamma f}(x)) / gamma``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._base import Closure, SmoothingWrapper
from hjsmooth.optim._checks import check_alpha, check_count, check_nonnegative_float, check_scope, resolve, sgd_kwargs

__all__ = ["LocalEntropy", "EntropySGD", "HJ"]

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class LocalEntropy(SmoothingWrapper):
    r"""Wrap any ``torch.optim`` optimizer so that it descends Local Entropy ``f_gamma``.

    One call of ``step(closure)`` is one *outer* step and ``L`` closure calls:

    1. keep the weights ``x`` (the anchor); start the inner iterate at ``y = x`` and
       the running average at ``<y> = x``;
    2. ``L`` times (``l = 1..L``): evaluate the closure at ``y`` (fresh minibatch), then

       .. math::

          v &= \nabla f(y) + (y - x)/\gamma \\
          \text{buf} &\leftarrow \mu_\text{in}\,\text{buf} + v,\quad v \leftarrow \text{buf}
              \qquad (\text{only if } \mu_\text{in} = \texttt{inner\_momentum} > 0) \\
          y &\leftarrow y - \eta_y\, v + \sqrt{2 \eta_y\, \texttt{noise}}\; \xi,\qquad \xi \sim N(0, I) \\
          \langle y\rangle &\leftarrow \alpha \langle y\rangle + (1 - \alpha)\, y

    3. put the weights back at ``x``, write ``g = (x - <y>)/gamma`` into ``p.grad`` and
       call ``base_optimizer.step()``.

    Where things enter
    ------------------
    * **noise** (``= 1/beta``) enters only the inner loop (step 2).
    * **momentum, weight decay, Nesterov, Adam moments...** are the base optimizer's and
      act only on the outer update (step 3): weight decay therefore regularises ``x``,
      i.e. the optimizer descends ``f_gamma(x) + wd |x|^2 / 2``.
    * **inner_momentum** is a heavy-ball buffer of the inner loop; it and ``y``, ``<y>``
      are *reset every outer step* (``y = <y> = x``, ``buf = 0``), as in the thesis
      (``y^k = x^k`` whenever ``k/L`` is an integer).  Only the base optimizer's state,
      the outer-step counter and the random generator persist between steps.
    * The learning rate ``lr`` (a base-optimizer argument) is the outer one; attach any
      ``torch.optim.lr_scheduler`` to this wrapper.  ``inner_lr`` is ``eta_y``.
    * Every hyper-parameter is per param group (``gamma``, ``L``, ``inner_lr``, ``noise``,
      ``alpha``, ``inner_momentum``, ``scale_by_gamma`` and the base optimizer's).  A group
      with a smaller ``L`` stops its inner loop early and waits at ``x``.

    Thesis settings
    ---------------
    Algorithm 2 / section 4.6.1: ``L=20, alpha=0.75`` (the thesis' ``alpha = 0.25`` weighs
    the *new* sample; here ``alpha`` weighs the old average), ``inner_lr=0.1``,
    ``noise=1e-8`` (or 0: "we can set beta_ex^{-1} = 0"), SGD with Nesterov momentum
    outside.  The thesis' "x <- z" (section 3.2.3, the gradient scaled down by gamma and
    ``eta' = 1``) is ``scale_by_gamma=True, lr=1, momentum=0``.  Scoping
    ``gamma_k = gamma_0 (1 - gamma_1)^k`` is ``gamma=schedules.exponential(gamma_0, gamma_1)``.

    Parameters
    ----------
    params : iterable of tensors or dicts
        The parameters or param groups, as for any ``torch.optim`` optimizer.
    base_optimizer : type
        A ``torch.optim.Optimizer`` class (``torch.optim.SGD``, ``torch.optim.Adam``...).
    gamma : float or callable
        The scope (PDE time, a variance), ``> 0``; or a schedule ``k -> gamma_k`` of the
        outer step ``k`` (see :mod:`hjsmooth.optim.schedules`).  Scoping *decreases* it.
    L : int
        Inner steps (closure calls) per outer step, ``>= 1``.
    inner_lr : float
        Inner step size ``eta_y`` (> 0).
    noise : float
        ``1/beta``, the inner Langevin temperature (``>= 0``; 0 means no added noise).
    alpha : float
        Weight of the old value in ``<y> <- alpha <y> + (1 - alpha) y``, in ``[0, 1)``;
        0 keeps the last iterate.
    inner_momentum : float
        Heavy-ball momentum of the inner loop (``>= 0``, reset every outer step).
    scale_by_gamma : bool
        Hand the base optimizer ``gamma g = x - <y>`` instead of ``g`` (thesis 3.2.3).
    freeze_bn : False or torch.nn.Module
        Pass the model to keep its BatchNorm running statistics from following the
        perturbed weights: only the first closure call of each outer step (made at ``x``
        itself) updates them; the statistics after it are restored at the end of the
        inner loop.
    generator : torch.Generator, optional
        Source of the inner noise (its state is saved in ``state_dict``).  By default one
        is created on the parameters' device, seeded from torch's default generator.
    foreach : bool, optional
        Use the ``torch._foreach_*`` kernels for the per-step arithmetic (default: when
        every parameter is on a CUDA device).
    **base_kwargs
        Passed to ``base_optimizer`` (``lr``, ``momentum``, ``weight_decay``, ...).

    Attributes
    ----------
    stats : dict of float
        After each step: ``loss`` (at ``x``), ``inner_loss`` (mean over the inner steps),
        ``grad_norm`` (norm of the gradient handed to the base optimizer), ``gamma``
        (first group's scope used in this step).
    outer_step : int
        Number of outer steps taken (the argument of the schedules).

    Notes
    -----
    A closure that returns NaN or inf stops the step with ``ValueError`` naming the
    inner and outer step; the weights are put back at ``x`` first.  Mixed precision:
    ``torch.autocast`` inside the closure works; ``torch.amp.GradScaler`` does not
    (``GradScaler.step`` refuses closures), since every inner step needs unscaled
    gradients — use bfloat16 autocast, which needs no scaler.
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer],
        gamma: float | Any,
        L: int = 20,
        inner_lr: float = 0.1,
        noise: float = 0.0,
        alpha: float = 0.75,
        inner_momentum: float = 0.0,
        scale_by_gamma: bool = False,
        freeze_bn: bool | torch.nn.Module = False,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(
            gamma=check_scope(gamma, "gamma"),
            L=check_count(L, "L"),
            inner_lr=check_scope(inner_lr, "inner_lr"),
            noise=check_nonnegative_float(noise, "noise"),
            alpha=check_alpha(alpha),
            inner_momentum=check_nonnegative_float(inner_momentum, "inner_momentum"),
            scale_by_gamma=bool(scale_by_gamma),
        )
        if freeze_bn is True:
            raise TypeError("`freeze_bn` must be False or the model (a torch.nn.Module) whose BatchNorm layers to freeze")
        if freeze_bn is not False and not isinstance(freeze_bn, torch.nn.Module):
            raise TypeError(f"`freeze_bn` must be False or a torch.nn.Module, got {type(freeze_bn).__name__}")
        super().__init__(params, base_optimizer, defaults, generator=generator, foreach=foreach, **base_kwargs)
        for group in self.param_groups:
            self._check_group(group)
        self._bn_model = freeze_bn if isinstance(freeze_bn, torch.nn.Module) else None

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        check_scope(group["gamma"], "gamma")
        check_count(group["L"], "L")
        check_scope(group["inner_lr"], "inner_lr")
        check_nonnegative_float(group["noise"], "noise")
        check_alpha(group["alpha"])
        check_nonnegative_float(group["inner_momentum"], "inner_momentum")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "base_optimizer"):
            self._check_group(self.param_groups[-1])

    # ------------------------------------------------------------------ batch norm
    def _bn_snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._bn_model is None:
            return []
        saved = []
        for m in self._bn_model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._NormBase):
                for name in _BN_BUFFERS:
                    buf = getattr(m, name, None)
                    if isinstance(buf, torch.Tensor):
                        saved.append((buf, buf.clone()))
        return saved

    # ------------------------------------------------------------------ the algorithm
    def _prepare(self) -> list[dict[str, Any]]:
        """Per group: the tensors of this outer step and the resolved hyper-parameters."""
        work = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            if not params:
                continue
            gamma = resolve(group["gamma"], self.outer_step, "gamma")
            bufs_needed = group["inner_momentum"] > 0
            anchors, disps, avgs, bufs = [], [], [], []
            for p in params:
                st = self.state[p]
                if "anchor" not in st or st["anchor"].shape != p.shape:
                    st["anchor"] = torch.empty_like(p, memory_format=torch.preserve_format)
                    st["displacement"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["average"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if bufs_needed and "inner_buffer" not in st:
                    st["inner_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                anchors.append(st["anchor"])
                disps.append(st["displacement"])
                avgs.append(st["average"])
                if bufs_needed:
                    bufs.append(st["inner_buffer"])
            foreach = self._use_foreach(params)
            F.copy_(anchors, params, foreach)
            F.zero_(disps, foreach)
            F.zero_(avgs, foreach)
            F.zero_(bufs, foreach)
            work.append(dict(group=group, params=params, anchors=anchors, disps=disps, avgs=avgs,
                             bufs=bufs if bufs_needed else None, gamma=gamma, foreach=foreach))
        return work

    def _inner_update(self, w: dict[str, Any]) -> None:
        group = w["group"]
        lr = resolve(group["inner_lr"], self.outer_step, "inner_lr")
        grads = F.grads_or_zeros(w["params"])
        F.inner_step_(w["disps"], grads, w["bufs"], gamma=w["gamma"], lr=lr,
                      momentum=group["inner_momentum"], foreach=w["foreach"])
        if group["noise"] > 0:
            scale = math.sqrt(2.0 * lr * group["noise"])
            F.add_noise_(w["disps"], scale, self.generator_for(w["params"][0].device))
        F.running_average_(w["avgs"], w["disps"], group["alpha"], w["foreach"])

    def _smoothed_gradient(self, closure: Closure) -> float:
        work = self._prepare()
        if not work:
            return self._call(closure, lambda: f"outer step {self.outer_step} (no trainable parameters)")
        n_inner = max(w["group"]["L"] for w in work)
        losses: list[float] = []
        bn_saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        try:
            for step in range(n_inner):
                losses.append(self._call(
                    closure, lambda: f"inner step {step + 1} of {n_inner} (outer step {self.outer_step})"))
                if step == 0:
                    bn_saved = self._bn_snapshot()
                for w in work:
                    L = w["group"]["L"]
                    if step >= L:
                        continue
                    self._inner_update(w)
                    if step < L - 1:  # the next evaluation point y = x + d
                        F.add_into_(w["params"], w["anchors"], w["disps"], w["foreach"])
                    else:
                        F.copy_(w["params"], w["anchors"], w["foreach"])
        except BaseException:
            for w in work:
                F.copy_(w["params"], w["anchors"], w["foreach"])
            raise
        finally:
            for buf, value in bn_saved:
                buf.copy_(value)
        grads: list[torch.Tensor] = []
        for w in work:
            scale = -1.0 if w["group"]["scale_by_gamma"] else -1.0 / w["gamma"]
            grads += F.set_grads_(w["params"], w["avgs"], scale, w["foreach"])
        self.stats = {
            "loss": losses[0],
            "inner_loss": sum(losses) / len(losses),
            "grad_norm": F.global_norm(grads),
            "gamma": work[0]["gamma"],
        }
        return losses[0]


class EntropySGD(LocalEntropy):
    """Entropy-SGD (thesis Algorithm 2): :class:`LocalEntropy` over SGD with Nesterov momentum.

    ``EntropySGD(params, lr, gamma, ...)`` is ``LocalEntropy(params, torch.optim.SGD, gamma,
    ..., lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=...)``.
    Momentum and weight decay act on the outer update only; the inner loop (``L`` Langevin
    steps of size ``inner_lr`` at temperature ``noise = 1/beta``, averaged with weight
    ``alpha``) restarts from ``x`` every outer step.  See :class:`LocalEntropy` for the
    equations, the statistics and the thesis settings.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        gamma: float | Any,
        L: int = 20,
        inner_lr: float = 0.1,
        noise: float = 0.0,
        alpha: float = 0.75,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        inner_momentum: float = 0.0,
        scale_by_gamma: bool = False,
        freeze_bn: bool | torch.nn.Module = False,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, torch.optim.SGD, gamma, L=L, inner_lr=inner_lr, noise=noise, alpha=alpha,
                         inner_momentum=inner_momentum, scale_by_gamma=scale_by_gamma, freeze_bn=freeze_bn,
                         generator=generator, foreach=foreach, **sgd_kwargs(lr, momentum, nesterov, weight_decay))


class HJ(LocalEntropy):
    """The inviscid Hamilton-Jacobi optimizer (thesis 4.6.1.2): Local Entropy at ``beta = inf``.

    No noise and the last inner iterate (``alpha = 0``), ``L = 5`` by default: the inner
    loop runs ``L`` steps of gradient descent on ``y -> f(y) + |y - x|^2 / (2 gamma)`` from
    ``y = x``, and the outer step applies SGD (Nesterov) to ``g = (x - y_L)/gamma``, which
    tends to ``grad u(x, gamma) = (x - prox_{gamma f}(x))/gamma`` of the Hopf-Lax solution
    ``u_t = -1/2 |grad u|^2`` as ``L`` grows (for ``inner_lr < 2/(Lip(grad f) + 1/gamma)``).
    On ``f = x^T Q x / 2`` the limit is ``(gamma Q + I)^{-1} Q x`` (thesis Lemma 4.4).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        gamma: float | Any,
        L: int = 5,
        inner_lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        inner_momentum: float = 0.0,
        scale_by_gamma: bool = False,
        freeze_bn: bool | torch.nn.Module = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, torch.optim.SGD, gamma, L=L, inner_lr=inner_lr, noise=0.0, alpha=0.0,
                         inner_momentum=inner_momentum, scale_by_gamma=scale_by_gamma, freeze_bn=freeze_bn,
                         foreach=foreach, **sgd_kwargs(lr, momentum, nesterov, weight_decay))
