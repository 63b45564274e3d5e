"""MNIST and CIFAR-10 from a local folder, for users who already have the data (never downloaded).

Layout expected under ``data_dir`` (the one ``torchvision.datasets`` writes):

* ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (IDX files);
* ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the python pickles of CIFAR-10).

When torchvision imports, it reads the folder (``download=False``); otherwise the same files are
parsed here, so the loaders work beside a torch build that has no matching torchvision.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

__all__ = ["load_mnist", "load_cifar10", "read_idx", "available"]

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic ``0 0 dtype ndim``, ``ndim`` big-endian sizes, data."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    else:
        raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"`path` {str(path)!r} is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"`path` {str(path)!r}: header says {shape}, file holds {data.size} values")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no {stem}[.gz] in {str(folder)!r}")


def _as_features(
    xt: np.ndarray, yt: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images flattened to float32 rows in [0, 1], labels as int64."""
    return (
        xt.reshape(len(xt), -1).astype(np.float32) / 255.0,
        yt.astype(np.int64),
        xv.reshape(len(xv), -1).astype(np.float32) / 255.0,
        yv.astype(np.int64),
    )


def _torchvision():  # noqa: ANN202 - the module, or None
    try:
        import torchvision  # noqa: PLC0415

        return torchvision
    except Exception:  # noqa: BLE001 - missing, or built for another torch: fall back to the files
        return None


def load_mnist(data_dir: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images as float32 in [0, 1] of shape (n, 784), labels int64."""
    data_dir = Path(data_dir)
    tv = _torchvision()
    if tv is not None:
        parts = []
        for train in (True, False):
            ds = tv.datasets.MNIST(str(data_dir), train=train, download=False)
            parts += [ds.data.numpy(), ds.targets.numpy()]
    else:
        raw = data_dir / "MNIST" / "raw"
        parts = []
        for split in ("train", "test"):
            images, labels = _MNIST_FILES[split]
            parts += [read_idx(_find(raw, images)), read_idx(_find(raw, labels))]
    return _as_features(*parts)


def load_cifar10(data_dir: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images as float32 in [0, 1] of shape (n, 3072) (CHW order)."""
    data_dir = Path(data_dir)
    tv = _torchvision()
    if tv is not None:
        parts = []
        for train in (True, False):
            ds = tv.datasets.CIFAR10(str(data_dir), train=train, download=False)
            parts += [np.asarray(ds.data).transpose(0, 3, 1, 2), np.asarray(ds.targets)]
    else:
        folder = data_dir / "cifar-10-batches-py"
        if not folder.is_dir():
            raise FileNotFoundError(f"no cifar-10-batches-py folder in {str(data_dir)!r}")

        def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
            with open(folder / name, "rb") as handle:
                entry = pickle.load(handle, encoding="bytes")
            return np.asarray(entry[b"data"], np.uint8), np.asarray(entry[b"labels"])

        batches = [batch(f"data_batch_{i}") for i in range(1, 6)]
        parts = [np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]), *batch("test_batch")]
    return _as_features(*parts)


def available(data_dir: Path | str) -> list[str]:
    """Which of ``"mnist"``, ``"cifar10"`` have their files under ``data_dir``."""
    data_dir = Path(data_dir)
    found = []
    raw = data_dir / "MNIST" / "raw"
    if all(
        any((raw / f"{stem}{gz}").exists() for gz in ("", ".gz")) for pair in _MNIST_FILES.values() for stem in pair
    ):
        found.append("mnist")
    if (data_dir / "cifar-10-batches-py" / "test_batch").exists():
        found.append("cifar10")
    return found
