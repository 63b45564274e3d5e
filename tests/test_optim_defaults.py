"""Default-constructed optimizers train the project's tasks about as well as SGD with Nesterov momentum.

``EntropySGD(model.parameters())`` (and every other optimizer at its defaults) in place of
``torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)``, for the same number of gradient
evaluations: the test error must be within 15 % of SGD's, or within 2 points of it (whichever is
looser).  The harness is ``benchmarks/optim_defaults.py`` (the training loop and minibatch stream
of the demo: minibatches of 128, the learning rate divided by 5 after 60 % and 80 % of the budget).

The error compared is the median over seeds.  On the MNIST-1D CNN, SGD itself at lr 0.1 with
Nesterov momentum ends far off on some seeds (15.9 % on seed 3 against 4.3-6.5 % on the others;
other optimizers near the same step size on other seeds): a mean over five seeds counts those
runs more than the typical one, the median does not.  docs/optimizers.md gives means, medians and
every seed's error.  The quick test runs the digits MLP for three seeds; the full one (``slow``)
the digits MLP and the MNIST-1D MLP and CNN for five seeds.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("sklearn", reason="the tasks need scikit-learn's digits")

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "optim_defaults.py"


def _harness() -> Any:
    if "optim_defaults" not in sys.modules:
        spec = importlib.util.spec_from_file_location("optim_defaults", _PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["optim_defaults"] = module
        spec.loader.exec_module(module)
    return sys.modules["optim_defaults"]


def _bound(sgd: float) -> float:
    """The largest error accepted: SGD's plus 15 %, or plus 2 points."""
    return max(1.15 * sgd, sgd + 2.0)


def _compare(task: str, seeds: list[int], names: list[str]) -> dict[str, float]:
    """The median over ``seeds`` of each optimizer's final test error (%)."""
    h = _harness()
    medians = {}
    for name in ["SGD", *names]:
        medians[name] = statistics.median(h.train(h.DEFAULTS[name], task, s) for s in seeds)
    return medians


CONCRETE = ["EntropySGD", "HJ", "Heat", "ElasticSGD", "Parle", "TrivializedSGD"]


def test_defaults_train_digits_as_well_as_sgd() -> None:
    errors = _compare("digits-mlp", [0, 1, 2], CONCRETE)
    assert errors["SGD"] < 5.0  # the reference itself trains (chance is 90 %)
    worse = {k: v for k, v in errors.items() if v > _bound(errors["SGD"])}
    assert not worse, f"test error (%) above {_bound(errors['SGD']):.2f}: {worse} (all: {errors})"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["digits-mlp", "mnist1d-mlp", "mnist1d-cnn"])
def test_defaults_train_every_task_as_well_as_sgd(task: str) -> None:
    errors = _compare(task, [0, 1, 2, 3, 4], CONCRETE)
    worse = {k: v for k, v in errors.items() if v > _bound(errors["SGD"])}
    assert not worse, f"{task}: median test error (%) above {_bound(errors['SGD']):.2f}: {worse} (all: {errors})"


def test_harness_counts_gradient_evaluations() -> None:
    """Every optimizer gets the same budget of closure calls, short of it by less than one outer step."""
    h = _harness()
    budget = 2 * 12  # two effective epochs of the digits (1437 training images / 128 -> 12 minibatches)
    for name, per_step in [("SGD", 1), ("EntropySGD", 5), ("Parle", 10)]:
        error, calls = h.run(h.DEFAULTS[name], "digits-mlp", 0, epochs=2)
        assert budget - per_step < calls <= budget and calls % per_step == 0, name
        assert 0 <= error < 90, name
