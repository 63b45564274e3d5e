r"""The thesis' experiments as named recipes: an optimizer and its learning-rate schedule, ready to run.

Each recipe returns a :class:`Recipe`: the optimizer built with the settings the thesis
states (and, where it is silent, those of the original code, said so in the docstring),
a ``torch.optim.lr_scheduler`` to step once per *outer* step, and the length of the
thesis' run.  ``steps_per_epoch`` is the number of minibatches in one pass over the
training set (``len(train_loader)``): the original codes count an "epoch" as that many
outer steps, each of which consumes ``L`` minibatch gradients (``n L`` for Parle): ``L`` calls of
``optimizer.step()`` in a plain loop, or one ``optimizer.step_outer(closure)``.

Conventions (docs/conventions.md): ``gamma`` is the PDE time, the coupling is ``1/gamma``,
scoping *decreases* ``gamma``.  Chapter 3 of the thesis states its scope as ``gamma = 10^4``
decreasing by a factor ``1 + 10^-3`` per parameter update (the original code's coupling
``g0 = 10^-4`` growing by ``1 + 10^-3``); in this library that is ``gamma_0 = 10^4``, not
``10^-4`` (with ``gamma = 10^-4`` the coupling step ``inner_lr/gamma = 10^3`` makes the inner
loop diverge at the first outer step).

Usage::

    r = recipes.entropy_sgd_chapter3(model.parameters(), steps_per_epoch=len(loader))
    for k in range(r.outer_steps):
        r.optimizer.step_outer(closure)    # L closure calls
        r.scheduler.step()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from hjsmooth.optim import schedules
from hjsmooth.optim.elastic import Parle
from hjsmooth.optim.heat import Heat
from hjsmooth.optim.local_entropy import HJ, EntropySGD
from hjsmooth.validation import check_choice, check_count

__all__ = [
    "Recipe",
    "entropy_sgd_chapter3",
    "entropy_sgd_section_4_6",
    "hj_section_4_6",
    "heat_section_4_6",
    "parle_section_5_3",
]


@dataclass
class Recipe:
    """An optimizer, its learning-rate schedule (stepped once per outer step) and the thesis' run length.

    Attributes
    ----------
    optimizer : torch.optim.Optimizer
    scheduler : torch.optim.lr_scheduler.LRScheduler
        Step it after every outer step (``optimizer.step_outer(closure)``, or every ``calls_per_step``-th
        ``optimizer.step()``).
    outer_steps : int
        Outer steps of the thesis' run (``epochs * steps_per_epoch``).
    calls_per_step : int
        Closure calls per outer step (per replica for Parle: ``L``; ``n L`` in all).
    source : str
        Where in the thesis the settings come from.
    """

    optimizer: Any
    scheduler: Any
    outer_steps: int
    calls_per_step: int
    source: str


def _at_epochs(opt: Any, epochs: Iterable[int], steps_per_epoch: int, factor: float) -> Any:
    return torch.optim.lr_scheduler.MultiStepLR(opt, [e * steps_per_epoch for e in epochs], gamma=factor)


def entropy_sgd_chapter3(
    params: Iterable[Any], steps_per_epoch: int, dataset: str = "mnist", generator: torch.Generator | None = None
) -> Recipe:
    r"""Entropy-SGD with scoping, thesis section 3.3 (MNIST ``mnistfc``/``lenet``, CIFAR-10 ``allcnn``).

    ``L = 20`` Langevin steps of size ``eta = 0.1`` with Nesterov momentum 0.9 in both loops
    (coupling added after the inner momentum, inner buffer zeroed every step, as the
    original entropy-sgd code does), averaging weight 0.75 (the thesis' ``alpha = 0.25``
    weighs the new sample), outer step ``x <- x - eta' (x - <y>)`` (``scale_by_gamma``) with
    ``eta' = 1``, and scoping ``gamma_k = gamma_0 / 1.001^k``:

    ================  ======================================  ==========================
    ``dataset``       ``mnist``                               ``cifar10``
    ================  ======================================  ==========================
    ``gamma_0``       ``10^4``                                ``30``
    ``noise``         ``10^-6``                               ``10^-8``
    ``eta'``          1, divided by 10 after epoch 2          1, divided by 5 every 4 epochs
    epochs            5                                       10
    ================  ======================================  ==========================
    """
    check_choice(dataset, "dataset", ("mnist", "cifar10"))
    steps_per_epoch = check_count(steps_per_epoch, "steps_per_epoch")
    mnist = dataset == "mnist"
    gamma = schedules.exponential(1e4 if mnist else 30.0, 1.0 - 1.0 / 1.001)
    opt = EntropySGD(
        params,
        lr=1.0,
        gamma=gamma,
        L=20,
        inner_lr=0.1,
        noise=1e-6 if mnist else 1e-8,
        alpha=0.75,
        momentum=0.9,
        nesterov=True,
        inner_momentum=0.9,
        inner_nesterov=True,
        coupling_in_momentum=False,
        keep_inner_buffer=False,
        scale_by_gamma=True,
        generator=generator,
    )
    if mnist:
        sched = _at_epochs(opt, [2], steps_per_epoch, 0.1)
    else:
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4 * steps_per_epoch, gamma=0.2)
    epochs = 5 if mnist else 10
    return Recipe(opt, sched, epochs * steps_per_epoch, 20, f"thesis section 3.3 ({dataset})")


def _section_4_6_inner() -> dict[str, Any]:
    """Section 4.6.1: the hamilton-jacobi code's inner loop (coupling in the Nesterov buffer, kept)."""
    return dict(
        inner_lr=0.1,
        inner_momentum=0.9,
        inner_nesterov=True,
        coupling_in_momentum=True,
        keep_inner_buffer=True,
        scale_by_gamma=True,
        momentum=0.9,
        nesterov=True,
    )


