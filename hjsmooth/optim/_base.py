"""What every hjsmooth optimizer shares: closures, validation, random generators, checkpoints, no lost weights.

:class:`ClosureOptimizer` is the base of the wrappers (:class:`SmoothingWrapper`: Local
Entropy, HJ, Heat, Trivialized-SGD) and of the replicated optimizers (Elastic-SGD, Parle).
Its contract for a subclass:

* ``hyperparameters``: a table ``name -> check`` (:mod:`._checks`); every param group is
  validated once, in :meth:`~ClosureOptimizer.add_param_group`, and
  :meth:`~ClosureOptimizer._check_group` may warn about settings known to diverge;
* ``_attach_group(group)``: store a validated group (the default appends it as
  ``torch.optim.Optimizer`` does);
* ``_outer_step(closure)``: one outer step.  It runs inside :meth:`~ClosureOptimizer._transaction`,
  which, when the step raises, puts back the random generators, the BatchNorm statistics
  and whatever :meth:`~ClosureOptimizer._persistent_tensors` lists (buffers kept across
  outer steps); the subclass itself puts the weights back at the point where the step began.
  ``outer_step`` advances only when the step succeeds.

The closure is evaluated with :meth:`~ClosureOptimizer._evaluate` (its loss checked: a
real scalar, finite) and the gradients it produced with :meth:`~ClosureOptimizer._check_grads`
(one fused reduction per evaluation).

State and checkpoints
---------------------
``state_dict()`` holds what ``torch.optim`` keeps (per-parameter state, ``param_groups``)
plus ``"outer_step"`` and the state of the random generators (``"generators"``);
``load_state_dict`` restores all of them.  Scratch tensors (anchors, inner iterates) live
outside ``state`` and are not saved.  ``copy.deepcopy`` and ``pickle`` give an optimizer
that continues exactly as the original would (deep-copy it together with its model).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as F
from hjsmooth.optim._checks import NonFiniteError, as_loss, validate_group

Closure = Callable[..., Any]
Where = Callable[[], str]

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
#: attributes torch.optim and its schedulers attach to an optimizer instance; never copied or pickled
_TRANSIENT = ("step", "_opt_called", "_scratch", "_warned")


def default_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from torch's default generator (so ``torch.manual_seed`` fixes it)."""
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator(device=device).manual_seed(seed)


def check_freeze_bn(freeze_bn: Any) -> torch.nn.Module | None:
    """``freeze_bn``: ``None``/``False`` or the model whose BatchNorm layers to freeze."""
    if freeze_bn is None or freeze_bn is False:
        return None
    if isinstance(freeze_bn, torch.nn.Module):
        return freeze_bn
    raise TypeError(f"`freeze_bn` must be None, False or the model (a torch.nn.Module) whose BatchNorm layers "
                    f"to freeze, got {freeze_bn!r:.80}")


