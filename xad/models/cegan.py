"""The concept-disentangled counterfactual GAN of Liznerski et al. (sec. 3.2): generator
G(x, alpha, k), discriminator D (spectral normalisation, hinge loss) and concept classifier
R(x, x_bar) -> K logits.

G is a small U-Net: the input image with two extra planes (the target score alpha, and k / K)
is encoded to 1/4 resolution, passed through residual blocks that receive an embedding of
(alpha, k), and decoded with skip connections into a colour c and a soft mask m; the output is
m c + (1 - m) x, so "change nothing" (m = 0) is easy to learn (minimal changes). The loss weights, K and the alpha sampling
are config fields, so a weights folder records how its generator was trained.

The same classes serve the DiffEdit version of the paper (``space = "latent"``): there G is the
paper's G', a map between latents of a latent diffusion model's autoencoder (``code_channels``
planes, unbounded values, the output m c + (1 - m) z with a linear c), while D and R still look at
decoded images (:mod:`xad.train.cegan` decodes G's output before they see it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from xad.weights import register

ALPHA_SAMPLING = ("uniform", "extremes")
GENERATOR_LOSSES = ("hinge", "linear")
SPACES = ("image", "latent")
CYCLES = ("full", "intensity")


@dataclass(frozen=True)
class CEGANConfig:
    image_size: int = 32
    concepts: int = 2  # K
    g_channels: tuple[int, ...] = (32, 64)
    g_blocks: int = 3
    d_channels: tuple[int, ...] = (32, 64, 128)
    r_channels: tuple[int, ...] = (32, 64, 128)
    # training objective (eq. 1): weights and how alpha is drawn
    lambda_gan: float = 1.0
    lambda_phi: float = 1.0
    lambda_rec: float = 10.0
    lambda_r: float = 1.0
    alpha_sampling: str = "uniform"  # "uniform" in [0, 1] (the paper), or "extremes": 0 or 1 half the time
    # L_G: "hinge" max(0, 1 - D(G(x))) (the paper), or "linear" -D(G(x)) (an earlier xad default)
    generator_loss: str = "hinge"
    pseudo_anomaly_fraction: float = 0.25  # share of a batch replaced by G(x, alpha >> phi(x), k)
    # what G maps: RGB images in [0, 1] (the GAN version), or an autoencoder's latents (G' of the
    # DiffEdit version: code_channels planes, any real values)
    space: str = "image"
    code_channels: int = 3
    # an image-space G may also recolour the whole image: a 3x3 colour mixing matrix per image
    # (predicted from G's bottleneck, starting at the identity, no offset so black stays black)
    # that the painted pixels are blended over; on in the shipped coloured-MNIST generator
    colour_mixing: bool = False
    # what L_cyc compares: "full" (every channel) or "intensity" (an image-space G only: the
    # per-pixel max over channels, so turning the CE back need not recover a colour it replaced)
    cycle: str = "full"

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}")
        if self.space == "image" and self.code_channels != 3:
            raise ValueError("an image-space generator maps RGB images: code_channels must be 3")
        if self.colour_mixing and self.space != "image":
            raise ValueError("colour_mixing recolours RGB images: only for space 'image'")
        if self.cycle not in CYCLES:
            raise ValueError(f"cycle must be one of {CYCLES}")
        if self.cycle == "intensity" and self.space != "image":
            raise ValueError("cycle 'intensity' compares RGB images: only for space 'image'")
        if self.generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}")
        if self.alpha_sampling not in ALPHA_SAMPLING:
            raise ValueError(f"alpha_sampling must be one of {ALPHA_SAMPLING}")
        if self.concepts < 1:
            raise ValueError("concepts (K) must be >= 1")


PRESETS = {
    # lambda_phi 5, lambda_rec 5 (the paper leaves the constants open): measured on mnist:7 against the
    # shipped HSC detector, 3000 steps, 2000 test anomalies: target error 0.095 (lambda_phi 1 / lambda_rec 5:
    # 0.207; lambda_phi 20: 0.106 at n = 300, FID_N 73), AuROC normal vs CE 73.8 %, FID_N 45.8
    "cpu": CEGANConfig(g_channels=(16, 32), lambda_phi=5.0, lambda_rec=5.0),
    "tiny": CEGANConfig(g_channels=(4, 8), g_blocks=1, d_channels=(4, 8), r_channels=(4, 8)),
}


class _Res(nn.Module):
    def __init__(self, ch: int, cond: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.n1, self.n2 = nn.InstanceNorm2d(ch, affine=True), nn.InstanceNorm2d(ch, affine=True)
        self.film = nn.Linear(cond, 2 * ch)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c)[..., None, None].chunk(2, dim=1)
        y = F.relu(self.n1(self.c1(h)) * (1 + scale) + shift)
        return h + self.n2(self.c2(y))


class Generator(nn.Module):
    def __init__(self, c: CEGANConfig) -> None:
        super().__init__()
        self.k = c.concepts
        self.latent = c.space == "latent"
        cond = 32
        self.embed = nn.Sequential(nn.Linear(1 + c.concepts, cond), nn.ReLU(), nn.Linear(cond, cond))
        chs = c.g_channels
        self.stem = nn.Conv2d(c.code_channels + 2, chs[0], 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in zip(chs, chs[1:]))
        self.down.insert(0, nn.Conv2d(chs[0], chs[0], 4, stride=2, padding=1))
        self.blocks = nn.ModuleList(_Res(chs[-1], cond) for _ in range(c.g_blocks))
        ups, rev = [], list(reversed(chs))
        for a, b in zip(rev, rev[1:] + [chs[0]]):
            ups.append(nn.ConvTranspose2d(2 * a, b, 4, stride=2, padding=1))
        self.up = nn.ModuleList(ups)
        self.cc = c.code_channels
        self.out = nn.Conv2d(2 * chs[0], self.cc + 1, 3, padding=1)  # colour (cc), where to use it (1)
        with torch.no_grad():
            self.out.bias[self.cc] = -3.0  # start close to the identity: change little
        self.mixing = nn.Linear(chs[-1] + cond, 9) if c.colour_mixing else None
        if self.mixing is not None:  # starts at the identity matrix
            nn.init.zeros_(self.mixing.weight)
            with torch.no_grad():
                self.mixing.bias.copy_(torch.eye(3).flatten())

    def forward(self, x: torch.Tensor, alpha: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) in [0, 1] (or (B, code_channels, h, w) latents); alpha: (B,) in
        [0, 1]; k: (B,) long in 0..K-1."""
        b, _, h, w = x.shape
        onehot = F.one_hot(k, self.k).float()
        c = self.embed(torch.cat([alpha[:, None].float(), onehot], 1))
        planes = torch.cat([alpha.view(b, 1, 1, 1).expand(b, 1, h, w).float(),
                            (k.float() / max(1, self.k - 1)).view(b, 1, 1, 1).expand(b, 1, h, w)], 1)
        hcur = F.relu(self.stem(torch.cat([x if self.latent else x * 2 - 1, planes], 1)))
        skips = [hcur]
        for conv in self.down:
            hcur = F.relu(conv(hcur))
            skips.append(hcur)
        for block in self.blocks:
            hcur = block(hcur, c)
        base = x
        if self.mixing is not None:  # recolour the whole image: x' = M x per pixel, M (3, 3) per image
            mix = self.mixing(torch.cat([hcur.mean((2, 3)), c], 1)).view(b, 3, 3)
            base = torch.einsum("bij,bjhw->bihw", mix, x).clamp(0, 1)
        for up in self.up:
            hcur = F.relu(up(torch.cat([hcur, skips.pop()], 1)))
        colour, where = self.out(torch.cat([hcur, skips.pop()], 1)).split([self.cc, 1], dim=1)
        m = torch.sigmoid(where)
        return m * (colour if self.latent else torch.sigmoid(colour)) + (1 - m) * base


