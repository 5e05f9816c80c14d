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
    assert p.shape == (6, 32, 32, 3) and p.dtype == np.uint8 and p.std() > 10
    np.testing.assert_array_equal(p, semantic.outliers("photos", 6, seed=1))  # seeded ...
    assert not np.array_equal(p, semantic.outliers("photos", 6, seed=2))  # ... by its seed
    # photos, not drawings: far more distinct colours per crop than the letter OE has
    colours = lambda a: np.mean([len(np.unique(x.reshape(-1, 3), axis=0)) for x in a])  # noqa: E731
    assert colours(p) > 4 * colours(semantic.outliers("letters-coloured", 6, seed=1))


def test_two_colour_oe_repaints_part_of_the_strokes_in_the_normal_colour() -> None:
    x = semantic.letters(200, seed=5, coloured=True)
    y = semantic.two_colour(x, seed=1, share=0.5, normal_colour=(1.0, 0.15, 0.1))
    np.testing.assert_array_equal(y, semantic.two_colour(x, seed=1, share=0.5, normal_colour=(1.0, 0.15, 0.1)))
    np.testing.assert_array_equal(y.max(-1), x.max(-1))  # the strokes' intensity is kept: only hue changes
    changed = (y != x).any(-1)
    per_image = changed.any((1, 2))
    assert 0.35 < per_image.mean() < 0.65  # about half of the images get a second colour
    ink = x.max(-1) > 50
    share = changed[per_image].sum((1, 2)) / np.maximum(ink[per_image].sum((1, 2)), 1)
    assert share.min() > 0.0 and share.max() < 0.9  # part of the strokes, never all of them
    # half of the repaints are in the normal colour: red dominant, green and blue at ~0.15 / 0.1 of it
    region = changed & ink
    red = (y[..., 0] > 3 * y[..., 1]) & (y[..., 0] > 3 * y[..., 2])
    assert (red & region).sum() / region.sum() > 0.3
    mixed = semantic.outliers("letters-two-colour", 40, seed=2)
    assert mixed.shape == (40, 32, 32, 3) and set(semantic.OE_KINDS) >= {"letters-two-colour", "letters"}
