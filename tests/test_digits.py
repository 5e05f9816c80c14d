"""MNIST (npz and IDX), coloured MNIST, and CIFAR-10 batches written by the tests themselves."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from xad.data.digits import coloured_mnist, load_cifar10, load_mnist
from xad.data.transforms import DataError


def _mnist_arrays(n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 255, (n, 28, 28), np.uint8), "y_train": np.arange(n) % 10,
            "x_test": rng.integers(0, 255, (n // 2, 28, 28), np.uint8), "y_test": np.arange(n // 2) % 10}


def _write_idx(path: Path, a: np.ndarray) -> None:
    header = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    path.write_bytes(gzip.compress(header + a.astype(np.uint8).tobytes()))


def test_mnist_npz_and_idx_agree(tmp_path: Path) -> None:
    a = _mnist_arrays()
    np.savez(tmp_path / "mnist.npz", **a)
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    for key, stem in names.items():
        _write_idx(tmp_path / f"{stem}.gz", a[key])
    npz, idx = load_mnist(tmp_path / "mnist.npz"), load_mnist(tmp_path)
    np.testing.assert_array_equal(npz.x_train, idx.x_train)
    np.testing.assert_array_equal(npz.y_test, idx.y_test)
    assert npz.x_test.shape == (6, 28, 28)


def test_mnist_refusals(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", images=np.zeros(3))
    with pytest.raises(DataError, match="other.npz: not an MNIST npz"):
        load_mnist(tmp_path / "other.npz")
    with pytest.raises(DataError, match="missing MNIST IDX file"):
        load_mnist(tmp_path)
    (tmp_path / "x.npz").write_text("garbage")
    with pytest.raises(DataError, match="x.npz: not a readable npz"):
        load_mnist(tmp_path / "x.npz")


def test_coloured_mnist_is_deterministic() -> None:
    from xad.data.digits import ImageSplits

    a = _mnist_arrays(30)
    m = ImageSplits(a["x_train"], a["y_train"], a["x_test"], a["y_test"], tuple("0123456789"))
    c1, ids1, _ = coloured_mnist(m, seed=3)
    c2, ids2, _ = coloured_mnist(m, seed=3)
    np.testing.assert_array_equal(c1.x_train, c2.x_train)
    assert c1.x_train.shape == (30, 28, 28, 3) and set(ids1) <= {0, 1, 2}
    red = np.flatnonzero(ids1 == 0)[0]  # red digits: R channel carries the stroke
    assert c1.x_train[red, ..., 0].sum() > c1.x_train[red, ..., 2].sum()


def _cifar_batch(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 255, (n, 3072), np.uint8), b"labels": [int(v) for v in rng.integers(0, 10, n)]}
    path.write_bytes(pickle.dumps(d))


def test_cifar10_batches(tmp_path: Path) -> None:
    for i in range(1, 3):
        _cifar_batch(tmp_path / f"data_batch_{i}", 5, i)
    _cifar_batch(tmp_path / "test_batch", 4, 9)
    c = load_cifar10(tmp_path)
    assert c.x_train.shape == (10, 32, 32, 3) and c.x_test.shape == (4, 32, 32, 3)
    assert c.class_names[0] == "airplane"
    raw = pickle.loads((tmp_path / "data_batch_1").read_bytes())[b"data"][0]
    assert c.x_train[0, 0, 1, 0] == raw[1] and c.x_train[0, 0, 0, 2] == raw[2048]  # CHW -> HWC


def test_cifar10_refuses_code_in_pickles(tmp_path: Path) -> None:
    import os

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, ("echo pwned",))

    _cifar_batch(tmp_path / "data_batch_1", 2, 0)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 python batch .*refused global"):
        load_cifar10(tmp_path)
