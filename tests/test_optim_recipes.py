"""The thesis' recipes (hjsmooth.optim.recipes): the settings they state, and each one running on a small task."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import pytest
import torch

import hjsmooth.optim as O
from hjsmooth.optim import recipes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEPS_PER_EPOCH = 4  # a tiny "epoch", so that the schedules' epoch boundaries come within a few steps


@functools.lru_cache(maxsize=1)
def _load_digits() -> Any:
    import sklearn.datasets

    return sklearn.datasets.load_digits()


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    pytest.importorskip("sklearn.datasets", reason="the recipes run on scikit-learn's digits")
    data = _load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target)


def _train(recipe_factory: Any, steps: int, seed: int = 0) -> tuple[Any, list[float], float, float]:
    """``steps`` outer steps of a recipe on a 64-32-10 MLP over the digits; losses on the whole set before/after."""
    x, y = _digits()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    recipe = recipe_factory(model.parameters())
    opt = recipe.optimizer
    draws = torch.Generator().manual_seed(seed)

    def closure(*replica: int) -> torch.Tensor:
        i = torch.randint(0, len(y), (64,), generator=draws)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        loss.backward()
        return loss

    with torch.no_grad():
        before = float(torch.nn.functional.cross_entropy(model(x), y))
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step_outer(closure)
        recipe.scheduler.step()
    with torch.no_grad():
        after = float(torch.nn.functional.cross_entropy(model(x), y))
    return recipe, lrs, before, after


def test_chapter3_mnist_settings_and_scoping() -> None:
    recipe, lrs, before, after = _train(lambda p: recipes.entropy_sgd_chapter3(p, STEPS_PER_EPOCH), 10)
    opt = recipe.optimizer
    g = opt.param_groups[0]
    assert isinstance(opt, O.EntropySGD) and g["L"] == 20 and g["inner_lr"] == 0.1 and g["noise"] == 1e-6
    assert g["alpha"] == 0.75 and g["scale_by_gamma"] and g["momentum"] == 0.9 and g["inner_momentum"] == 0.9
    assert not g["coupling_in_momentum"] and not g["keep_inner_buffer"]
    # gamma_0 = 1e4 (not 1e-4) shrinking by the factor 1.001 per outer step
    assert g["gamma"](0) == 1e4 and g["gamma"](1000) == pytest.approx(1e4 / 1.001**1000, rel=1e-12)
    assert opt.stats["gamma"] == pytest.approx(1e4 / 1.001**9, rel=1e-12)
    # eta' = 1, divided by 10 after the second epoch
    assert lrs[:8] == [1.0] * 8 and lrs[8:] == pytest.approx([0.1, 0.1])
    assert recipe.outer_steps == 5 * STEPS_PER_EPOCH and recipe.calls_per_step == 20
    assert after < 0.5 * before


def test_chapter3_cifar_settings() -> None:
    model = torch.nn.Linear(3, 2)
    recipe = recipes.entropy_sgd_chapter3(model.parameters(), 100, dataset="cifar10")
    g = recipe.optimizer.param_groups[0]
    assert g["gamma"](0) == 30.0 and g["noise"] == 1e-8 and recipe.outer_steps == 1000
    assert recipe.scheduler.step_size == 400 and recipe.scheduler.gamma == 0.2
    with pytest.raises(ValueError, match="`dataset`"):
        recipes.entropy_sgd_chapter3(model.parameters(), 100, dataset="imagenet")


def test_chapter3_scope_read_as_a_coupling_diverges() -> None:
    """Reading the chapter-3 scope 1e4 as a coupling (gamma_0 = 1e-4 here) makes inner_lr / gamma = 1e3: the inner
    loop multiplies y - x by -999 per step.  The optimizer warns, the loss blows up within the first outer
    step, and the error leaves the weights where they were."""
    x, y = _digits()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    opt = O.EntropySGD(model.parameters(), lr=1.0, gamma=O.schedules.exponential(1e-4, 1 - 1 / 1.001), L=20,
                       inner_lr=0.1, noise=1e-6, scale_by_gamma=True, keep_inner_buffer=False)
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with pytest.warns(UserWarning, match=r"inner_lr / gamma = 1000 \(inner_lr = 0.1, gamma = 0.0001\) is >= 2"):
        with pytest.raises(O.NonFiniteError, match=r"outer step 0"):
            opt.step_outer(closure)
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), w0)


@pytest.mark.parametrize("name", ["entropy_sgd", "hj", "heat"])
def test_section_4_6_recipes(name: str) -> None:
    factory = {"entropy_sgd": recipes.entropy_sgd_section_4_6, "hj": recipes.hj_section_4_6,
               "heat": recipes.heat_section_4_6}[name]
    recipe, lrs, before, after = _train(lambda p: factory(p, STEPS_PER_EPOCH), 14)
    g = recipe.optimizer.param_groups[0]
    # eta = 0.1, divided by 5 every 3 epochs
    assert lrs[:12] == [0.1] * 12 and lrs[12:] == pytest.approx([0.02, 0.02])
    if name == "heat":
        assert isinstance(recipe.optimizer, O.Heat) and g["L"] == 20 and g["perturbation"] == "absolute"
        assert g["gamma"] == 1e-4 and g["noise"] == 1.0
    else:
        assert g["gamma"] == 1e4 and g["inner_lr"] == 0.1 and g["scale_by_gamma"]
        assert g["coupling_in_momentum"] and g["keep_inner_buffer"] and g["inner_momentum"] == 0.9
        if name == "hj":
            assert isinstance(recipe.optimizer, O.HJ) and g["L"] == 5 and g["alpha"] == 0.0 and g["noise"] == 0.0
        else:
            assert g["L"] == 20 and g["alpha"] == 0.75 and g["noise"] == 1e-8
    assert recipe.calls_per_step == g["L"]
    assert after < (0.8 if name == "heat" else 0.6) * before  # HEAT: 14 steps of an average of 20 gradients


@pytest.mark.parametrize("dataset", ["mnist", "cifar"])
def test_parle_section_5_3(dataset: str) -> None:
    recipe, lrs, before, after = _train(lambda p: recipes.parle_section_5_3(p, STEPS_PER_EPOCH, dataset=dataset), 10)
    opt = recipe.optimizer
    g = opt.param_groups[0]
    assert isinstance(opt, O.Parle) and opt.n == 3 and g["L"] == 25 and g["alpha"] == 0.75 and g["inner_lr"] == 0.1
    b = STEPS_PER_EPOCH
    assert g["gamma"](0) == 100.0 and g["gamma"](7) == pytest.approx(100 * (1 - 1 / (2 * b)) ** 7)
    assert g["gamma"](10**6) == 1.0 and g["rho"](0) == 1.0 and g["rho"](10**6) == 0.1
    if dataset == "mnist":
        assert lrs[:8] == [0.1] * 8 and lrs[8:] == pytest.approx([0.01, 0.01]) and g["weight_decay"] == 0.0
    else:
        assert lrs[:8] == pytest.approx([0.1] * 8) and lrs[8:] == pytest.approx([0.02, 0.02])
        assert g["weight_decay"] == 5e-4
    assert recipe.calls_per_step == 75 and opt.stats["replica_spread"] > 0
    assert after < 0.6 * before


def test_recipes_do_not_warn() -> None:
    """The thesis' settings are stable: no divergence warning at any scope the schedules reach."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(lambda p: recipes.parle_section_5_3(p, 1), 3)  # B = 1: gamma reaches its clip at 1 fast
        for factory in (recipes.entropy_sgd_chapter3, recipes.entropy_sgd_section_4_6, recipes.hj_section_4_6):
            _train(lambda p, f=factory: f(p, 1), 2)
    assert math.isclose(recipes.parle_section_5_3(torch.nn.Linear(2, 1).parameters(), 1)
                        .optimizer.param_groups[0]["gamma"](50), 1.0)
