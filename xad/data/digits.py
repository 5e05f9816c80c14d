"""Digit and small natural-image data: MNIST (``mnist.npz`` or IDX files), coloured MNIST derived
deterministically from MNIST, and CIFAR-10 python pickle batches (read with a restricted unpickler
that accepts nothing but plain containers and numpy arrays)."""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xad.data.transforms import DataError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
#: Colours of coloured MNIST, RGB in [0, 1]; index = colour id.
COLOURS = {"red": (1.0, 0.15, 0.1), "green": (0.1, 0.85, 0.2), "blue": (0.15, 0.35, 1.0)}


@dataclass(frozen=True)
class ImageSplits:
    """Train/test arrays. x_*: (N, H, W) or (N, H, W, 3) uint8; y_*: (N,) int64 class ids."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def load_mnist(path: str | Path) -> ImageSplits:
    """MNIST from ``mnist.npz`` (x_train, y_train, x_test, y_test) or a folder of IDX files."""
    path = Path(path)
    if path.is_dir():
        return _load_mnist_idx(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as exc:
        raise DataError(f"{path}: not an MNIST npz (needs x_train, y_train, x_test, y_test)") from exc
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable npz file ({exc})") from exc
    return _checked(path, arrays)


def _checked(path: Path, a: dict[str, np.ndarray]) -> ImageSplits:
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8 or len(x) != len(y):
            raise DataError(f"{path}: x_{split} must be uint8 (N, 28, 28) with N labels")
    names = tuple(str(i) for i in range(10))
    return ImageSplits(a["x_train"], a["y_train"].astype(np.int64), a["x_test"],
                       a["y_test"].astype(np.int64), names)


_IDX = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}


def _load_mnist_idx(folder: Path) -> ImageSplits:
    arrays = {}
    for key, stem in _IDX.items():
        candidates = [folder / stem, folder / f"{stem}.gz", folder / stem.replace("-idx", ".idx")]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(f"{folder}: missing MNIST IDX file {stem}[.gz]")
        arrays[key] = read_idx(found)
    return _checked(folder, arrays)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic 0x0000 08 nd, big-endian dims, uint8 data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    nd = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def colour_ids(n: int, seed: int = 0) -> np.ndarray:
    """Deterministic colour id per sample (N,) in {0, 1, 2}, fixed by ``seed``."""
    return np.random.default_rng(seed).integers(0, len(COLOURS), size=n)


def colourise(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Colour grey digits: x (N, H, W) uint8, ids (N,) -> (N, H, W, 3) uint8 (digit in colour)."""
    palette = np.asarray(list(COLOURS.values()), dtype=np.float32)  # (3, 3)
    out = x[..., None].astype(np.float32) * palette[ids][:, None, None, :]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def coloured_mnist(mnist: ImageSplits, seed: int = 0) -> tuple[ImageSplits, np.ndarray, np.ndarray]:
    """Coloured MNIST derived deterministically from MNIST.

    Returns (splits with (N, 28, 28, 3) images and digit labels, colour ids of train (N,),
    colour ids of test (M,)). Train and test colours come from seeds ``seed`` and ``seed + 1``.
    """
    c_train = colour_ids(len(mnist.x_train), seed)
    c_test = colour_ids(len(mnist.x_test), seed + 1)
    splits = ImageSplits(colourise(mnist.x_train, c_train), mnist.y_train,
                         colourise(mnist.x_test, c_test), mnist.y_test, mnist.class_names)
    return splits, c_train, c_test


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle protocol
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: CIFAR-10 batch must hold data (N, 3072) and N labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10(folder: str | Path) -> ImageSplits:
    """CIFAR-10 from the python version's folder (data_batch_1..5, test_batch)."""
    folder = Path(folder)
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    train_files = sorted(folder.glob("data_batch_*"))
    if not train_files or not (folder / "test_batch").is_file():
        raise DataError(f"{folder}: needs data_batch_1..5 and test_batch (CIFAR-10 python version)")
    parts = [_read_cifar_batch(p) for p in train_files]
    x_test, y_test = _read_cifar_batch(folder / "test_batch")
    return ImageSplits(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                       x_test, y_test, CIFAR10_CLASSES)
