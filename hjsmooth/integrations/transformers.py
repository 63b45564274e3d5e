"""The transformers ``Trainer``: checkpoints and the final model at the anchor ``x`` of an hjsmooth optimizer.

::

    from hjsmooth.integrations.transformers import AnchorTrainerCallback

    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   optimizers=(hso.EntropySGD(model.parameters()), None),
                                   callbacks=[AnchorTrainerCallback()])

The ``Trainer`` itself calls ``optimizer.eval()`` before evaluating and ``optimizer.train()``
before each training step (the convention of schedule-free optimizers, which hjsmooth's
follow), so evaluation happens at ``x`` without the callback.  The callback adds the rest:
before a checkpoint is written the optimizer goes to its anchor (the checkpoint's weights are
``x``, its optimizer state holds the evaluation point, and a resumed run continues exactly),
and after training the model is left at ``x`` (``trainer.save_model()`` saves ``x``).
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

__all__ = ["AnchorTrainerCallback"]


def _to_anchor(optimizer: Any) -> None:
    if optimizer is not None and callable(getattr(optimizer, "eval", None)):
        optimizer.eval()


class AnchorTrainerCallback(TrainerCallback):
    """Save checkpoints and leave training at the anchor ``x`` (module docstring)."""

    def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if control.should_save:  # the next training step calls optimizer.train() again
            _to_anchor(optimizer)

    def on_train_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        _to_anchor(optimizer)
