"""PyTorch Lightning: validate, test and checkpoint at the anchor ``x`` of every hjsmooth optimizer.

::

    from hjsmooth.integrations.lightning import AnchorCallback

    trainer = lightning.Trainer(callbacks=[AnchorCallback()], ...)

With automatic optimization each training batch is one call of the optimizer's ``step``
(Lightning calls ``optimizer.step(closure)`` and the closure runs ``training_step`` once).
The callback puts ``x`` into the parameters for the validation, test and prediction loops
and puts the evaluation point back afterwards; a checkpoint holds ``x`` as the model's
weights and the optimizer's state in eval mode (with the evaluation point), so a run resumed
from it continues exactly, and ``load_from_checkpoint`` gives the weights at ``x``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from hjsmooth.optim._base import SmoothingOptimizer

__all__ = ["AnchorCallback"]


def _smoothing_optimizers(trainer: Any) -> list[SmoothingOptimizer]:
    return [o for o in trainer.optimizers if isinstance(o, SmoothingOptimizer)]


class AnchorCallback(pl.Callback):
    """Evaluate and checkpoint at the anchor ``x`` of every hjsmooth optimizer of the trainer (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._switched: list[SmoothingOptimizer] = []

    # ------------------------------------------------------------------ evaluation loops
    def _to_anchor(self, trainer: Any) -> None:
        for opt in _smoothing_optimizers(trainer):
            if opt.mode == "train":
                opt.eval()
                self._switched.append(opt)

    def _back(self) -> None:
        for opt in self._switched:
            opt.train()
        self._switched = []

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._to_anchor(trainer)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._back()

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._to_anchor(trainer)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._back()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._to_anchor(trainer)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._back()

    # ------------------------------------------------------------------ training
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """A run resumed from a checkpoint taken at ``x`` gets its evaluation point back before the first batch."""
        for opt in _smoothing_optimizers(trainer):
            opt.train()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """The model leaves ``fit`` at ``x``, the weights the optimizer descended."""
        for opt in _smoothing_optimizers(trainer):
            opt.eval()

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Write the weights at ``x`` and the optimizers' state in eval mode into ``checkpoint``."""
        opts = [o for o in _smoothing_optimizers(trainer) if o.mode == "train"]
        if not opts:
            return
        for opt in opts:
            opt.eval()
        try:
            checkpoint["state_dict"] = trainer.strategy.lightning_module_state_dict()
            if "optimizer_states" in checkpoint:
                checkpoint["optimizer_states"] = [trainer.strategy.optimizer_state(o) for o in trainer.optimizers]
        finally:
            for opt in opts:
                opt.train()
