"""One loss landscape to measure: a model, its loss and its data, checked once.

Every diagnostic starts with ``problem = LossProblem(model, loss_fn, data)``.  It holds

* the model's trainable parameters (``requires_grad=True``, in ``model.parameters()`` order) as a
  :class:`ParameterSpace`, a flat vector of dimension ``d``;
* the data as a list of :class:`Batch` objects on the model's device, floating tensors in the model's
  dtype, each weighted by its share ``n_b / N`` of the samples, so that the full-data loss is
  ``f(x) = sum_b (n_b / N) loss_fn(model(inputs_b), targets_b)``;

and runs the model in evaluation mode (``model.eval()``, training flags restored afterwards), so that
dropout is off and batch-norm statistics are neither used from the batch nor updated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Batch", "ParameterSpace", "LossProblem", "evaluation_mode", "as_batches"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Batch:
    """One batch ``(inputs, targets)`` on the model's device and its weight ``n_b / N``."""

    inputs: torch.Tensor
    targets: torch.Tensor
    weight: float

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0])


class ParameterSpace:
    """The trainable parameters of a model seen as one flat vector of dimension ``dim``.

    Flat vectors are in the order of ``model.parameters()`` (frozen ones left out), each tensor
    flattened in C order.  Lists of parameter-shaped tensors follow the same order.
    """

    def __init__(self, named: Sequence[tuple[str, torch.Tensor]]):
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.dim = int(sum(self.numels))

    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """One flat vector from parameter-shaped tensors."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Parameter-shaped views of a flat vector (or of the last axis of a batch of them)."""
        lead = tuple(flat.shape[:-1])
        return [part.reshape(lead + shape) for part, shape in zip(torch.split(flat, self.numels, dim=-1), self.shapes)]

    def current(self) -> torch.Tensor:
        """The parameters now, as a new flat vector."""
        with torch.no_grad():
            return self.flatten([p.detach() for p in self.params]).clone()

    def as_dict(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` for ``torch.func.functional_call`` at the point ``flat``."""
        return dict(zip(self.names, self.unflatten(flat)))

    def check_tensors(self, tensors: Any, name: str) -> list[torch.Tensor]:
        """``tensors`` as parameter-shaped tensors of the model's device and dtype: a flat vector of
        length ``dim`` or a sequence of tensors shaped like the trainable parameters."""
        like = self.params[0]
        if isinstance(tensors, (torch.Tensor, np.ndarray)):
            flat = torch.as_tensor(tensors).to(device=like.device, dtype=like.dtype)
            if flat.ndim != 1 or flat.numel() != self.dim:
                raise ValueError(
                    f"`{name}` must be a flat vector of the {self.dim} trainable parameters or a list of "
                    f"parameter-shaped tensors, got a tensor of shape {tuple(flat.shape)}"
                )
            return self.unflatten(flat)
        try:
            items = list(tensors)
        except TypeError:
            raise TypeError(
                f"`{name}` must be a flat tensor or a list of parameter-shaped tensors, got {type(tensors).__name__}"
            ) from None
        if len(items) != len(self.shapes):
            raise ValueError(
                f"`{name}` must hold one tensor per trainable parameter ({len(self.shapes)}), got {len(items)}"
            )
        out = []
        for i, (item, shape) in enumerate(zip(items, self.shapes)):
            t = torch.as_tensor(item).to(device=like.device, dtype=like.dtype)
            if tuple(t.shape) != shape:
                raise ValueError(f"`{name}`[{i}] ({self.names[i]}) must have shape {shape}, got {tuple(t.shape)}")
            out.append(t)
        return out


@contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` in evaluation mode; put every submodule's ``training`` flag back afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _to_model(x: Any, device: torch.device, dtype: torch.dtype, what: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"`data`: {what} must be a tensor or an array, got {type(x).__name__}") from None
    if t.is_floating_point():
        t = t.to(device=device, dtype=dtype)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"`data`: {what} must be finite; it holds NaN or inf")
    elif t.is_complex():
        raise TypeError(f"`data`: {what} must be real, got dtype {t.dtype}")
    else:
        t = t.to(device=device)
    return t


def _is_single_batch(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (torch.Tensor, np.ndarray))


