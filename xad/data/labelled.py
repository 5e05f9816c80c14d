"""Digit datasets with a label per image, as training and inference share them: the captions of
the text-conditional latent diffusion model (:mod:`xad.models.textldm`) and the label heads of the
FID feature extractor (:mod:`xad.models.features`). Images are the embedded MNIST (or an npz/IDX
copy), padded to (N, 32, 32, 3) uint8; coloured MNIST's colours come from seed 0 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xad.data import digits, semantic
from xad.data.transforms import DataError

#: The digit datasets both the text LDM and the feature extractor are trained on.
DATASETS = ("mnist", "cmnist")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Colour words of the captions (coloured MNIST uses the first three; see :data:`digits.COLOURS`).
COLOUR_NAMES = ("red", "green", "blue", "white")


def caption(digit: int, colour: str | None = None) -> str:
    """The training caption of a digit image: "digit seven", or "red digit one" with a colour."""
    if not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be 0..9, not {digit}")
    if colour is not None and colour not in COLOUR_NAMES:
        raise ValueError(f"colour must be one of {COLOUR_NAMES} or None, not {colour!r}")
    return f"{colour + ' ' if colour else ''}digit {DIGIT_NAMES[int(digit)]}"



@dataclass(frozen=True)
class CaptionedDigits:
    """x_*: (N, 32, 32, 3) uint8; y_*: digit labels; colour_*: colour names or None (mnist);
    captions_*: one caption per image."""

    dataset: str
    x_train: np.ndarray
    y_train: np.ndarray
    captions_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    colour_test: np.ndarray | None
    captions_test: np.ndarray


def load_captioned(dataset: str, path: str | None = None) -> CaptionedDigits:
    """The embedded MNIST (or the npz/IDX at ``path``) with captions; DataError for an unknown
    dataset. Coloured MNIST's colours come from seed 0 (those of ``xad train features``)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r} (use one of {', '.join(DATASETS)})")
    m = digits.load_mnist(path or semantic.default_mnist_path())
    if dataset == "mnist":
        cap = np.array([caption(d) for d in range(10)])
        return CaptionedDigits(dataset, semantic.pad_rgb(m.x_train), m.y_train, cap[m.y_train],
                               semantic.pad_rgb(m.x_test), m.y_test, None, cap[m.y_test])
    cm, c_train, c_test = digits.coloured_mnist(m, 0)
    names = np.array(list(digits.COLOURS))
    cap = np.array([[caption(d, c) for c in names] for d in range(10)])  # (10, colours)
    return CaptionedDigits(dataset, semantic.pad_rgb(cm.x_train), cm.y_train, cap[cm.y_train, c_train],
                           semantic.pad_rgb(cm.x_test), cm.y_test, names[c_test], cap[cm.y_test, c_test])


def label_heads(dataset: str, path: str | None = None) -> tuple[np.ndarray, list, np.ndarray, list]:
    """The feature extractor's data: (x_train, [labels per head], x_test, [labels per head]);
    images (N, 32, 32, 3) uint8; heads: digit (mnist), digit and colour index (cmnist)."""
    m = digits.load_mnist(path or semantic.default_mnist_path())
    if dataset == "mnist":
        return (semantic.pad_rgb(m.x_train), [m.y_train], semantic.pad_rgb(m.x_test), [m.y_test])
    if dataset == "cmnist":
        cm, c_train, c_test = digits.coloured_mnist(m, 0)
        return (semantic.pad_rgb(cm.x_train), [cm.y_train, c_train],
                semantic.pad_rgb(cm.x_test), [cm.y_test, c_test])
    raise ValueError(f"dataset must be one of {DATASETS}")
