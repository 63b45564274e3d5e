"""Conventions shared by every diagnostic: names resolve, data forms, dtype and device, eval mode, SPEC 7 generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diagnostics_models import (
    assert_unchanged,
    classification_data,
    cross_entropy,
    exact_hessian,
    snapshot,
    tiny_mlp,
)
from torch import nn

import hjsmooth
from hjsmooth import diagnostics as dg
from hjsmooth.diagnostics._rng import torch_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_name_hjsmooth_advertises_resolves() -> None:
    for name in dir(hjsmooth):
        assert getattr(hjsmooth, name) is not None, name
    assert hjsmooth.diagnostics is dg
    for name in dg.__all__:
        assert getattr(dg, name) is not None, name


def test_dataloaders_numpy_arrays_and_one_batch_agree() -> None:
    model = tiny_mlp()
    x, y = classification_data(40)
    exact = torch.linalg.eigvalsh(exact_hessian(model, cross_entropy, x, y)).numpy()[::-1][:2]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)  # 16 + 16 + 8
    for data in [(x, y), loader, (x.numpy(), y.numpy()), [(x[:9], y[:9]), (x[9:], y[9:])]]:
        res = dg.hessian_eigenvalues(model, cross_entropy, data, k=2, rng=0, progress=False)
        np.testing.assert_allclose(res.eigenvalues, exact, rtol=1e-8)


def test_inputs_are_cast_to_the_models_dtype_and_results_follow_it() -> None:
    model = tiny_mlp().float()
    x, y = classification_data(30)  # float64 inputs for a float32 model
    tr = dg.hessian_trace(model, cross_entropy, (x, y), samples=3, rng=0, progress=False)
    top = dg.hessian_eigenvalues(model, cross_entropy, (x, y), eigenvectors=True, rng=0, progress=False)
    assert np.isfinite(tr.estimate) and top.eigenvectors[0][0].dtype == torch.float32
    sl = dg.loss_slice(model, cross_entropy, (x, y), hjsmooth.Grid(-1.0, 1.0, 3), rng=0, progress=False)
    assert sl.directions[0][0].dtype == torch.float32 and sl.values.dtype == np.float64


def test_dropout_is_off_and_training_flags_come_back() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3)).double()
    model.train()
    x, y = classification_data(30)
    before = snapshot(model)
    a = dg.hessian_eigenvalues(model, cross_entropy, (x, y), k=2, rng=0, progress=False)
    b = dg.hessian_eigenvalues(model, cross_entropy, (x, y), k=2, rng=0, progress=False)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)  # no random dropout masks
    assert_unchanged(model, before)
    model.eval()
    exact = torch.linalg.eigvalsh(exact_hessian(model, cross_entropy, x, y)).numpy()[::-1][:2]
    np.testing.assert_allclose(a.eigenvalues, exact, rtol=1e-8)


def test_existing_grads_and_frozen_parameters_are_left_alone() -> None:
    model = tiny_mlp()
    x, y = classification_data(20)
    cross_entropy(model(x), y).backward()          # .grad fields already hold something
    model[0].weight.requires_grad_(False)          # frozen: not a coordinate
    before = snapshot(model)
    res = dg.hessian_eigenvalues(model, cross_entropy, (x, y), k=1, rng=0, progress=False)
    assert res.dimension == sum(p.numel() for p in model.parameters() if p.requires_grad)
    dg.smoothed_loss(model, cross_entropy, (x, y), 0.1, 1.0, samples=3, rng=0, progress=False)
    dg.gradient_noise_spectrum(model, cross_entropy, (x, y), k=2, progress=False)
    assert_unchanged(model, before)


def test_spec7_generators() -> None:
    cpu = torch.device("cpu")
    a, b = torch_generator(5, cpu), torch_generator(5, cpu)
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
    g = torch.Generator().manual_seed(1)
    assert torch_generator(g, cpu) is g
    fresh = [torch.randn(4, generator=torch_generator(None, cpu)) for _ in range(2)]
    assert not torch.equal(*fresh)
    npg = np.random.default_rng(0)
    first, second = (torch.randn(3, generator=torch_generator(npg, cpu)) for _ in range(2))
    assert not torch.equal(first, second)            # the numpy generator advances
    with pytest.raises(TypeError, match="`rng` must be None, an int seed"):
        torch_generator(1.5, cpu)
    with pytest.raises(ValueError, match="`rng` must be a non-negative seed"):
        torch_generator(-1, cpu)
    with pytest.raises(ValueError, match="`rng` lives on"):
        torch_generator(torch.Generator(), torch.device("meta"))


def test_a_model_without_trainable_parameters_is_refused() -> None:
    model = tiny_mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="`model` has no trainable parameters"):
        dg.hessian_trace(model, cross_entropy, classification_data(5))
    with pytest.raises(TypeError, match=r"`data`: batch 0 must be a pair \(inputs, targets\)"):
        dg.hessian_trace(tiny_mlp(), cross_entropy, [(torch.zeros(2, 3),)])


@pytest.mark.gpu
def test_cuda_models_give_the_cpu_results() -> None:
    import hjsmooth as hs

    if not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA")
    model = tiny_mlp()
    x, y = classification_data(40)
    gpu = tiny_mlp().cuda()
    cpu_top = dg.hessian_eigenvalues(model, cross_entropy, (x, y), k=3, rng=0, progress=False)
    gpu_top = dg.hessian_eigenvalues(gpu, cross_entropy, (x, y), k=3, rng=0, progress=False)  # CPU data moves
    np.testing.assert_allclose(gpu_top.eigenvalues, cpu_top.eigenvalues, rtol=1e-8)
    tr = dg.hessian_trace(gpu, cross_entropy, (x, y), samples=2, deflation=38, rng=0, progress=False)
    assert tr.estimate == pytest.approx(float(torch.trace(exact_hessian(model, cross_entropy, x, y))), rel=1e-8)
    grid = hs.Grid(-1.0, 1.0, 5)
    u = [torch.ones_like(p) for p in model.parameters()]
    for vectorize in (True, False):
        a = dg.loss_slice(model, cross_entropy, (x, y), grid, None, [u], vectorize=vectorize, progress=False)
        b = dg.loss_slice(gpu, cross_entropy, (x, y), grid, None, [u], vectorize=vectorize, progress=False)
        np.testing.assert_allclose(b.values, a.values, rtol=1e-10)
    ns_cpu = dg.gradient_noise_spectrum(model, cross_entropy, (x, y), k=3, progress=False)
    ns_gpu = dg.gradient_noise_spectrum(gpu, cross_entropy, (x, y), k=3, progress=False)
    np.testing.assert_allclose(ns_gpu.eigenvalues, ns_cpu.eigenvalues, rtol=1e-8)
    sm = dg.smoothed_loss(gpu, cross_entropy, (x, y), 1.0, 100.0, samples=4, rng=0, progress=False)
    assert np.isfinite(sm.estimate) and sm.values.shape == (4,)
    rec = dg.TrajectoryRecorder(gpu, dim=4, rng=0)
    rec.record()
    assert rec.iterates.shape == (1, 4)
