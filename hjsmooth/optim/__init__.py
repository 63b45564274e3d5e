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
:mod:`.schedules`         scoping schedules for ``gamma`` and ``rho``
:mod:`.recipes`           the thesis' experiments as named, ready-made optimizers
========================  ==================================================================

Every hyper-parameter has a default (``EntropySGD(model.parameters())`` trains a small
network about as well as SGD with Nesterov momentum for the same number of gradient
evaluations).  All take ``step(closure)``: the closure draws a fresh minibatch, zeroes the
gradients, runs forward and backward and returns the loss (``closure(a)`` for replica
``a`` in ``ElasticSGD`` and ``Parle``).  See ``docs/optimizers.md``.
"""

from __future__ import annotations

from hjsmooth.optim import recipes, schedules
from hjsmooth.optim._checks import NonFiniteError
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
    "schedules",
    "recipes",
]
