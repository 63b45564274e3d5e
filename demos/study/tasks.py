"""Datasets split into train, validation and test, and the small networks trained on them.

Every split is fixed (a permutation drawn from a constant seed), so all methods and seeds see the same
examples.  Inputs are standardised with the training statistics only.  The test arrays are held in a
separate object (:class:`Split`) that the hyper-parameter search never receives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Task", "Split", "TASKS", "load_split", "load_train_test", "make_model", "data_tasks"]

_SPLIT_SEED = 12345


@dataclass(frozen=True)
class Task:
    """One line of the study: a dataset, a network, and a budget in effective epochs.

    ``epochs`` is the full study's budget and ``quick_epochs`` the smoke version's; both are counted in
    *effective epochs*: minibatch gradient evaluations divided by the number of minibatches in one pass
    over the training set.
    """

    name: str
    dataset: str
    model: str
    epochs: float
    quick_epochs: float


#: The offline tasks of the study.  MNIST and CIFAR-10 join through ``data_dir`` (:func:`data_tasks`).
TASKS: tuple[Task, ...] = (
    Task("digits-mlp", "digits", "mlp", epochs=200.0, quick_epochs=6.0),
    Task("mnist1d-mlp", "mnist1d", "mlp", epochs=200.0, quick_epochs=4.0),
    Task("mnist1d-cnn", "mnist1d", "cnn", epochs=150.0, quick_epochs=3.0),
)


def data_tasks(found: list[str]) -> list[Task]:
    """The tasks for the datasets found in a local folder (``"mnist"``, ``"cifar10"``): an MLP each."""
    return [Task(f"{name}-mlp", name, "mlp", epochs=30.0, quick_epochs=1.0) for name in found]


@dataclass(frozen=True)
class Split:
    """Training and validation arrays, and — kept apart — the test arrays.

    ``without_test()`` gives the same object with the test arrays removed; the hyper-parameter search
    only ever receives that, so it cannot read the test error.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = field(default=None, repr=False)
    y_test: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def has_test(self) -> bool:
        return self.x_test is not None

    def without_test(self) -> Split:
        return Split(self.x_train, self.y_train, self.x_val, self.y_val)

    def test_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_test, y_test)``; the one way the study reads test data."""
        if self.x_test is None or self.y_test is None:
            raise ValueError("this split carries no test data (it was made by `without_test`)")
        return self.x_test, self.y_test

    def train_val(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x_train, y_train, x_val, y_val)``."""
        return self.x_train, self.y_train, self.x_val, self.y_val


def _carve(x: np.ndarray, y: np.ndarray, fraction: float) -> tuple[np.ndarray, ...]:
    """Split ``(x, y)`` by a fixed permutation into a first part and a last ``fraction``."""
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(y))
    cut = int((1.0 - fraction) * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def _raw(dataset: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_trainval, y_trainval, x_test, y_test)`` before standardisation."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        x, y = data.data.astype(np.float32), data.target.astype(np.int64)
        xa, ya, xt, yt = _carve(x, y, 0.2)  # 20 % test
        return xa, ya, xt, yt
    if dataset == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())  # generated locally from the templates shipped with the package
        return (
            np.asarray(data["x"], np.float32),
            np.asarray(data["y"], np.int64),
            np.asarray(data["x_test"], np.float32),
            np.asarray(data["y_test"], np.int64),
        )
    if dataset in ("mnist", "cifar10"):
        from hjsmooth.demos.local_datasets import load_cifar10, load_mnist

        if data_dir is None:
            raise ValueError(f"dataset {dataset!r} is read from a local folder: pass `data_dir`")
        return (load_mnist if dataset == "mnist" else load_cifar10)(data_dir)
    raise ValueError(f"unknown `dataset` {dataset!r}; valid values are 'digits', 'mnist1d', 'mnist', 'cifar10'")


def _standardiser(fit: np.ndarray) -> Any:
    """``a -> (a - mean) / std`` in float32, with the per-feature statistics of ``fit`` (std floored by 1e-6)."""
    mean, std = fit.mean(axis=0), fit.std(axis=0) + 1e-6
    return lambda a: ((a - mean) / std).astype(np.float32)


def load_split(dataset: str, data_dir: Path | None = None) -> Split:
    """The fixed train / validation / test split of ``dataset``, standardised with the training statistics.

    ``digits``: 1797 images, 20 % test, then 20 % of the rest for validation.  ``mnist1d``: the package's
    4000 / 1000 train / test sequences (generated locally, never downloaded), 20 % of the 4000 for
    validation.  ``mnist``, ``cifar10``: the official test split, 10 % of the training images for validation.
    """
    xa, ya, x_test, y_test = _raw(dataset, data_dir)
    x_train, y_train, x_val, y_val = _carve(xa, ya, 0.1 if dataset in ("mnist", "cifar10") else 0.2)
    scale = _standardiser(x_train)
    return Split(scale(x_train), y_train, scale(x_val), y_val, scale(x_test), y_test)


def load_train_test(dataset: str, data_dir: Path | None = None) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)``: training and validation together, standardised with their statistics.

    For tools that need no validation set (``benchmarks/optim_defaults.py``): the examples of
    :func:`load_split`'s train and validation arrays train, its test arrays test.
    """
    xa, ya, x_test, y_test = _raw(dataset, data_dir)
    scale = _standardiser(xa)
    return scale(xa), ya, scale(x_test), y_test


def make_model(kind: str, n_features: int) -> Any:
    """``"mlp"`` (one hidden layer of 128 for 64 inputs, else two) or ``"cnn"`` (a small 1D CNN for sequences)."""
    import torch.nn as nn

    if kind == "mlp":
        if n_features == 64:
            return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        return nn.Sequential(nn.Linear(n_features, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    if kind == "cnn":
        return nn.Sequential(
            nn.Unflatten(1, (1, n_features)),
            nn.Conv1d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * math.ceil(math.ceil(n_features / 2) / 2), 10),
        )
    raise ValueError(f"unknown `kind` {kind!r}; valid values are 'mlp', 'cnn'")
