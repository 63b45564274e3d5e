"""What every hjsmooth optimizer shares: one gradient per ``step()``, the anchor, checkpoints, no lost weights.

The calling convention is torch's
---------------------------------
``opt.step()`` after ``loss.backward()`` (or ``opt.step(closure)``, the closure called once,
as ``torch.optim.SGD`` does) consumes the one gradient now in ``p.grad``: a *call*.  An
optimizer's outer step is a fixed cycle of calls (``L`` inner steps of Entropy-SGD, ``L``
perturbations of HEAT, one call per replica of Elastic-SGD...); :attr:`~SmoothingOptimizer.position`
counts the calls made in the current one.  Between calls the model's parameters hold the
point where the next gradient must be taken (the inner iterate ``y``, HEAT's perturbed
point ``x + eps``, the next replica's point); the point the optimizer descends, the *anchor*
``x``, is kept by the optimizer.  :meth:`~SmoothingOptimizer.eval` /
:meth:`~SmoothingOptimizer.train` (the schedule-free optimizers' convention, which the
transformers ``Trainer`` and Accelerate call themselves) and the context manager
:meth:`~SmoothingOptimizer.at_anchor` put ``x`` into the parameters for evaluation or export
and the evaluation point back afterwards.

:meth:`~SmoothingOptimizer.step_outer` runs the calls of one whole outer step with a closure
that draws a fresh minibatch per call (``closure(a)`` for replica ``a`` of Elastic-SGD and
Parle): the same calls, so the same trajectory as ``step()`` on the same minibatches.

Subclass contract
-----------------
* ``hyperparameters``: a table ``name -> check`` (:mod:`._checks`); every param group is
  validated once, in :meth:`~SmoothingOptimizer.add_param_group`;
  ``_check_group(group, index)`` may warn about settings known to diverge;
* ``_calls_per_outer()``: the number of calls of the outer step about to begin;
* ``_begin()``: at the first call of an outer step (the gradient at ``x`` in ``p.grad``),
  set up the step; return ``False`` when no parameter takes part (the call is then a no-op);
* ``_consume(position)``: use the gradient of call ``position`` and place the next
  evaluation point; return ``True`` when the outer step is complete (the model then holds
  the first evaluation point of the next one);
* ``_abort()``: put the parameters back at the anchor after a failed call and drop the step;
* ``_anchor_pairs()``: ``(parameter, anchor)`` for every parameter that does not hold its
  anchor now;
* ``_live_scratch()``: the per-parameter tensors the current outer step needs to continue
  (saved in ``state_dict`` and restored by ``load_state_dict``);
  ``_persistent_tensors()``: tensors kept across outer steps that a failed step must restore.

State and checkpoints
---------------------
``state_dict()`` holds what ``torch.optim`` keeps (per-parameter state, ``param_groups``) plus
``outer_step``, ``position``, the mode (``"train"``/``"eval"``), the random generators and,
in the middle of an outer step, the tensors needed to continue it.  ``model.state_dict()``
and ``opt.state_dict()`` taken together, at any call, resume exactly in fresh objects
(in any order of loading).  ``copy.deepcopy`` and ``pickle`` continue exactly too.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from hjsmooth.optim import _foreach as ops
from hjsmooth.optim._checks import NonFiniteError, as_loss, validate_group

Closure = Callable[..., Any]
Where = Callable[[], str]

_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
#: attributes torch.optim and its schedulers attach to an optimizer instance, and per-step caches: never
#: copied or pickled
_TRANSIENT = ("step", "_opt_called", "_warned")
#: the key under which the evaluation point of a parameter is saved while the optimizer is in eval mode
EVAL_POINT = "eval_point"
_MODES = ("train", "eval")


def default_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from torch's default generator (so ``torch.manual_seed`` fixes it).

    When ``torch.distributed`` is initialised with more than one process, the seed is rank 0's
    (one small broadcast): under ``DistributedDataParallel`` every rank then draws the same
    noise and the ranks' weights stay equal even when each rank seeded torch differently.
    """
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator(device=device).manual_seed(agreed_seed(seed, device))


