"""The width of a trained minimum, measured with :mod:`hjsmooth.diagnostics` on the training loss.

Three measures, on a fixed subset of the training set (the same examples for every run of a task):

* ``hessian_top``: the largest eigenvalue of the Hessian of the training loss (Lanczos);
* ``hessian_trace``: its trace (Hutchinson after deflating the top Lanczos directions, with a standard error);
* ``smoothing_gap``: the heat-smoothed loss ``E f(x + sigma z) - f(x)``, ``z ~ N(0, I)``, at the variance
  ``sigma^2 = SMOOTHING_VARIANCE`` (the heat equation at ``t / beta = sigma^2``; a Monte Carlo estimate with
  its standard error).  For a quadratic minimum it equals ``sigma^2 tr(H) / 2``; a flat valley gives a small
  gap at any scale, a sharp one a large gap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["measure_width", "SMOOTHING_VARIANCE", "WIDTH_SUBSET", "TRACE_DEFLATION"]

#: Variance per weight of the heat smoothing whose gap is recorded.
SMOOTHING_VARIANCE = 1e-3
#: Training examples the width is measured on (at most).
WIDTH_SUBSET = 2000
#: Lanczos vectors whose part of the trace is computed exactly before Hutchinson's estimate of the rest.
TRACE_DEFLATION = 10


def measure_width(model: Any, split: Any, samples: int, seed: int) -> dict[str, Any]:
    """``hessian_top``, ``hessian_trace`` and ``smoothing_gap`` of ``model`` at its weights (and stderrs)."""
    import torch
    import torch.nn.functional as F

    from hjsmooth import diagnostics

    model = getattr(model, "module", model)  # the averaged network of SGD-EMA (an AveragedModel)
    count = min(WIDTH_SUBSET, len(split.y_train))
    idx = np.random.default_rng(0).permutation(len(split.y_train))[:count]
    data = (torch.as_tensor(split.x_train[idx]), torch.as_tensor(split.y_train[idx]))
    top = diagnostics.hessian_eigenvalues(model, F.cross_entropy, data, k=1, rng=seed, progress=False)
    trace = diagnostics.hessian_trace(
        model, F.cross_entropy, data, samples=samples, deflation=TRACE_DEFLATION, rng=seed, progress=False
    )
    smooth = diagnostics.smoothed_loss(
        model,
        F.cross_entropy,
        data,
        t=SMOOTHING_VARIANCE,
        beta=1.0,
        kind="heat",
        samples=samples,
        rng=seed,
        progress=False,
    )
    return {
        "hessian_top": float(top.eigenvalues[0]),
        "hessian_trace": float(trace.estimate),
        "hessian_trace_stderr": float(trace.stderr),
        "smoothing_gap": float(smooth.estimate - smooth.loss),
        "smoothing_gap_stderr": float(smooth.stderr),
        "loss": float(smooth.loss),
        "settings": {
            "examples": count,
            "samples": samples,
            "trace_deflation": TRACE_DEFLATION,
            "smoothing_variance": SMOOTHING_VARIANCE,
        },
    }