def entropy_sgd_section_4_6(
    params: Iterable[Any], steps_per_epoch: int, generator: torch.Generator | None = None
) -> Recipe:
    """Entropy-SGD of thesis section 4.6.1.1: ``L = 20``, ``noise = 10^-8``, ``alpha = 0.75``, ``eta_y = 0.1``.

    The outer ``eta = 0.1`` is divided by 5 every 3 epochs, the gradient scaled by ``gamma``
    (section 3.2.3).  The thesis does not state ``gamma`` for chapter 4; the original
    hamilton-jacobi code's default coupling ``g0 = 10^-4`` is ``gamma = 10^4`` here, without
    scoping.  Its inner loop puts the coupling into the Nesterov buffer and keeps the
    buffer across outer steps.  Run length: the thesis' Table 4.1 reports 80-160 effective
    epochs, i.e. 4-8 epochs of ``L = 20`` calls per minibatch: 8 epochs here.
    """
    steps_per_epoch = check_count(steps_per_epoch, "steps_per_epoch")
    opt = EntropySGD(
        params, lr=0.1, gamma=1e4, L=20, noise=1e-8, alpha=0.75, generator=generator, **_section_4_6_inner()
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3 * steps_per_epoch, gamma=0.2)
    return Recipe(opt, sched, 8 * steps_per_epoch, 20, "thesis section 4.6.1.1")


def hj_section_4_6(params: Iterable[Any], steps_per_epoch: int) -> Recipe:
    """HJ of thesis section 4.6.1.2: ``L = 5``, no noise, the last inner iterate (``alpha = 0``).

    Otherwise as :func:`entropy_sgd_section_4_6` (``eta = eta_y = 0.1``, ``eta`` divided by 5
    every 3 epochs, ``gamma = 10^4`` from the original code, scaled gradient).  Run length:
    Table 4.1 reports 70-145 effective epochs: 25 epochs of ``L = 5`` calls here.
    """
    steps_per_epoch = check_count(steps_per_epoch, "steps_per_epoch")
    opt = HJ(params, lr=0.1, gamma=1e4, L=5, **_section_4_6_inner())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3 * steps_per_epoch, gamma=0.2)
    return Recipe(opt, sched, 25 * steps_per_epoch, 5, "thesis section 4.6.1.2")


