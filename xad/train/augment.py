"""Batched image augmentation in torch (rotation, shift, zoom, flips, brightness), seeded."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Mild augmentation as in the VAE-GAN reference: degrees, fractions and factor ranges."""

    rotation: float = 40.0
    shift: float = 0.05
    zoom: float = 0.05
    brightness: tuple[float, float] = (0.8, 1.2)
    flips: bool = True
    rot90: bool = True


PROFILES = {
    "object": Augment(),  # parts that may lie in any orientation (the reference's hazelnut)
    "texture": Augment(rotation=5.0, flips=True, rot90=False),  # oriented textures (brick)
    # the eight exact symmetries of the square (90-degree turns, flips): no interpolation, so no blur;
    # for parts that lie in any orientation under light from any side (hexnut, washer)
    "dihedral": Augment(rotation=0.0, shift=0.0, zoom=0.0, brightness=(1.0, 1.0), flips=True, rot90=True),
    "none": Augment(rotation=0.0, shift=0.0, zoom=0.0, brightness=(1.0, 1.0), flips=False, rot90=False),
}


def augment(x: torch.Tensor, a: Augment, g: torch.Generator) -> torch.Tensor:
    """x: (B, 3, H, W) in [0, 1] -> augmented (B, 3, H, W); borders reflect."""
    b = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=g)

    angle = u(-a.rotation, a.rotation) * math.pi / 180
    if a.rot90:
        angle = angle + torch.randint(0, 4, (b,), generator=g) * math.pi / 2
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if a.flips else torch.ones(b)
    scale = u(1 - a.zoom, 1 + a.zoom)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, u(-a.shift, a.shift) * 2], 1),
                         torch.stack([sin * flip, cos, u(-a.shift, a.shift) * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return (out * u(*a.brightness)[:, None, None, None]).clamp(0, 1)
