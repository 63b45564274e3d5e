"""Ready integrations with training frameworks: evaluate and save at the anchor ``x`` automatically.

Between calls an hjsmooth optimizer leaves the model at the point where the next gradient
is to be taken; the weights it descends, the anchor ``x``, are what validation should see
and what a checkpoint should export.  Each integration switches the optimizers to their
anchor (``opt.eval()``) for validation and saving, and back (``opt.train()``) for training:

* :class:`hjsmooth.integrations.lightning.AnchorCallback` for PyTorch Lightning;
* :class:`hjsmooth.integrations.transformers.AnchorTrainerCallback` for the transformers
  ``Trainer`` (which already calls ``optimizer.eval()`` before evaluating and
  ``optimizer.train()`` before each training step; the callback adds saving at ``x``).

Each module imports its framework on first use; neither is a dependency of hjsmooth.
"""