def agreed_seed(seed: int, device: torch.device, group: Any = None) -> int:
    """``seed`` of rank 0 of the process group ``group`` (default: the world), or ``seed`` itself outside
    ``torch.distributed``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return seed
    backend = dist.get_backend(group)
    where = device if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([seed], dtype=torch.int64, device=where)
    src = dist.get_global_rank(group, 0) if group is not None else 0
    dist.broadcast(t, src=src, group=group)
    return int(t.item())


def check_freeze_bn(freeze_bn: Any) -> torch.nn.Module | None:
    """``freeze_bn``: ``None``/``False`` or the model whose BatchNorm layers to freeze."""
    if freeze_bn is None or freeze_bn is False:
        return None
    if isinstance(freeze_bn, torch.nn.Module):
        return freeze_bn
    raise TypeError(
        f"`freeze_bn` must be None, False or the model (a torch.nn.Module) whose BatchNorm layers "
        f"to freeze, got {freeze_bn!r:.80}"
    )


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


@dataclass
class _Snapshot:
    """What a failed call puts back: generators, kept buffers, BatchNorm statistics of the first call."""

    generators: list[torch.Tensor] = field(default_factory=list)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    bn: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


def under_grad_scaler() -> bool:
    """Whether the caller is ``torch.amp.GradScaler.step`` (which has unscaled the gradients already)."""
    frame = sys._getframe(1)
    for _ in range(8):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return False
        if frame.f_code.co_name in ("_maybe_opt_step", "step") and "grad_scaler" in frame.f_code.co_filename:
            return True
    return False


def unhooked_step(optimizer: Optimizer) -> Any:
    """``optimizer.step()`` without the global and per-instance step hooks (an internal optimizer's step).

    ``torch.optim.Optimizer`` wraps ``step`` so that the hooks registered with
    ``register_optimizer_step_pre_hook`` fire; the wrapper optimizer's own step fires them once.
    """
    step = type(optimizer).step
    return getattr(step, "__wrapped__", step)(optimizer)


class SmoothingOptimizer(Optimizer):
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
        default generator (rank 0's under ``torch.distributed``).
    n_generators : int
        How many generators to create when none is given.
    foreach : bool, optional
        Use the ``torch._foreach_*`` kernels (default: when every parameter is on CUDA).
    freeze_bn : torch.nn.Module, optional
        The model whose BatchNorm running statistics only the first call of each outer
        step may update.
    """

    #: ``name -> check`` of the hyper-parameters of a param group
    hyperparameters: ClassVar[Mapping[str, Callable[[Any, str], Any]]] = {}

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        n_generators: int = 1,
        foreach: bool | None = None,
        freeze_bn: Any = None,
    ) -> None:
        self._generators = _as_generators(generator)
        self._n_generators = n_generators
        self._foreach = foreach
        self._bn = BatchNormFreeze(check_freeze_bn(freeze_bn))
        #: completed outer steps (the argument of the schedules)
        self.outer_step = 0
        #: calls (gradients) consumed in the current outer step; 0 between outer steps
        self.position = 0
        self.stats: dict[str, float] = {}
        self._scratch: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._warned: set[Any] = set()
        self._mode = "train"
        self._stash: dict[torch.Tensor, torch.Tensor] = {}
        self._snapshot: _Snapshot | None = None
        self._losses: list[float] = []
        self._work: Any = None
        self._initial_momentum: dict[int, float] = {}
        validate_group(dict(defaults), self.hyperparameters, 0)  # bad arguments before bad params, as torch's
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
        _refuse_dtensors(param_group, index)
        self._attach_group(param_group)
        self._initial_momentum[index] = float(self.param_groups[-1].get("momentum", 0.0))

    def _attach_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)

    def _check_group(self, group: dict[str, Any], index: int) -> None:
        """Warn about settings known to diverge (nothing by default)."""

    # ------------------------------------------------------------------ the calling convention
    @property
    def calls_per_outer_step(self) -> int:
        """The number of calls (gradients) of the current (or next) outer step."""
        return self._calls_per_outer()

    def step(self, closure: Closure | None = None) -> Any:
        """Consume one gradient: the one in ``p.grad``, or the one ``closure`` computes (called once).

        Every :attr:`calls_per_outer_step`-th call completes an outer step.  Afterwards the
        parameters hold the point where the next gradient must be taken; :meth:`at_anchor`
        (or :meth:`eval`) puts the anchor ``x`` into them.

        Parameters
        ----------
        closure : callable, optional
            Zeroes the gradients, runs forward and backward on a minibatch and returns the
            loss, as for any ``torch.optim`` optimizer.  Called once, with gradients enabled.

        Returns
        -------
        What the closure returned (``None`` without a closure).

        Raises
        ------
        NonFiniteError
            On a NaN or infinite loss or gradient: the parameters are back at the anchor
            ``x`` of the outer step, and the optimizer's state is as it was before it.
        """
        if self._mode != "train":
            raise RuntimeError(
                f"{type(self).__name__}.step was called in eval mode: the parameters hold the anchor "
                "x, not the evaluation point; call opt.train() before the forward pass (or evaluate "
                "inside `with opt.at_anchor():`)"
            )
        loss = value = None
        if closure is not None:
            if not callable(closure):
                raise TypeError(f"`closure` must be callable, got {type(closure).__name__}")
            if under_grad_scaler():
                raise RuntimeError(
                    "GradScaler.step(opt, closure): the closure would compute scaled gradients after the scaler "
                    "unscaled the old ones; compute the loss, call scaler.scale(loss).backward(), then "
                    "scaler.step(opt) without a closure"
                )
            loss, value = self._evaluate(closure)
        with torch.no_grad():
            self._call(value)
        return loss

    def step_outer(self, closure: Any) -> Any:
        """Complete one outer step, calling ``closure`` once per call (a fresh minibatch each time).

        The same calls as :meth:`step` after ``closure()``: given the same minibatches the two
        conventions follow the same trajectory.  Started in the middle of an outer step, it
        completes that one.

        Returns
        -------
        The loss of the first call, as the closure returned it (see the subclass for what
        it reports).
        """
        if not callable(closure):
            raise TypeError(
                f"{type(self).__name__}.step_outer needs a closure that draws a fresh minibatch, zeroes "
                "the gradients, runs forward and backward and returns the loss; got "
                f"{type(closure).__name__}"
            )
        start = self.outer_step
        losses = []
        while self.outer_step == start:
            losses.append(self.step(closure))
            if self.position == 0 and self.outer_step == start:
                break  # no parameter had a gradient: nothing to do, as for torch.optim.SGD
        return self._outer_loss(losses)

    def _outer_loss(self, losses: list[Any]) -> Any:
        """What :meth:`step_outer` returns (the first loss, at the anchor ``x``, by default)."""
        return losses[0]

    def _evaluate(self, closure: Closure) -> tuple[Any, float | None]:
        """Call the closure once with gradients enabled; return its value and the checked float loss."""
        args = self._closure_args(closure)
        with torch.enable_grad():
            raw = closure(*args)
        try:
            value = as_loss(raw, self._where)
        except NonFiniteError:
            with torch.no_grad():
                self._fail()
            raise
        return raw, value

    def _closure_args(self, closure: Closure) -> tuple[Any, ...]:
        return ()

    def _where(self) -> str:
        """The call being made, for error messages."""
        return (
            f"call {self.position + 1} of {self._calls_per_outer()} of outer step {self.outer_step} of "
            f"{type(self).__name__}"
        )

    def _call(self, loss: float | None) -> None:
        """One gradient: begin an outer step at position 0, consume, complete it at its last call."""
        if self.position == 0:
            self._warn_about_changed_momentum()
            self._snapshot = self._take_snapshot()
            if not self._begin():
                self._snapshot = None
                return
            self._snapshot.bn = self._bn.snapshot()
            self._losses = []
        elif self._snapshot is not None:
            self._bn.restore(self._snapshot.bn)  # only the first call of the outer step updates them
        if loss is not None:
            self._losses.append(loss)
        try:
            done = self._consume(self.position)
        except BaseException:
            self._fail()
            raise
        if done:
            self.position = 0
            self.outer_step += 1
            self._snapshot = None
        else:
            self.position += 1

    def _fail(self) -> None:
        """Put back the parameters (at x), generators, kept buffers and statistics; start the outer step afresh."""
        snap = self._snapshot
        if self.position > 0 or self._work is not None:
            self._abort()
        if snap is not None:
            for g, s in zip(self._generators or [], snap.generators):
                g.set_state(s)
            for t, saved in snap.kept:
                t.copy_(saved)
            self._bn.restore(snap.bn)
        self.position = 0
        self._snapshot = None
        self._work = None

    def _take_snapshot(self) -> _Snapshot:
        if self._generators is None and self._needs_generator():
            params = self._params()
            self.generator_for(params[0].device if params else torch.device("cpu"))
        gens = [g.get_state() for g in self._generators] if self._generators else []
        return _Snapshot(generators=gens, kept=[(t, t.clone()) for t in self._persistent_tensors()])

    def _warn_about_changed_momentum(self) -> None:
        """A ``UserWarning`` when something (a scheduler) raised a group's momentum far past its construction value.

        ``OneCycleLR(cycle_momentum=True)`` writes momenta of 0.85-0.95 into every group; an
        optimizer built without momentum (``HJ``: ``x <- y_L``) then takes steps
        ``1/(1 - momentum)`` = up to 20 times larger than it was built for.
        """
        for index, group in enumerate(self.param_groups):
            if ("momentum", index) in self._warned or "momentum" not in group:
                continue
            old = self._initial_momentum.setdefault(index, float(group["momentum"]))
            new = float(group["momentum"])
            if new < 1.0 and (1.0 - old) > 2.0 * (1.0 - new):
                self._warned.add(("momentum", index))
                warnings.warn(
                    f"{type(self).__name__} param group {index}: momentum is {new:g}, set after construction (by a "
                    f"scheduler such as OneCycleLR with cycle_momentum=True?); the optimizer was built with "
                    f"momentum {old:g}, so its outer steps are now {(1 - old) / (1 - new):.3g} times larger. "
                    "Pass cycle_momentum=False to the scheduler, or build the optimizer with the momentum you want.",
                    UserWarning,
                    stacklevel=4,
                )

    # ------------------------------------------------------------------ subclass hooks
    def _calls_per_outer(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _begin(self) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _consume(self, position: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def _abort(self) -> None:
        """Put the parameters back at the anchor and drop the outer step (nothing to do by default)."""

    def _anchor_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(parameter, anchor)`` for the parameters not holding their anchor now (none by default)."""
        return []

    def _live_scratch(self) -> dict[torch.Tensor, dict[str, torch.Tensor]]:
        """The scratch tensors the current outer step needs to continue (none by default)."""
        return {}

    def _after_load(self) -> None:
        """Rebuild what the loaded scratch implies (nothing by default)."""

    def _persistent_tensors(self) -> list[torch.Tensor]:
        """Tensors changed in place during a step that must be put back if it fails (none by default)."""
        return []

    def _needs_generator(self) -> bool:
        """Whether the next step draws random numbers (its generators are then created before it)."""
        return False

    # ------------------------------------------------------------------ the anchor
    @torch.no_grad()
    def eval(self) -> None:
        """Put the anchor ``x`` into the parameters (for evaluation or export); :meth:`train` undoes it.

        The evaluation point the parameters held is kept (and saved by :meth:`state_dict`).
        :meth:`step` refuses to run in eval mode.  Calling it twice is harmless.
        """
        if self._mode == "eval":
            return
        self._stash = {}
        for p, x in self._anchor_pairs():
            self._stash[p] = p.detach().clone()
            p.copy_(x)
        self._mode = "eval"

    @torch.no_grad()
    def train(self) -> None:
        """Put the evaluation point back into the parameters after :meth:`eval` (harmless in train mode)."""
        if self._mode == "train":
            return
        for p, y in self._stash.items():
            p.copy_(y)
        self._stash = {}
        self._mode = "train"

    @property
    def mode(self) -> str:
        """``"train"`` (the parameters hold the next evaluation point) or ``"eval"`` (they hold the anchor ``x``)."""
        return self._mode

    @contextlib.contextmanager
    def at_anchor(self) -> Iterator[None]:
        """``with opt.at_anchor():`` the parameters hold the anchor ``x``; afterwards the evaluation point again.

        Evaluate, checkpoint or export the weights the optimizer descends, at any call::

            with opt.at_anchor():
                val_loss = evaluate(model)
                torch.save(model.state_dict(), "weights_at_x.pt")
        """
        was_training = self._mode == "train"
        self.eval()
        try:
            yield
        finally:
            if was_training:
                self.train()

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
            self._generators = self._default_generators(device)
        return self._generators[index if len(self._generators) > 1 else 0]

    def _default_generators(self, device: torch.device) -> list[torch.Generator]:
        return [default_generator(device) for _ in range(self._n_generators)]

    def _scratch_for(
        self, p: torch.Tensor, keys: Sequence[str], like: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-parameter scratch tensors (in ``state_dict`` only while live), shaped as ``like`` (default ``p``)."""
        like = p if like is None else like
        st = self._scratch.get(p)
        if st is None:
            st = self._scratch[p] = {}
        for key in keys:
            t = st.get(key)
            if t is None or t.shape != like.shape or t.dtype != like.dtype or t.device != like.device:
                st[key] = torch.zeros_like(like, memory_format=torch.contiguous_format)
        return st

    def _check_grads(self, grads: Sequence[torch.Tensor], where: Where | None = None) -> float:
        """:class:`NonFiniteError` if any gradient holds NaN or inf (one fused reduction); else ``sum |g|^2``."""
        norm_sq = ops.finite_norm_sq(grads)
        if norm_sq is None:
            raise NonFiniteError(
                f"a gradient holds NaN or inf at {(where or self._where)()}; the weights were put "
                "back at the anchor x of the outer step"
            )
        return norm_sq

    def _trainable(self, group: dict[str, Any]) -> list[torch.Tensor]:
        """The parameters of ``group`` that take part in this outer step: ``requires_grad`` and a gradient.

        Called at the first call of an outer step; a dense gradient is required.
        """
        out = []
        for i, p in enumerate(group["params"]):
            if not p.requires_grad or p.grad is None:
                continue
            if p.grad.is_sparse or p.grad.layout != torch.strided:
                index = self._group_index(group)
                raise TypeError(
                    f"parameter {i} of param group {index} (shape {tuple(p.shape)}) has a sparse "
                    f"gradient; {type(self).__name__} needs dense gradients (use a dense layer, e.g. "
                    "torch.nn.Embedding(sparse=False), or torch.optim.SparseAdam for that parameter)"
                )
            out.append(p)
        return out

    def _group_index(self, group: dict[str, Any]) -> int:
        return next(i for i, g in enumerate(self.param_groups) if g is group)

    @staticmethod
    def _grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Real views of the gradients of ``params`` (read only); a parameter without one counts as gradient 0."""
        return [ops.real(p.grad) if p.grad is not None else torch.zeros_like(ops.real(p)) for p in params]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["outer_step"] = self.outer_step
        sd["position"] = self.position
        sd["mode"] = self._mode
        if self._generators is not None:
            sd["generators"] = [{"device": str(g.device), "state": g.get_state()} for g in self._generators]
        index = {id(p): i for i, p in enumerate(self._params())}
        extra: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for p, tensors in self._live_scratch().items():
            extra.setdefault(p, {}).update(tensors)
        for p, y in self._stash.items():
            extra.setdefault(p, {})[EVAL_POINT] = y
        state = dict(sd["state"])
        for p, tensors in extra.items():
            i = index[id(p)]
            state[i] = {**state.get(i, {}), **{f"scratch:{k}": v for k, v in tensors.items()}}
        sd["state"] = state
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the registered load hooks see the whole dictionary and the whole state.

        torch's own load runs its pre-hooks on what it is given and its post-hooks at its end; here the
        hjsmooth entries (position, scratch, generators, the base optimizer) are taken out before torch's
        load and restored after it, so the hooks run around the whole load instead.
        """
        state_dict = dict(state_dict)
        for pre_hook in list(self._optimizer_load_state_dict_pre_hooks.values()):
            returned = pre_hook(self, state_dict)
            if returned is not None:
                state_dict = dict(returned)
        with _load_hooks_suspended(self):
            self._load_state_dict(state_dict)
        for post_hook in list(self._optimizer_load_state_dict_post_hooks.values()):
            post_hook(self)

    def _load_state_dict(self, state_dict: dict[str, Any]) -> None:
        outer_step = state_dict.pop("outer_step", None)
        position = state_dict.pop("position", 0)
        mode = state_dict.pop("mode", "train")
        if mode not in _MODES:
            raise ValueError(f"`state_dict` has mode {mode!r}; expected one of {_MODES}")
        gens = state_dict.pop("generators", None)
        extra = self._pop_extra_state(state_dict)
        defaults = dict(self.defaults)  # torch's load adds flags of its own to the defaults: not to the groups
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # a state dict from before a hyper-parameter existed: its default
            for key, value in defaults.items():
                group.setdefault(key, value)
        self._load_extra_state(extra)
        self._scratch, self._stash = {}, {}
        for p, st in list(self.state.items()):
            if not isinstance(p, torch.Tensor) or not isinstance(st, dict):
                continue  # an entry a hook or the user keyed by something else: torch keeps it as it is
            for key in [k for k in st if isinstance(k, str) and k.startswith("scratch:")]:
                value = st.pop(key)
                name = key[len("scratch:") :]
                if name == EVAL_POINT:
                    self._stash[p] = value.clone()
                else:
                    self._scratch.setdefault(p, {})[name] = value.clone()
            if not st:
                del self.state[p]
        self.outer_step = int(outer_step or 0)
        self.position = int(position)
        self._mode = mode
        self._work = None
        self._snapshot = None
        self._losses = []
        if gens is not None:
            params = self._params()
            device = params[0].device if params else torch.device(gens[0]["device"])
            self._generators = [torch.Generator(device=device) for _ in gens]
            for g, saved in zip(self._generators, gens):
                g.set_state(saved["state"])
        if self.position > 0:
            self._snapshot = self._take_snapshot()
        self._after_load()

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
        self.__dict__.setdefault("_scratch", {})
        self.__dict__.setdefault("_stash", {})
        self.__dict__.setdefault("_losses", [])
        self.__dict__.setdefault("_initial_momentum", {})
        self.__dict__.setdefault("_work", None)
        self.__dict__.setdefault("_snapshot", None)
        self._warned = set()


#: kept for code written against the first versions of the library
ClosureOptimizer = SmoothingOptimizer


@contextlib.contextmanager
def _load_hooks_suspended(optimizer: Optimizer) -> Iterator[None]:
    """Within the block, ``torch.optim.Optimizer.load_state_dict`` of ``optimizer`` runs no load hooks."""
    pre, post = optimizer._optimizer_load_state_dict_pre_hooks, optimizer._optimizer_load_state_dict_post_hooks
    optimizer._optimizer_load_state_dict_pre_hooks = OrderedDict()
    optimizer._optimizer_load_state_dict_post_hooks = OrderedDict()
    try:
        yield
    finally:
        optimizer._optimizer_load_state_dict_pre_hooks = pre
        optimizer._optimizer_load_state_dict_post_hooks = post


def _as_generators(generator: Any) -> list[torch.Generator] | None:
    if generator is None:
        return None
    gens = (
        [generator]
        if isinstance(generator, torch.Generator)
        else list(generator)
        if isinstance(generator, (list, tuple))
        else None
    )
    if not gens or not all(isinstance(g, torch.Generator) for g in gens):
        raise TypeError(f"`generator` must be a torch.Generator, a sequence of them or None, got {generator!r:.80}")
    return gens


def _refuse_dtensors(group: dict[str, Any], index: int) -> None:
    """FSDP2 (``fully_shard``) parameters are DTensors: refused, naming the parameter."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return
    params = group["params"]
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    for i, p in enumerate(params):
        if isinstance(p, DTensor):
            raise TypeError(
                f"parameter {i} of param group {index} is a DTensor (the model is sharded by FSDP2's "
                "fully_shard): hjsmooth optimizers need whole parameters on every rank; wrap the model in "
                "DistributedDataParallel instead, or use ElasticSGD/Parle with distributed=True"
            )


class SmoothingWrapper(SmoothingOptimizer):
    """A base optimizer (any ``torch.optim.Optimizer`` class) applied to a smoothed gradient, as SAM is built.

    The base optimizer is built over the same ``param_groups`` dictionaries, so a
    learning-rate scheduler attached to the wrapper drives it, and every hyper-parameter
    of a group (``lr``, ``gamma``, ...) lives in one dictionary.  ``load_state_dict``
    restores the base optimizer's state (``state_dict()["base"]``), shares the groups again
    (``torch.optim.Optimizer.load_state_dict`` builds new dictionaries; a wrapper that forgot
    would let the scheduler drive a stale copy: SAM's issue 34) and fills in the flags a later
    torch added to the base optimizer (``fused``, ``differentiable``...).

    :meth:`_apply_base` hands the base optimizer the smoothed gradient through ``p.grad`` and
    puts the user's gradient tensors back afterwards, untouched; the base optimizer's step
    does not fire the global step hooks (the wrapper's own step does, once).
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer],
        defaults: dict[str, Any],
        *,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        freeze_bn: Any = None,
        base_foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise TypeError(
                f"`base_optimizer` must be a torch.optim.Optimizer class (e.g. torch.optim.SGD), got {base_optimizer!r}"
            )
        if base_foreach is not None and "foreach" in inspect.signature(base_optimizer).parameters:
            base_kwargs["foreach"] = bool(base_foreach)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        super().__init__(params, {**defaults, **base_kwargs}, generator=generator, foreach=foreach, freeze_bn=freeze_bn)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        for key, value in self.base_optimizer.defaults.items():
            self.defaults.setdefault(key, value)

    def _attach_group(self, param_group: dict[str, Any]) -> None:
        if "base_optimizer" not in self.__dict__:  # from Optimizer.__init__
            super()._attach_group(param_group)
        else:
            self.base_optimizer.add_param_group(param_group)

    def _apply_base(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        """One step of the base optimizer with ``grads`` as the gradients of ``params`` (others: none).

        ``grads`` are tensors of the parameters' shapes and dtypes; the base optimizer may
        overwrite them.  Every parameter's ``.grad`` is what it was before, afterwards.
        """
        taking = {id(p) for p in params}
        saved: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        for p in self._params():
            saved.append((p, p.grad))
            if id(p) not in taking:
                p.grad = None
        for p, g in zip(params, grads):
            p.grad = g
        try:
            unhooked_step(self.base_optimizer)
        finally:
            for p, before in saved:
                p.grad = before

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        base = self.base_optimizer.state_dict()
        for group in base["param_groups"]:  # torch's copies of the shared groups: the names stay at the top level
            group.pop("param_names", None)
        sd["base"] = base
        return sd

    def _pop_extra_state(self, state_dict: dict[str, Any]) -> Any:
        if "base" not in state_dict:
            raise ValueError("`state_dict` has no 'base' entry: it was not saved by a hjsmooth.optim wrapper")
        return state_dict.pop("base")

    def _load_extra_state(self, extra: Any) -> None:
        self.base_optimizer.load_state_dict(extra)
        # torch rebuilt both lists of group dictionaries: share them again (SAM issue 34), keeping the flags the
        # base optimizer's __setstate__ filled in for a state dict saved before they existed
        for mine, base in zip(self.param_groups, self.base_optimizer.param_groups):
            for key, value in base.items():
                mine.setdefault(key, value)
        self.base_optimizer.param_groups = self.param_groups


def mean_loss(losses: Sequence[Any]) -> Any:
    """The mean of the closure's losses: a detached tensor if they are tensors, else a float (``None`` if unknown)."""
    known = [v for v in losses if v is not None]
    if not known:
        return None
    if isinstance(known[0], torch.Tensor):
        return torch.stack([v.detach().reshape(()) for v in known]).mean()
    return sum(float(v) for v in known) / len(known)


def finite_mean(values: Sequence[float]) -> float:
    """The mean of ``values``, NaN for none."""
    return sum(values) / len(values) if values else math.nan
