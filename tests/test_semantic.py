"""Semantic AD setups and offline outlier exposure."""

import numpy as np
import pytest

from xad.data import semantic
from xad.data.transforms import DataError


def test_mnist_one_vs_rest() -> None:
    d = semantic.load_setup("mnist:7")
    assert d.normal_train.shape[1:] == (32, 32, 3) and d.normal_train.dtype == np.uint8
    assert len(d.normal_train) == 6265  # MNIST's training sevens
    assert set(d.labels_test[~d.anomalous_test]) == {"7"}
    assert "7" not in set(d.labels_test[d.anomalous_test])
    assert (d.normal_train[:, :2] == 0).all()  # padded by 2 px


def test_coloured_mnist_one_or_red_is_normal() -> None:
    d = semantic.load_setup("cmnist:one+red")
    for lab, anom in zip(d.labels_test[:500], d.anomalous_test[:500]):
        digit, colour = lab.split()
        assert anom == (digit != "1" and colour != "red"), lab
    again = semantic.load_setup("cmnist:one+red")
    np.testing.assert_array_equal(d.x_test[:50], again.x_test[:50])  # deterministic colours


@pytest.mark.parametrize("bad", ["mnist:x", "mnist:10", "cmnist:two", "svhn:1", "cifar10:ship"])
def test_bad_setups_are_refused_clearly(bad: str) -> None:
    with pytest.raises(DataError):
        semantic.load_setup(bad)


def test_letters_are_deterministic_and_not_digits() -> None:
    a, b = semantic.letters(20, seed=3), semantic.letters(20, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (20, 32, 32, 3) and a.max() > 200 and (a[..., 0] == a[..., 1]).all()
    c = semantic.letters(20, seed=3, coloured=True)
    assert not (c[..., 0] == c[..., 2]).all()  # coloured
    assert not set("IlOo0123456789") & set(semantic.OE_LETTERS)


def test_photo_crops_come_from_shipped_photos() -> None:
    p = semantic.outliers("photos", 6, seed=1)
    assert p.shape == (6, 32, 32, 3) and p.std() > 10
    np.testing.assert_array_equal(p, semantic.photo_crops(6, seed=1))
