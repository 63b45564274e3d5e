"""The wrapper shape shared by the smoothing optimizers (Local Entropy, HJ, Heat, Trivialized).

A wrapper owns a *base optimizer* (any ``torch.optim.Optimizer`` class) built over the
same ``param_groups`` dictionaries, as SAM does: a learning-rate scheduler attached to
the wrapper drives the base optimizer, and every hyper-parameter of a group (``lr``,
``gamma``, ...) lives in one dictionary.  A subclass implements
:meth:`SmoothingWrapper._smoothed_gradient`, which calls the closure as often as it
needs, leaves the parameters at the point ``x`` they had on entry and writes the
gradient the base optimizer must apply into ``p.grad``.

State and checkpoints
---------------------
``state_dict()`` holds the wrapper's per-parameter state, the shared ``param_groups``,
the base optimizer's own ``state_dict`` (under ``"base"``), the number of outer steps
taken (``"outer_step"``) and the random generator's state (``"generator"``).
``load_state_dict`` restores all of them and *re-shares* the groups with the base
optimizer (``torch.optim.Optimizer.load_state_dict`` builds new group dictionaries; a
wrapper that forgot to re-share them would let the scheduler drive a stale copy: SAM's
issue 34).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from hjsmooth.optim._checks import as_loss

Closure = Callable[[], Any]


def _default_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from torch's default generator (so ``torch.manual_seed`` fixes it)."""
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator(device=device).manual_seed(seed)


class SmoothingWrapper(Optimizer):
    """Base class: a base optimizer applied to a smoothed gradient computed with a closure.

    Subclass contract: set ``self._foreach`` and implement ``_smoothed_gradient(closure)``
    returning the loss at ``x`` (a float), with ``p.grad`` holding the smoothed gradient and
    the parameters holding ``x`` on return.  Statistics go into ``self.stats`` (floats).
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[Optimizer],
        defaults: dict[str, Any],
        *,
        generator: torch.Generator | None = None,
        foreach: bool | None = None,
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, Optimizer)):
            raise TypeError(
                f"`base_optimizer` must be a torch.optim.Optimizer class (e.g. torch.optim.SGD), got {base_optimizer!r}"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        super().__init__(params, {**defaults, **base_kwargs})
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self._generator = generator
        self._foreach = foreach
        self.outer_step = 0
        self.stats: dict[str, float] = {}

    # ------------------------------------------------------------------ pieces for subclasses
    def _use_foreach(self, tensors: list[torch.Tensor]) -> bool:
        if self._foreach is not None:
            return bool(self._foreach)
        return all(t.is_cuda for t in tensors) and bool(tensors)

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def generator_for(self, device: torch.device) -> torch.Generator:
        """The optimizer's random generator (created on ``device`` on first use when none was given)."""
        if self._generator is None:
            self._generator = _default_generator(device)
        return self._generator

    def _call(self, closure: Closure, where: Callable[[], str]) -> float:
        with torch.enable_grad():
            loss = closure()
        return as_loss(loss, where)

    def _smoothed_gradient(self, closure: Closure) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ torch.optim interface
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> float:  # type: ignore[override]
        """One outer step: compute the smoothed gradient with ``closure``, then step the base optimizer.

        Parameters
        ----------
        closure : callable
            Draws a fresh minibatch, zeroes the gradients, runs forward and backward
            and returns the loss.  Required.

        Returns
        -------
        float
            The loss the closure returned at the current weights ``x`` (first call).
        """
        if closure is None:
            raise TypeError(
                f"{type(self).__name__}.step needs a closure (it evaluates the loss several times per step): "
                "pass `closure`, a function that draws a minibatch, zeroes the gradients, runs forward and "
                "backward and returns the loss"
            )
        if not callable(closure):
            raise TypeError(f"`closure` must be callable, got {type(closure).__name__}")
        loss = self._smoothed_gradient(closure)
        self.base_optimizer.step()
        self.outer_step += 1
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base_optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer (and so to this wrapper, which shares its groups)."""
        if not hasattr(self, "base_optimizer"):  # called from Optimizer.__init__
            super().add_param_group(param_group)
            return
        for key, value in self.defaults.items():
            param_group.setdefault(key, value)
        self.base_optimizer.add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["base"] = self.base_optimizer.state_dict()
        sd["outer_step"] = self.outer_step
        if self._generator is not None:
            sd["generator"] = {"device": str(self._generator.device), "state": self._generator.get_state()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        base = state_dict.pop("base", None)
        outer_step = state_dict.pop("outer_step", 0)
        gen = state_dict.pop("generator", None)
        if base is None:
            raise ValueError("`state_dict` has no 'base' entry: it was not saved by a hjsmooth.optim wrapper")
        super().load_state_dict(state_dict)
        self.base_optimizer.load_state_dict(base)
        # torch rebuilt both lists of group dictionaries: share them again (SAM issue 34).
        self.base_optimizer.param_groups = self.param_groups
        self.outer_step = int(outer_step)
        if gen is not None:
            if self._generator is None:
                params = self._params()
                device = params[0].device if params else torch.device(gen["device"])
                self._generator = torch.Generator(device=device)
            self._generator.set_state(gen["state"])
