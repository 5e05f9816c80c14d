"""Multi-class anomaly-detection data (Wang & Tavakkoli): several classes normal at once, e.g.
MNIST with nine digits normal and one anomalous (``mnist-anomalous:<d>``), or CIFAR-10 with five
classes normal (``cifar10-normal:01234``). Shared by training, evaluation and the page.

Images are ``uint8 (N, 32, 32, 3)`` (MNIST padded by 2 px, gray repeated over three channels).
A held-out share of the normal training images (``holdout``) stops the classifier before it
saturates; it is a fixed, seeded split so training and evaluation agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xad.data import digits, semantic
from xad.data.settings import Setting, parse
from xad.data.transforms import DataError


@dataclass(frozen=True)
class MultiClassData:
    """setting: the canonical setting name; x_*: (N, 32, 32, 3) uint8; y_*: class ids;
    anomalous_test: (M,) bool; y_train: the classes of ``normal_train`` (used to measure class
    drift, and by training only for the labelled "classes" pairs extension of ``train ldm``)."""

    setting: str
    description: str
    normal_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    anomalous_test: np.ndarray

    @property
    def digit(self) -> int | None:
        """The anomalous digit of an MNIST many-vs-one setting, else None."""
        s = parse(self.setting, warn=False)
        return s.anomalous[0] if s.dataset == "mnist" and len(s.anomalous) == 1 else None


def holdout_split(n: int, holdout: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, held-out indices) of n normal training images, seeded."""
    if not 0 <= holdout < n:
        raise DataError(f"the held-out split ({holdout}) must be smaller than the training set ({n})")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[holdout:]), np.sort(perm[:holdout])


def load_setting(setting: str | Setting, path: str | None = None) -> MultiClassData:
    """The arrays of a multi-class setting. Old names (``mnist:0``) are read the
    latent-diffusion way (the digit is anomalous), with a deprecation message."""
    s = setting if isinstance(setting, Setting) else parse(setting, legacy="anomalous")
    if s.dataset == "mnist":
        m = digits.load_mnist(path or semantic.default_mnist_path())
        normal = np.isin(m.y_train, s.normal)
        return MultiClassData(s.name, s.describe(), semantic.pad_rgb(m.x_train[normal]), m.y_train[normal],
                              semantic.pad_rgb(m.x_test), m.y_test, np.isin(m.y_test, s.anomalous))
    if s.dataset == "cifar10":
        if path is None:
            raise DataError("CIFAR-10 is not embedded: give the cifar-10-batches-py folder with --data")
        c = digits.load_cifar10(path)
        normal = np.isin(c.y_train, s.normal)
        return MultiClassData(s.name, s.describe(), c.x_train[normal], c.y_train[normal], c.x_test, c.y_test,
                              np.isin(c.y_test, s.anomalous))
    raise DataError(f"{s.name}: latent diffusion takes mnist-anomalous:<digit> or cifar10-normal:<classes>")