class BatchNormFreeze:
    """Snapshots of the running statistics of the BatchNorm layers of a model (none without one)."""

    def __init__(self, model: torch.nn.Module | None) -> None:
        self.model = model

    def snapshot(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(buffer, copy)`` of every running statistic."""
        if self.model is None:
            return []
        saved = []
        for m in self.model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._NormBase):
                for name in _BN_BUFFERS:
                    buf = getattr(m, name, None)
                    if isinstance(buf, torch.Tensor):
                        saved.append((buf, buf.clone()))
        return saved

    @staticmethod
    def restore(saved: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for buf, value in saved:
            buf.copy_(value)


class ClosureOptimizer(Optimizer):
    """Base class of the hjsmooth optimizers (see the module docstring for the subclass contract).

    Parameters
    ----------
    params : iterable of tensors or dicts
        The parameters or param groups.
    defaults : dict
        Default hyper-parameters (validated with each group that uses them).
    generator : torch.Generator or sequence of them, optional
        Source of the random numbers (one, or one per local replica).  By default they
        are created when first needed, on the parameters' device, seeded from torch's
        default generator.
    n_generators : int
        How many generators to create when none is given.
    foreach : bool, optional
        Use the ``torch._foreach_*`` kernels (default: when every parameter is on CUDA).
    freeze_bn : torch.nn.Module, optional
        The model whose BatchNorm running statistics only the first closure call of each
        outer step may update.
    """

    #: ``name -> check`` of the hyper-parameters of a param group
    hyperparameters: ClassVar[Mapping[str, Callable[[Any, str], Any]]] = {}

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], *,
                 generator: torch.Generator | Sequence[torch.Generator] | None = None, n_generators: int = 1,
                 foreach: bool | None = None, freeze_bn: Any = None) -> None:
        self._generators = _as_generators(generator)
        self._n_generators = n_generators
        self._foreach = foreach
        self._bn = BatchNormFreeze(check_freeze_bn(freeze_bn))
        self.outer_step = 0
        self.stats: dict[str, float] = {}
        self._scratch: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._warned: set[int] = set()
        super().__init__(params, defaults)

    # ------------------------------------------------------------------ param groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate ``param_group`` (once) and add it, as ``torch.optim.Optimizer.add_param_group`` does."""
        if not isinstance(param_group, dict):
            raise TypeError(f"`param_group` must be a dict, got {type(param_group).__name__}")
        index = len(self.param_groups)
        filled = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        validate_group(filled, self.hyperparameters, index)
        self._check_group(filled, index)
        param_group.update({k: v for k, v in filled.items() if k in self.hyperparameters or k in param_group})
        self._attach_group(param_group)

    def _attach_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        """Warn about settings known to diverge (nothing by default)."""

    # ------------------------------------------------------------------ pieces for subclasses
    def _use_foreach(self, tensors: Sequence[torch.Tensor]) -> bool:
        if self._foreach is not None:
            return bool(self._foreach)
        return bool(tensors) and all(t.is_cuda for t in tensors)

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def generator_for(self, device: torch.device, index: int = 0) -> torch.Generator:
        """The random generator (of local replica ``index``), created on ``device`` on first use."""
        if self._generators is None:
            self._generators = [default_generator(device) for _ in range(self._n_generators)]
        return self._generators[index if len(self._generators) > 1 else 0]

    def _needs_generator(self) -> bool:
        """Whether the next step draws random numbers (its generators are then created before it)."""
        return False

    def _scratch_for(self, p: torch.Tensor, keys: Sequence[str], like: torch.Tensor | None = None
                     ) -> dict[str, torch.Tensor]:
        """Per-parameter scratch tensors (not saved in ``state_dict``), shaped as ``like`` (default ``p``)."""
        like = p if like is None else like
        st = self._scratch.get(p)
        if st is None:
            st = self._scratch[p] = {}
        for key in keys:
            t = st.get(key)
            if t is None or t.shape != like.shape or t.dtype != like.dtype or t.device != like.device:
                st[key] = torch.zeros_like(like, memory_format=torch.contiguous_format)
        return st

    def _require_closure(self, closure: Any, how: str) -> None:
        if closure is None:
            raise TypeError(f"{type(self).__name__}.step needs a closure ({how}): pass `closure`, a function "
                            "that draws a fresh minibatch, zeroes the gradients, runs forward and backward and "
                            "returns the loss")
        if not callable(closure):
            raise TypeError(f"`closure` must be callable, got {type(closure).__name__}")

    def _evaluate(self, closure: Closure, args: tuple[Any, ...], where: Where) -> tuple[Any, float]:
        """Call ``closure(*args)`` with gradients enabled; return its value and the checked float loss."""
        with torch.enable_grad():
            raw = closure(*args)
        return raw, as_loss(raw, where)

    @staticmethod
    def _check_grads(grads: Sequence[torch.Tensor], where: Where) -> float:
        """:class:`NonFiniteError` if any gradient holds NaN or inf (one fused reduction); else ``sum |g|^2``."""
        norm_sq = F.finite_norm_sq(grads)
        if norm_sq is None:
            raise NonFiniteError(f"a gradient holds NaN or inf at {where()} (the loss was finite); the weights "
                                 "were put back where the step began")
        return norm_sq

    def _trainable(self, group: dict[str, Any]) -> list[torch.Tensor]:
        """The parameters of ``group`` that take part in this outer step: ``requires_grad`` and a gradient.

        Called after the first closure call; a dense gradient is required.
        """
        out = []
        for i, p in enumerate(group["params"]):
            if not p.requires_grad or p.grad is None:
                continue
            if p.grad.is_sparse or p.grad.layout != torch.strided:
                index = self._group_index(group)
                raise TypeError(f"parameter {i} of param group {index} (shape {tuple(p.shape)}) has a sparse "
                                f"gradient; {type(self).__name__} needs dense gradients (use a dense layer, e.g. "
                                "torch.nn.Embedding(sparse=False), or torch.optim.SparseAdam for that parameter)")
            out.append(p)
        return out

    def _group_index(self, group: dict[str, Any]) -> int:
        return next(i for i, g in enumerate(self.param_groups) if g is group)

    @staticmethod
    def _grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Real views of the gradients of ``params``; a parameter without one counts as gradient 0."""
        return [F.real(p.grad) if p.grad is not None else torch.zeros_like(F.real(p)) for p in params]

    def _persistent_tensors(self) -> list[torch.Tensor]:
        """Tensors changed in place during a step that must be put back if it fails (none by default)."""
        return []

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Run a step; if it raises, put back the generators, BatchNorm statistics and persistent tensors.

        Yields a list that the step fills with the BatchNorm snapshot to restore on success
        (taken after its first closure call).
        """
        if self._generators is None and self._needs_generator():
            params = self._params()
            self.generator_for(params[0].device if params else torch.device("cpu"))
        gens = [g.get_state() for g in self._generators] if self._generators else []
        bn_before = self._bn.snapshot()
        kept = [(t, t.clone()) for t in self._persistent_tensors()]
        bn_after: list[tuple[torch.Tensor, torch.Tensor]] = []
        try:
            yield bn_after
        except BaseException:
            for g, s in zip(self._generators or [], gens):
                g.set_state(s)
            for t, saved in kept:
                t.copy_(saved)
            self._bn.restore(bn_before)
            raise
        self._bn.restore(bn_after)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["outer_step"] = self.outer_step
        if self._generators is not None:
            sd["generators"] = [{"device": str(g.device), "state": g.get_state()} for g in self._generators]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        outer_step = state_dict.pop("outer_step", None)
        gens = state_dict.pop("generators", None)
        extra = self._pop_extra_state(state_dict)
        super().load_state_dict(state_dict)
        self._load_extra_state(extra)
        self.outer_step = int(outer_step or 0)
        self._scratch = {}
        if gens is not None:
            params = self._params()
            device = params[0].device if params else torch.device(gens[0]["device"])
            self._generators = [torch.Generator(device=device) for _ in gens]
            for g, saved in zip(self._generators, gens):
                g.set_state(saved["state"])

    def _pop_extra_state(self, state_dict: dict[str, Any]) -> Any:
        """Remove and return the subclass's own entries of ``state_dict`` (before torch loads the rest)."""
        return None

    def _load_extra_state(self, extra: Any) -> None:
        """Restore what :meth:`_pop_extra_state` returned (after torch loaded the rest)."""

    # ------------------------------------------------------------------ copy and pickle
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._scratch = {}
        self._warned = set()


def _as_generators(generator: Any) -> list[torch.Generator] | None:
    if generator is None:
        return None
    gens = [generator] if isinstance(generator, torch.Generator) else list(generator) \
        if isinstance(generator, (list, tuple)) else None
    if not gens or not all(isinstance(g, torch.Generator) for g in gens):
        raise TypeError(f"`generator` must be a torch.Generator, a sequence of them or None, got {generator!r:.80}")
    return gens


class SmoothingWrapper(ClosureOptimizer):
    """A base optimizer (any ``torch.optim.Optimizer`` class) applied to a smoothed gradient, as SAM is built.

    The base optimizer is built over the same ``param_groups`` dictionaries, so a
    learning-rate scheduler attached to the wrapper drives it, and every hyper-parameter
    of a group (``lr``, ``gamma``, ...) lives in one dictionary.  ``load_state_dict``
    restores the base optimizer's state (``state_dict()["base"]``) and shares the groups
    again (``torch.optim.Optimizer.load_state_dict`` builds new dictionaries; a wrapper that
    forgot would let the scheduler drive a stale copy: SAM's issue 34).

    Subclass contract: ``_smoothed_gradient(closure)`` calls the closure as often as it
    needs, leaves the parameters where they were and writes the gradient the base
    optimizer must apply into ``p.grad`` (``None`` for parameters that take no part);
    it returns the loss to report.
    """

    def __init__(self, params: Iterable[Any], base_optimizer: type[Optimizer], defaults: dict[str, Any], *,
                 generator: torch.Generator | None = None, foreach: bool | None = None, freeze_bn: Any = None,
                 base_foreach: bool | None = None, **base_kwargs: Any) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise TypeError(f"`base_optimizer` must be a torch.optim.Optimizer class (e.g. torch.optim.SGD), "
                            f"got {base_optimizer!r}")
        if base_foreach is not None and "foreach" in inspect.signature(base_optimizer).parameters:
            base_kwargs["foreach"] = bool(base_foreach)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        super().__init__(params, {**defaults, **base_kwargs}, generator=generator, foreach=foreach,
                         freeze_bn=freeze_bn)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        for key, value in self.base_optimizer.defaults.items():
            self.defaults.setdefault(key, value)

    def _attach_group(self, param_group: dict[str, Any]) -> None:
        if "base_optimizer" not in self.__dict__:  # from Optimizer.__init__
            super()._attach_group(param_group)
        else:
            self.base_optimizer.add_param_group(param_group)

    def _smoothed_gradient(self, closure: Closure, bn_after: list[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        """One outer step: compute the smoothed gradient with ``closure``, then step the base optimizer.

        Parameters
        ----------
        closure : callable
            Draws a fresh minibatch, zeroes the gradients, runs forward and backward
            and returns the loss.  Required.

        Returns
        -------
        The loss of the first closure call, at the current weights ``x``, as the closure
        returned it (``Heat``: the mean of its perturbed losses).
        """
        self._require_closure(closure, "it evaluates the loss several times per step")
        with self._transaction() as bn_after:
            loss = self._smoothed_gradient(closure, bn_after)
        self.base_optimizer.step()
        self.outer_step += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["base"] = self.base_optimizer.state_dict()
        return sd

    def _pop_extra_state(self, state_dict: dict[str, Any]) -> Any:
        if "base" not in state_dict:
            raise ValueError("`state_dict` has no 'base' entry: it was not saved by a hjsmooth.optim wrapper")
        return state_dict.pop("base")

    def _load_extra_state(self, extra: Any) -> None:
        self.base_optimizer.load_state_dict(extra)
        # torch rebuilt both lists of group dictionaries: share them again (SAM issue 34).
        self.base_optimizer.param_groups = self.param_groups
