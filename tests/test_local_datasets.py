"""MNIST / CIFAR-10 from a local folder: read back a tiny fake dataset written in the on-disk formats."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from hjsmooth.demos.local_datasets import available, load_cifar10, load_mnist, read_idx


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist(root: Path, rng: np.random.Generator, compress: bool) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5),
    }
    for name, array in arrays.items():
        write_idx(raw / name, array, compress)
    return arrays


def fake_cifar(root: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (3, 3072)).astype(np.uint8)
        target = list(rng.integers(0, 10, 3))
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": target}, handle)
        images.append(data)
        labels.append(target)
    return np.concatenate(images), np.concatenate(labels)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_round_trip(tmp_path: Path, rng: np.random.Generator, compress: bool) -> None:
    arrays = fake_mnist(tmp_path, rng, compress)
    assert available(tmp_path) == ["mnist"]
    xt, yt, xv, yv = load_mnist(tmp_path)
    assert xt.shape == (12, 784) and xv.shape == (5, 784) and xt.dtype == np.float32
    np.testing.assert_array_equal(xt * 255.0, arrays["train-images-idx3-ubyte"].reshape(12, -1))
    np.testing.assert_array_equal(yt, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(yv, arrays["t10k-labels-idx1-ubyte"])


def test_cifar_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    images, labels = fake_cifar(tmp_path, rng)
    assert available(tmp_path) == ["cifar10"]
    xt, yt, xv, yv = load_cifar10(tmp_path)
    assert xt.shape == (15, 3072) and xv.shape == (3, 3072)
    np.testing.assert_allclose(np.concatenate([xt, xv]) * 255.0, images, atol=1e-4)
    np.testing.assert_array_equal(np.concatenate([yt, yv]), labels)


def test_bad_files_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)
    assert available(tmp_path) == []


def test_train_demo_runs_on_a_local_folder(tmp_path: Path, rng: np.random.Generator, monkeypatch) -> None:
    """The CLI's --data-dir reaches the train demo, which adds an MNIST task read from the folder."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from hjsmooth.demos import train

    fake_mnist(tmp_path / "data", rng, compress=True)
    monkeypatch.setattr(train, "NAMES", ("SGD",))
    numbers = train.run(tmp_path / "train.png", quick=True, seed=0, data_dir=tmp_path / "data")
    assert "mnist-mlp" in numbers["tasks"]
    assert all(0.0 <= e <= 100.0 for e in numbers["tasks"]["mnist-mlp"]["SGD"]["test_error"])
    assert (tmp_path / "train.png").exists()


def test_cli_refuses_data_dir_for_other_demos(tmp_path: Path) -> None:
    from hjsmooth.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "fig4_1", "--quick", "--out", str(tmp_path / "f.png"), "--data-dir", str(tmp_path)])
    assert exc.value.code == 2
