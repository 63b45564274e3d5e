"""PyTorch optimizers that descend PDE-smoothed losses.

========================  ==================================================================
:class:`LocalEntropy`     wrapper over any ``torch.optim`` optimizer: Local Entropy gradient
                          ``(x - <y>)/gamma`` from an inner Langevin loop (viscous HJ)
:class:`EntropySGD`       ``LocalEntropy`` over SGD with Nesterov momentum (Algorithm 2)
:class:`HJ`               inviscid limit: no noise, last inner iterate
:class:`HeatWrapper`      wrapper: average gradient at Gaussian perturbations (heat equation)
:class:`Heat`             ``HeatWrapper`` over SGD with Nesterov momentum ((4.43))
:class:`ElasticSGD`       ``n`` replicas coupled to a master ((5.4)); one process or
                          ``torch.distributed``
:class:`Parle`            Entropy-SGD replicas coupled elastically ((5.8))
:class:`ReplicaBatches`   model + loss + stacked per-replica batches: ``ElasticSGD``/``Parle``
                          evaluate all replicas at once with ``torch.func.vmap``
:class:`TrivializedSGD`   gradient plus an annealed fixed random field (Algorithm 1)
:class:`NonFiniteError`   raised on a NaN/inf loss or gradient (weights and state kept)
:func:`at_anchor`         ``with at_anchor(opt):`` the model holds the anchor ``x`` (any optimizer)
:mod:`.schedules`         scoping schedules for ``gamma`` and ``rho``
:mod:`.recipes`           the thesis' experiments as named, ready-made optimizers
========================  ==================================================================

Every hyper-parameter has a default (``EntropySGD(model.parameters())`` trains a small
network about as well as SGD with Nesterov momentum for the same number of gradient
evaluations).  The calling convention is torch's: ``loss.backward(); opt.step()`` (or
``opt.step(closure)``, the closure called once) consumes one minibatch gradient; every
``opt.calls_per_outer_step``-th call completes an outer step.  Between calls the model holds
the point where the next gradient is to be taken; ``with opt.at_anchor():`` (or
:func:`at_anchor` for any optimizer) evaluates or saves at the anchor ``x``.
``opt.step_outer(closure)`` makes all the calls of one outer step (``closure(a)`` for replica
``a`` of ``ElasticSGD`` and ``Parle``).  See ``docs/optimizers.md`` and ``docs/training_loops.md``.
"""

from __future__ import annotations

from hjsmooth.optim import recipes, schedules
from hjsmooth.optim._checks import NonFiniteError
from hjsmooth.optim.anchor import at_anchor
from hjsmooth.optim.elastic import ElasticSGD, Parle
from hjsmooth.optim.heat import Heat, HeatWrapper
from hjsmooth.optim.local_entropy import HJ, EntropySGD, LocalEntropy
from hjsmooth.optim.trivialized import TrivializedSGD
from hjsmooth.optim.vectorized import ReplicaBatches

__all__ = [
    "LocalEntropy",
    "EntropySGD",
    "HJ",
    "Heat",
    "HeatWrapper",
    "ElasticSGD",
    "Parle",
    "ReplicaBatches",
    "TrivializedSGD",
    "NonFiniteError",
    "at_anchor",
    "schedules",
    "recipes",
]
