"""Vectorised replicas: every replica's loss and gradient in one ``torch.func.vmap`` call.

:class:`~hjsmooth.optim.ElasticSGD` and :class:`~hjsmooth.optim.Parle` keep ``n``
replicas of the weights stacked, ``state[p]["replicas"]`` of shape ``(n, *p.shape)``.
Given a closure ``closure(a)`` they evaluate the replicas one after another (``n L``
forward-backward passes per outer step of Parle).  Given a :class:`ReplicaBatches`
instead, they evaluate all local replicas at once: for stacked parameters
``theta = (theta^1, ..., theta^n)`` and one stacked minibatch ``(X, T)`` with
``X[a]``, ``T[a]`` replica ``a``'s shard,

.. math::

    \\ell_a = \\text{loss\\_fn}(\\text{model}(X_a;\\,\\theta^a),\\, T_a),\\qquad
    g_a = \\nabla_{\\theta^a} \\ell_a,\\qquad a = 1, \\dots, n,

with ``f(theta, x, t) = loss_fn(functional_call(model, theta, x), t)`` vmapped over the
leading (replica) dimension, and the gradients by one ordinary backward pass of
``sum_a ell_a`` (``ell_a`` depends on ``theta^a`` only, so slice ``a`` of the gradient is
``g_a``) or, with ``method="vmap_grad"``, as ``vmap(grad_and_value(f))``: one batched
forward-backward pass instead of ``n``.

Usage::

    def batches():                      # one minibatch per replica, stacked: (n, B, ...)
        idx = torch.randint(0, shard_size, (n, B))
        return shard_x[torch.arange(n)[:, None], idx], shard_y[torch.arange(n)[:, None], idx]

    rb = ReplicaBatches(model, torch.nn.functional.cross_entropy, batches)
    opt = Parle(model.parameters(), lr=0.1, gamma=0.1, rho=1.0, n=n, L=5)
    opt.step(rb)                        # vmapped; opt.step(rb.sequential_closure(opt)) is the
                                        # same computation, one replica after another

Requirements: the model must be a pure function of its parameters and buffers during
the call, so BatchNorm layers (and any module that updates a buffer in place) must be in
eval mode, or built with ``track_running_stats=False``; random layers (dropout) need
``randomness="different"`` (and then no longer match the sequential path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, vmap

__all__ = ["ReplicaBatches"]

Batch = tuple[Any, torch.Tensor]
_RANDOMNESS = ("error", "different", "same")


class ReplicaBatches:
    """A model, a loss and a source of stacked per-replica minibatches, evaluated with ``vmap``.

    Pass an instance to ``ElasticSGD.step`` or ``Parle.step`` in place of the closure
    ``closure(a)``: each gradient evaluation then draws one stacked minibatch
    ``(inputs, targets) = batches()`` and computes, for every local replica ``a`` at once,

    .. math::

        \\ell_a = \\text{loss\\_fn}(\\text{model}(\\text{inputs}[a];\\,\\theta^a),\\, \\text{targets}[a]),
        \\qquad g_a = \\nabla_{\\theta^a} \\ell_a,

    with ``torch.func.functional_call`` and ``torch.func.vmap`` over the replica dimension
    (the gradients: see ``method``).  Replica ``a`` sees slice ``a`` of
    every batch: its own shard of the data (thesis section 5.5).

    Parameters
    ----------
    model : torch.nn.Module
        The model whose parameters the optimizer holds (the master ``x``).  Parameters of
        the model that are not in the optimizer enter as constants (their current values);
        parameters with ``requires_grad=False`` get no gradient and are not moved, as in
        the sequential path.
    loss_fn : callable
        ``loss_fn(output, target) -> scalar tensor`` for one replica's minibatch, e.g.
        ``torch.nn.functional.cross_entropy``.
    batches : callable
        ``batches() -> (inputs, targets)``, one fresh stacked minibatch per call:
        ``inputs`` a tensor of shape ``(n_local, B, ...)`` (or a tuple of such tensors, the
        model's positional arguments), ``targets`` a tensor of shape ``(n_local, B, ...)``.
        ``n_local`` is the number of replicas of the optimizer in this process: ``n``, or
        1 per rank with ``distributed=True``.
    randomness : {"error", "different", "same"}
        Passed to ``torch.func.vmap``: what random operations inside the model (dropout)
        do.  ``"error"`` (default) refuses them.
    chunk_size : int, optional
        Passed to ``torch.func.vmap``: evaluate this many replicas at a time (less memory).
    method : {"autograd", "vmap_grad"}
        How the gradients are formed.  ``"autograd"`` (default): the forward pass is
        vmapped and one ordinary backward pass differentiates ``sum_a ell_a`` with respect
        to the stacked parameters; since ``ell_a`` depends on ``theta^a`` only, the slice
        ``a`` of that gradient is ``g_a``.  ``"vmap_grad"``: ``vmap(grad_and_value(f))``,
        the backward pass under ``vmap`` too.  Both give the same numbers (the same
        batched kernels); ``"autograd"`` has less Python overhead per call (~30 % less
        for a small MLP on a CPU).

    Notes
    -----
    The parameters must be pure inputs of the model: a BatchNorm layer in training mode
    updates its running statistics in place, which ``vmap`` cannot do for a batch of
    replicas; :meth:`loss_and_grad` refuses it (call ``model.eval()``, or build the layer
    with ``track_running_stats=False`` so that it normalises with each replica's batch
    statistics).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
        batches: Callable[[], Batch],
        *,
        randomness: str = "error",
        chunk_size: int | None = None,
        method: str = "autograd",
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"`loss_fn` must be callable, got {type(loss_fn).__name__}")
        if not callable(batches):
            raise TypeError(
                f"`batches` must be callable (it returns one stacked minibatch per call), got {type(batches).__name__}"
            )
        if randomness not in _RANDOMNESS:
            raise ValueError(f"`randomness` must be one of {_RANDOMNESS}, got {randomness!r}")
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"`chunk_size` must be None or an integer >= 1, got {chunk_size!r}")
        if method not in ("autograd", "vmap_grad"):
            raise ValueError(f"`method` must be 'autograd' or 'vmap_grad', got {method!r}")
        self.method = method
        self.model = model
        self.loss_fn = loss_fn
        self.batches = batches
        self.randomness = randomness
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return (
            f"ReplicaBatches(model={type(self.model).__name__}, loss_fn={getattr(self.loss_fn, '__name__', '?')}, "
            f"randomness={self.randomness!r}, chunk_size={self.chunk_size!r}, method={self.method!r})"
        )

    # ------------------------------------------------------------------ checks
    def parameter_names(self, params: Sequence[torch.Tensor]) -> list[str]:
        """The model's names of ``params`` (the optimizer's parameters), matched by identity."""
        names = {id(p): name for name, p in self.model.named_parameters()}
        out = []
        for i, p in enumerate(params):
            if id(p) not in names:
                raise ValueError(
                    f"parameter {i} of the optimizer (shape {tuple(p.shape)}) is not a parameter of "
                    f"`model` ({type(self.model).__name__}) given to ReplicaBatches"
                )
            out.append(names[id(p)])
        return out

    def check_model(self) -> None:
        """Refuse modules that update buffers in place in the current mode (BatchNorm in training)."""
        for name, m in self.model.named_modules():
            if (
                isinstance(m, torch.nn.modules.batchnorm._NormBase)
                and m.training
                and m.track_running_stats
                and m.running_mean is not None
            ):
                raise ValueError(
                    f"ReplicaBatches cannot vmap `model`: its layer {name or '(root)'!r} ({type(m).__name__}) is in "
                    "training mode and would update its running statistics in place; call model.eval() (the layer "
                    "then uses its running statistics), build it with track_running_stats=False (each replica's "
                    "batch statistics), or use the sequential closure"
                )

    def draw(self, n: int) -> Batch:
        """One stacked minibatch from ``batches()``, checked by :meth:`check_batch`."""
        return self.check_batch(self.batches(), n)

    @staticmethod
    def check_batch(batch: Any, n: int | None = None) -> Batch:
        """``batch`` as ``(inputs, targets)``, every tensor with the same leading dimension (``n`` if given)."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(
                f"`batches()` must return a pair (inputs, targets), got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            )
        inputs, targets = batch
        many = isinstance(inputs, (tuple, list))
        pieces = list(inputs) if many else [inputs]
        labels = [f"inputs[{i}]" for i in range(len(pieces))] if many else ["inputs"]
        if not pieces:
            raise TypeError("`batches()` returned an empty tuple of inputs")
        for label, t in zip(labels + ["targets"], pieces + [targets]):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"`batches()` must return tensors; its {label} is a {type(t).__name__}")
            if n is None and t.dim() >= 1:
                n = int(t.shape[0])
            if t.dim() < 1 or t.shape[0] != n:
                raise ValueError(
                    f"`batches()` must stack one minibatch per local replica along dimension 0 "
                    f"(leading dimension {n}); its {label} has shape {tuple(t.shape)}"
                )
        return (tuple(pieces) if many else inputs), targets

    # ------------------------------------------------------------------ evaluation
    def loss_and_grad(
        self, stacked: Mapping[str, torch.Tensor], batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every replica's loss and gradient at the stacked parameters ``stacked``.

        Parameters
        ----------
        stacked : mapping of str to tensor
            Model parameter names to stacked values of shape ``(n, *p.shape)``; the
            model's other parameters enter with their current values.
        batch : (inputs, targets)
            A stacked minibatch (from :meth:`draw`), leading dimension ``n``.

        Returns
        -------
        losses : tensor of shape (n,)
            ``loss_fn(model(inputs[a]; stacked[.][a]), targets[a])``.
        grads : dict of str to tensor or None
            The gradient of ``losses[a]`` with respect to ``stacked[name][a]``, stacked,
            for every name of ``stacked``; ``None`` where the model's parameter has
            ``requires_grad=False`` or (``method="autograd"``) the loss does not depend on
            it, as a backward pass leaves ``.grad`` at ``None`` (``"vmap_grad"`` gives zeros).
        """
        if not stacked:
            raise ValueError("`stacked` is empty: there are no parameters to differentiate")
        self.check_model()
        n = next(iter(stacked.values())).shape[0]
        for name, t in stacked.items():
            if t.dim() < 1 or t.shape[0] != n:
                raise ValueError(
                    f"stacked parameter {name!r} has shape {tuple(t.shape)}; expected leading "
                    f"dimension {n} (the number of replicas)"
                )
        model_params = dict(self.model.named_parameters())
        frozen = [k for k in stacked if k in model_params and not model_params[k].requires_grad]
        free = {k: v for k, v in stacked.items() if k not in frozen}
        consts: dict[str, torch.Tensor] = {k: p.detach() for k, p in model_params.items() if k not in stacked}
        buffers = dict(self.model.named_buffers())
        inputs, targets = batch
        model, loss_fn = self.model, self.loss_fn

        def one_replica(
            free_a: dict[str, torch.Tensor], frozen_a: dict[str, torch.Tensor], x: Any, t: torch.Tensor
        ) -> torch.Tensor:
            args = x if isinstance(x, tuple) else (x,)
            out = functional_call(model, (free_a, frozen_a, consts, buffers), args)
            loss = loss_fn(out, t)
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(f"`loss_fn` must return a scalar tensor for one replica's minibatch, got {shape}")
            return loss

        frozen_vals = {k: stacked[k].detach() for k in frozen}
        try:
            if self.method == "vmap_grad":
                batched = vmap(
                    grad_and_value(one_replica),
                    in_dims=(0, 0, 0, 0),
                    randomness=self.randomness,
                    chunk_size=self.chunk_size,
                )
                with torch.enable_grad():
                    grads, losses = batched(free, frozen_vals, inputs, targets)
            else:  # "autograd": vmapped forward, one ordinary backward of sum_a loss_a
                leaves = {k: v.detach().requires_grad_(True) for k, v in free.items()}
                forward = vmap(
                    one_replica, in_dims=(0, 0, 0, 0), randomness=self.randomness, chunk_size=self.chunk_size
                )
                with torch.enable_grad():
                    losses = forward(leaves, frozen_vals, inputs, targets)
                    if not isinstance(losses, torch.Tensor) or tuple(losses.shape) != (n,):
                        raise ValueError(
                            f"`loss_fn` must return a scalar tensor per replica, got losses of "
                            f"shape {tuple(getattr(losses, 'shape', ()))}"
                        )
                    values = list(leaves.values())
                    found: tuple[torch.Tensor | None, ...]
                    if losses.requires_grad:
                        found = torch.autograd.grad(losses.sum(), values, allow_unused=True)
                    else:
                        found = (None,) * len(values)
                grads = dict(zip(leaves, found))
        except RuntimeError as exc:
            raise RuntimeError(
                f"ReplicaBatches: the vmapped evaluation of {type(model).__name__} failed ({exc}). The model must be "
                "a pure function of its parameters and buffers: no in-place updates of buffers (BatchNorm in "
                "training mode), no random layers unless randomness='different'"
            ) from exc
        return losses.detach(), {k: grads.get(k) for k in stacked}

    # ------------------------------------------------------------------ the sequential equivalent
    def sequential_closure(self, optimizer: Any = None) -> Callable[[int], torch.Tensor]:
        """The closure ``closure(a)`` that computes the same as the vmapped path, one replica at a time.

        The ``k``-th call for replica ``a`` evaluates slice ``a`` (its local index) of the
        ``k``-th stacked batch drawn from ``batches()``: the batches are drawn once and
        kept until every local replica has used them.  The closure zeroes the gradients
        (``optimizer.zero_grad()``, or ``model.zero_grad()`` without an optimizer), runs
        ``loss_fn(model(inputs[a]), targets[a])``, calls ``backward`` and returns the loss.
        ``opt.step(rb.sequential_closure(opt))`` and ``opt.step(rb)`` thus follow the same
        trajectory, up to the rounding of batched against unbatched kernels.

        Parameters
        ----------
        optimizer : ElasticSGD or Parle, optional
            Gives the local replicas' ids (``optimizer.replica_ids``: ``range(n)``, or
            ``[rank]`` with ``distributed=True``); without it replica ``a`` has local index ``a``.
        """
        ids = list(getattr(optimizer, "replica_ids", [])) if optimizer is not None else None
        cache: dict[int, list[Any]] = {}  # call number -> [batch, replicas that used it]
        calls: dict[int, int] = {}

        def closure(a: int) -> torch.Tensor:
            if ids and a not in ids:
                raise ValueError(f"replica {a!r} is not local to this optimizer (local replicas {ids})")
            local = ids.index(a) if ids else a
            k = calls.get(a, 0)
            calls[a] = k + 1
            if k not in cache:
                cache[k] = [self.check_batch(self.batches(), len(ids) if ids else None), 0]
            entry = cache[k]
            inputs, targets = entry[0]
            n_batch = int(targets.shape[0])
            if not 0 <= local < n_batch:
                raise ValueError(f"replica index {a!r} has no slice in a batch of {n_batch} replicas")
            entry[1] += 1
            if entry[1] >= n_batch:
                del cache[k]
            x = tuple(t[local] for t in inputs) if isinstance(inputs, tuple) else (inputs[local],)
            if optimizer is not None:
                optimizer.zero_grad()
            else:
                self.model.zero_grad()
            loss = self.loss_fn(self.model(*x), targets[local])
            loss.backward()
            return loss

        return closure
