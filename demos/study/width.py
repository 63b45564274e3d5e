"""The width of a trained minimum, measured with :mod:`hjsmooth.diagnostics` on the training loss.

Three measures, on a fixed subset of the training set (the same examples for every run of a task):

* ``hessian_top``: the largest eigenvalue of the Hessian of the training loss (Lanczos);
* ``hessian_trace``: its trace (Hutchinson, with a standard error);
* ``smoothing_gap``: the heat-smoothed loss ``E f(x + sigma z) - f(x)``, ``z ~ N(0, I)``, at the variance
  ``sigma^2 = SMOOTHING_VARIANCE`` (the heat equation at ``t / beta = sigma^2``; a Monte Carlo estimate with
  its standard error).  For a quadratic minimum it equals ``sigma^2 tr(H) / 2``; a flat valley gives a small
  gap at any scale, a sharp one a large gap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["measure_width", "SMOOTHING_VARIANCE", "WIDTH_SUBSET"]

#: Variance per weight of the heat smoothing whose gap is recorded.
SMOOTHING_VARIANCE = 1e-3
#: Training examples the width is measured on (at most).
WIDTH_SUBSET = 2000


def measure_width(model: Any, split: Any, samples: int, seed: int) -> dict[str, Any]:
    """``hessian_top``, ``hessian_trace`` and ``smoothing_gap`` of ``model`` at its weights (and stderrs)."""
    import torch
    import torch.nn.functional as F

    from hjsmooth import diagnostics

    count = min(WIDTH_SUBSET, len(split.y_train))
    idx = np.random.default_rng(0).permutation(len(split.y_train))[:count]
    data = (torch.as_tensor(split.x_train[idx]), torch.as_tensor(split.y_train[idx]))
    model = model.module if hasattr(model, "module") and hasattr(model, "n_averaged") else model
    was_training = model.training
    model.eval()
    try:
        top = diagnostics.hessian_eigenvalues(model, F.cross_entropy, data, k=1)
        trace = diagnostics.hessian_trace(model, F.cross_entropy, data, samples=samples, rng=seed)
        smooth = diagnostics.smoothed_loss(model, F.cross_entropy, data, t=SMOOTHING_VARIANCE, beta=1.0,
                                           kind="heat", samples=samples, rng=seed)
        with torch.no_grad():
            loss = float(F.cross_entropy(model(data[0]), data[1]))
    finally:
        model.train(was_training)
    return {
        "hessian_top": float(np.asarray(top.eigenvalues)[0]),
        "hessian_trace": float(trace.estimate),
        "hessian_trace_stderr": float(trace.stderr),
        "smoothing_gap": float(smooth.estimate) - loss,
        "smoothing_gap_stderr": float(smooth.stderr),
        "loss": loss,
        "settings": {"examples": count, "samples": samples, "smoothing_variance": SMOOTHING_VARIANCE},
    }