def _sn_net(channels: tuple[int, ...], in_ch: int, size: int, out: int) -> nn.Sequential:
    layers, prev = [], in_ch
    for ch in channels:
        layers += [spectral_norm(nn.Conv2d(prev, ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        prev = ch
        size //= 2
    return nn.Sequential(*layers, nn.Flatten(), spectral_norm(nn.Linear(prev * size * size, out)))


@register
class CEGAN(nn.Module):
    """G, D and R together, so one weights folder holds a trained counterfactual generator."""

    Config = CEGANConfig

    def __init__(self, config: CEGANConfig) -> None:
        super().__init__()
        if config.image_size % 2 ** max(len(config.d_channels), len(config.r_channels),
                                        len(config.g_channels)):
            raise ValueError("image_size must be divisible by 2 ** (number of downsamplings)")
        self.config = config
        self.generator = Generator(config)
        self.discriminator = _sn_net(config.d_channels, 3, config.image_size, 1)
        r_layers, prev, size = [], 6, config.image_size
        for ch in config.r_channels:
            r_layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            prev, size = ch, size // 2
        self.concept_classifier = nn.Sequential(*r_layers, nn.Flatten(),
                                                nn.Linear(prev * size * size, config.concepts))

    def forward(self, x: torch.Tensor, alpha: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.generator(x, alpha, k)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x * 2 - 1).squeeze(1)

    def concept_logits(self, x: torch.Tensor, x_bar: torch.Tensor) -> torch.Tensor:
        """R(x, x_bar): (B, K) logits of which concept turned x into x_bar. R sees x and the change
        x_bar - x (the same information as the pair, but small changes are not drowned by x)."""
        return self.concept_classifier(torch.cat([x * 2 - 1, (x_bar - x) * 4], 1))