def as_batches(data: Any, device: torch.device, dtype: torch.dtype) -> list[Batch]:
    """``data`` (one batch ``(inputs, targets)`` or an iterable of them) as weighted batches on ``device``.

    An iterable is read once (a ``DataLoader`` or a generator is fine) and kept in memory.
    """
    if _is_single_batch(data):
        raw = [data]
    elif isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError("`data` must be a batch (inputs, targets) or an iterable of batches, got a single tensor")
    else:
        try:
            raw = list(data)
        except TypeError:
            raise TypeError(
                f"`data` must be a batch (inputs, targets) or an iterable of batches, got {type(data).__name__}"
            ) from None
    if not raw:
        raise ValueError("`data` holds no batches")
    pairs = []
    for i, batch in enumerate(raw):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(
                f"`data`: batch {i} must be a pair (inputs, targets), got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            )
        inputs = _to_model(batch[0], device, dtype, f"the inputs of batch {i}")
        targets = _to_model(batch[1], device, dtype, f"the targets of batch {i}")
        if inputs.ndim == 0 or targets.ndim == 0:
            raise ValueError(
                f"`data`: batch {i} must have a leading sample axis, got inputs of shape "
                f"{tuple(inputs.shape)} and targets of shape {tuple(targets.shape)}"
            )
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"`data`: batch {i} has {inputs.shape[0]} inputs but {targets.shape[0]} targets")
        if inputs.shape[0] == 0:
            raise ValueError(f"`data`: batch {i} is empty")
        pairs.append((inputs, targets))
    total = sum(int(x.shape[0]) for x, _ in pairs)
    return [Batch(x, y, x.shape[0] / total) for x, y in pairs]


class LossProblem:
    """A model, a loss and data, checked: the full-data loss ``f`` as a function of the parameters.

    Parameters
    ----------
    model : torch.nn.Module
        Its trainable parameters are the coordinates; they are never modified.
    loss_fn : callable
        ``loss_fn(outputs, targets)``, a scalar: the mean over the batch (as ``torch.nn.functional``
        losses are by default), so that weighting batches by size gives the mean over all samples.
    data : batch or iterable of batches
        ``(inputs, targets)`` or an iterable of such pairs.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, data: Any):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"`loss_fn` must be callable as loss_fn(outputs, targets), got {type(loss_fn).__name__}")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("`model` has no trainable parameters (none with requires_grad=True)")
        first = named[0][1]
        if not first.is_floating_point():
            raise TypeError(f"`model` must have floating parameters, got dtype {first.dtype}")
        for n, p in named:
            if p.dtype != first.dtype or p.device != first.device:
                raise ValueError(
                    f"`model`: every trainable parameter must share one device and dtype; {named[0][0]} "
                    f"is {first.dtype} on {first.device}, {n} is {p.dtype} on {p.device}"
                )
        self.model = model
        self.loss_fn = loss_fn
        self.space = ParameterSpace(named)
        self.device = first.device
        self.dtype = first.dtype
        self.batches = as_batches(data, self.device, self.dtype)
        self.samples = sum(b.size for b in self.batches)
        self.buffers = dict(model.named_buffers())

    @property
    def dim(self) -> int:
        """Number of trainable parameters ``d``."""
        return self.space.dim

    @property
    def eps(self) -> float:
        """Machine epsilon of the model's dtype."""
        return float(torch.finfo(self.dtype).eps)

    def batch_loss(self, batch: Batch, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``loss_fn(model(inputs), targets)`` on one batch, at the model's parameters or at ``params``."""
        if params is None:
            outputs = self.model(batch.inputs)
        else:
            outputs = torch.func.functional_call(self.model, {**self.buffers, **params}, (batch.inputs,))
        return self.loss_fn(outputs, batch.targets)

    def check(self) -> float:
        """Evaluate the loss on the first batch, turning failures into errors that name the culprit.

        Returns the full-data loss at the model's parameters (every batch), which must be finite.
        """
        batch = self.batches[0]
        with torch.no_grad():
            try:
                outputs = self.model(batch.inputs)
            except Exception as exc:  # noqa: BLE001 - re-raised with the argument named
                raise ValueError(
                    f"`data`: the model cannot be evaluated on inputs of shape {tuple(batch.inputs.shape)}: {exc}"
                ) from exc
            try:
                loss = self.loss_fn(outputs, batch.targets)
            except Exception as exc:  # noqa: BLE001
                raise ValueError(
                    f"`loss_fn` fails on outputs of shape {tuple(outputs.shape)} and targets of "
                    f"shape {tuple(batch.targets.shape)}: {exc}"
                ) from exc
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(f"`loss_fn` must return a scalar tensor (the mean over the batch), got {shape}")
            total = float(loss) * batch.weight + sum(float(self.batch_loss(b)) * b.weight for b in self.batches[1:])
        if not math.isfinite(total):
            raise ValueError(f"the loss at the model's parameters is not finite ({total}); check `model` and `data`")
        return total

    def check_count(self, value: Any, name: str, *, maximum: int | None = None, minimum: int = 1) -> int:
        """An integer ``minimum <= value <= maximum`` (default maximum: the number of parameters ``d``)."""
        from hjsmooth.validation import check_count

        value = check_count(value, name, minimum)
        top = self.dim if maximum is None else maximum
        if value > top:
            what = f"the number of trainable parameters d = {self.dim}" if maximum is None else str(maximum)
            raise ValueError(f"`{name}` must be <= {what}, got {value}")
        return value