def heat_section_4_6(
    params: Iterable[Any], steps_per_epoch: int, gamma: float = 1e-4, generator: torch.Generator | None = None
) -> Recipe:
    """HEAT of thesis section 4.6.1.3 ((4.43)): the average gradient at ``L = 20`` perturbations of variance ``gamma``.

    SGD with Nesterov momentum 0.9 outside, ``eta = 0.1`` divided by 5 every 3 epochs (the
    schedule of section 4.6.1.1).  The thesis states neither ``gamma`` nor its scoping for
    HEAT; ``gamma = 10^-4`` (perturbations of standard deviation 0.01 per weight, absolute
    as in (4.43)) is this library's choice, below the weight scale of the thesis' networks.
    Run length: Table 4.1 reports 75-200 effective epochs: 8 epochs of ``L = 20`` calls here.
    """
    steps_per_epoch = check_count(steps_per_epoch, "steps_per_epoch")
    opt = Heat(
        params,
        lr=0.1,
        gamma=gamma,
        L=20,
        noise=1.0,
        momentum=0.9,
        nesterov=True,
        perturbation="absolute",
        generator=generator,
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3 * steps_per_epoch, gamma=0.2)
    return Recipe(opt, sched, 8 * steps_per_epoch, 20, "thesis section 4.6.1.3")


def parle_section_5_3(
    params: Iterable[Any],
    steps_per_epoch: int,
    n: int | None = 3,
    dataset: str = "mnist",
    distributed: bool = False,
    generator: Any = None,
) -> Recipe:
    r"""Parle of thesis section 5.3.2 with the schedules of 5.4 (``n = 3`` replicas by default).

    ``L = 25``, averaging weight 0.75 (the thesis' ``alpha = 0.25``), Nesterov momentum 0.9
    for the inner steps and the replicas, the normalised learning rates of 5.3.2 (inner
    ``eta^(0) = eta_0 = 0.1``), and the scoping (5.10) with ``B = steps_per_epoch``:
    ``gamma_k = 100 (1 - 1/(2B))^k`` clipped at 1 and ``rho_k = (1 - 1/(2B))^k`` clipped at
    0.1, ``k`` the outer step.  The inner loop puts the coupling into its Nesterov buffer and
    keeps the buffer (the parle code; ``y`` and ``<y>`` restart at ``x^a`` as (5.8) says).

    =============  ================================  ===========================================
    ``dataset``    ``mnist`` (lenet, 5.4.2)          ``cifar`` (WRN-28-10, 5.4.3)
    =============  ================================  ===========================================
    ``eta``        0.1, divided by 10 after epoch 2  0.1, divided by 5 at epochs 2, 4, 6
    weight decay   0                                 ``5 10^-4``
    epochs         5 (the parle code's default)      10
    =============  ================================  ===========================================
    """
    check_choice(dataset, "dataset", ("mnist", "cifar"))
    steps_per_epoch = check_count(steps_per_epoch, "steps_per_epoch")
    mnist = dataset == "mnist"
    opt = Parle(
        params,
        lr=0.1,
        gamma=schedules.parle(100.0, steps_per_epoch, minimum=1.0),
        rho=schedules.parle(1.0, steps_per_epoch, minimum=0.1),
        n=None if distributed else n,
        L=25,
        inner_lr=0.1,
        noise=0.0,
        alpha=0.75,
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0 if mnist else 5e-4,
        inner_momentum=0.9,
        inner_nesterov=True,
        coupling_in_momentum=True,
        keep_inner_buffer=True,
        distributed=distributed,
        generator=generator,
    )
    sched = _at_epochs(opt, [2] if mnist else [2, 4, 6], steps_per_epoch, 0.1 if mnist else 0.2)
    return Recipe(opt, sched, (5 if mnist else 10) * steps_per_epoch, 25 * opt.n, f"thesis section 5.3.2 ({dataset})")
