"""The feature extractor for FID on small images: a CNN classifier trained on the dataset's own
labels (digit, and colour for coloured MNIST), whose penultimate layer gives the features.

The paper computes FID with Inception features; Inception cannot be downloaded here and does not
fit 32 px digits, so xad ships this extractor with a card, and the page and the cards say which
extractor a FID_N was computed with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xad.tensors import to_tensor
from xad.weights import register


@dataclass(frozen=True)
class FeatureNetConfig:
    image_size: int = 32
    heads: tuple[int, ...] = (10,)  # class counts, e.g. (10,) digits or (10, 3) digit and colour
    head_names: tuple[str, ...] = ("digit",)
    channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 128

    def __post_init__(self) -> None:
        if len(self.heads) != len(self.head_names):
            raise ValueError("heads and head_names must have the same length")


@register
class FeatureNet(nn.Module):
    Config = FeatureNetConfig

    def __init__(self, config: FeatureNetConfig) -> None:
        super().__init__()
        self.config = config
        layers, prev = [], 3
        for ch in config.channels:
            layers += [nn.Conv2d(prev, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(), nn.MaxPool2d(2)]
            prev = ch
        side = config.image_size // 2 ** len(config.channels)
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(prev * side * side, config.feature_dim))
        self.heads = nn.ModuleList(nn.Linear(config.feature_dim, n) for n in config.heads)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, feature_dim), the FID features."""
        return F.relu(self.body(x * 2 - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.features(x)
        return [head(f) for head in self.heads]


def dataset_of(setup: str) -> str:
    """Which feature extractor a setup's FID uses: "mnist:7" -> "mnist"; "" for none."""
    return {"mnist": "mnist", "cmnist": "cmnist"}.get(setup.partition(":")[0], "")


@torch.no_grad()
def features(model: FeatureNet, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(N, 32, 32, 3) uint8 or float in [0, 1] -> (N, feature_dim) float64."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        out.append(model.features(to_tensor(images[i: i + batch_size])).double().numpy())
    return np.concatenate(out)


@torch.no_grad()
def predict(model: FeatureNet, images: np.ndarray, batch_size: int = 512) -> list[np.ndarray]:
    """The classifier's own predictions, one (N,) int array per head (digit; digit and colour)."""
    model.eval()
    heads: list[list[np.ndarray]] = [[] for _ in model.config.heads]
    for i in range(0, len(images), batch_size):
        for h, logits in zip(heads, model(to_tensor(images[i: i + batch_size]))):
            h.append(logits.argmax(1).numpy())
    return [np.concatenate(h) if h else np.zeros(0, np.int64) for h in heads]
