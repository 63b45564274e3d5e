"""Power spectra and autocorrelations of trajectories, and the random-projection recorder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hjsmooth.diagnostics import TrajectoryRecorder, autocorrelation, trajectory_spectrum, white_noise_band


@pytest.mark.parametrize("T", [64, 65])
def test_parseval_the_power_integrates_to_the_variance(T) -> None:
    x = np.random.default_rng(0).standard_normal((T, 3)).cumsum(axis=0)
    res = trajectory_spectrum(x, dt=0.5)
    df = float(res.frequencies[1])
    assert df == pytest.approx(1 / (T * 0.5))
    assert res.frequencies.shape == (T // 2 + 1,) and res.power.shape == (T // 2 + 1, 3)
    np.testing.assert_allclose(res.power.sum(axis=0) * df, x.var(axis=0), rtol=1e-12)
    assert res.power[0].max() < 1e-20  # the mean is removed


def test_a_sinusoid_puts_all_its_power_in_one_bin() -> None:
    T, dt, m = 200, 0.1, 7
    n = np.arange(T)
    x = 3.0 * np.cos(2 * np.pi * m * n / T) + 5.0
    res = trajectory_spectrum(x, dt)
    assert int(np.argmax(res.power[:, 0])) == m
    df = float(res.frequencies[1])
    assert res.power[m, 0] * df == pytest.approx(3.0**2 / 2, rel=1e-12)
    assert np.delete(res.power[:, 0], m).max() < 1e-20


def test_white_noise_has_a_flat_spectrum() -> None:
    T, d, s, dt = 256, 400, 0.7, 2.0
    x = np.random.default_rng(1).normal(0, s, (T, d))
    res = trajectory_spectrum(x, dt)
    inner = res.power[1:-1]          # every interior bin: chi-square(2) times s^2 dt, mean 2 s^2 dt
    per_bin = inner.mean(axis=1)
    stderr = 2 * s**2 * dt / math.sqrt(d)
    assert np.abs(per_bin - 2 * s**2 * dt).max() < 4.5 * stderr


def test_torch_iterates_come_back_as_torch() -> None:
    x = torch.randn(50, 2, dtype=torch.float32)
    res = trajectory_spectrum(x)
    assert isinstance(res.power, torch.Tensor) and res.power.dtype == torch.float32
    assert isinstance(res.frequencies, torch.Tensor) and res.mean_power.shape == (26,)
    ref = trajectory_spectrum(x.double().numpy())
    np.testing.assert_allclose(res.power.numpy(), ref.power, rtol=1e-4, atol=1e-6)
    r = autocorrelation(x, max_lag=5)
    assert isinstance(r, torch.Tensor) and r.shape == (6, 2)


def test_autocorrelation_equals_the_direct_sum() -> None:
    x = np.random.default_rng(2).standard_normal((40, 3)).cumsum(axis=0)
    r = autocorrelation(x, max_lag=12)
    xc = x - x.mean(axis=0)
    c = np.array([(xc[: 40 - k] * xc[k:]).sum(axis=0) / 40 for k in range(13)])
    np.testing.assert_allclose(r, c / c[0], rtol=1e-10, atol=1e-14)
    assert r[0].tolist() == [1.0, 1.0, 1.0]
    const = autocorrelation(np.ones((10, 1)), max_lag=3)
    assert const[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_ar1_autocorrelation_decays_like_rho_to_the_lag_and_white_noise_stays_in_its_band() -> None:
    rng = np.random.default_rng(3)
    T, rho = 20000, 0.8
    x = np.zeros(T)
    for n in range(1, T):
        x[n] = rho * x[n - 1] + rng.standard_normal()
    r = autocorrelation(x, max_lag=3)[:, 0]
    np.testing.assert_allclose(r, rho ** np.arange(4), atol=5 * math.sqrt((1 - rho**2) / T) * 3)
    noise = rng.standard_normal((2000, 200))
    band = white_noise_band(2000, 0.99)
    outside = np.abs(autocorrelation(noise, max_lag=1)[1]) > band
    assert band == pytest.approx(2.5758 / math.sqrt(2000), rel=1e-4)
    assert outside.mean() < 0.01 + 4 * math.sqrt(0.01 * 0.99 / 200)


def test_bad_iterates_are_refused() -> None:
    with pytest.raises(ValueError, match=r"`iterates` must have shape \(T, d\)"):
        trajectory_spectrum(np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="at least 2 time steps"):
        trajectory_spectrum(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="`iterates` must be finite"):
        trajectory_spectrum(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="`dt` must be > 0"):
        trajectory_spectrum(np.zeros(5), dt=0.0)
    with pytest.raises(ValueError, match="`max_lag` must be <= T - 1 = 4"):
        autocorrelation(np.zeros(5), max_lag=5)


def test_recorder_stores_random_projections() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.Linear(20, 5))
    rec = TrajectoryRecorder(model, dim=2000, rng=0)
    assert rec.projection.shape == (2000, 30 * 20 + 20 + 20 * 5 + 5)
    flats = []
    for _ in range(6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        rec.record()
        flats.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    X = torch.stack(flats)
    np.testing.assert_allclose(rec.iterates, (X @ rec.projection.T).double().numpy(), rtol=1e-5, atol=1e-4)
    # E |P x|^2 = |x|^2: with 2000 projections the squared norm is kept to a few percent (sd sqrt(2/2000))
    kept = np.sum(rec.iterates**2, axis=1) / (X.double() ** 2).sum(1).numpy()
    assert np.abs(kept - 1).max() < 5 * math.sqrt(2 / 2000)
    inc = rec.spectrum(dt=1.0, increments=True)
    assert inc.power.shape == (3, 2000) and len(rec) == 6
    with pytest.raises(ValueError, match="`params` is empty"):
        TrajectoryRecorder([])
