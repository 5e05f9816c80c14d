"""The VAE-GAN of Rashid et al. (after the Keras VAE-GAN their notebooks use).

Encoder e: 4 conv layers (3x3, stride 2, "same", ReLU; batch norm after the first three) ->
flatten -> dense (tanh) -> (mu, log-variance). Decoder d: dense to an 8x8 seed (ReLU) -> 4 blocks
[transposed conv k2 s2, conv k3, ReLU, batch norm (not in the last)] -> conv to 3 channels, sigmoid.
Discriminator s: conv k8 s2 -> max pool -> BN -> conv k5 s2 -> max pool -> BN -> conv k4 s2 ->
flatten -> dense -> dense 1 (logit). Reconstruction uses the posterior mean: x' = d(mu(x)).
Presets: ``paper`` (the published sizes) and ``cpu`` (trains on 2 cores in about 30 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xad.weights import register


@dataclass(frozen=True)
class VAEGANConfig:
    image_size: int = 128
    latent_dim: int = 32
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)
    encoder_dense: int = 160
    decoder_seed_channels: int = 64
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    disc_channels: tuple[int, ...] = (128, 64, 32)
    disc_kernels: tuple[int, ...] = (8, 5, 4)
    disc_dense: int = 128

    @property
    def seed_size(self) -> int:  # spatial size after the encoder's stride-2 layers
        return self.image_size // 2 ** len(self.encoder_channels)


PRESETS = {
    "paper": VAEGANConfig(),
    "cpu": VAEGANConfig(encoder_channels=(16, 32, 64, 128), encoder_dense=128,
                        decoder_seed_channels=32, decoder_channels=(128, 64, 32, 16),
                        disc_channels=(32, 16, 16), disc_dense=64),
    "tiny": VAEGANConfig(image_size=32, latent_dim=8, encoder_channels=(4, 8), encoder_dense=16,
                         decoder_seed_channels=4, decoder_channels=(8, 4), disc_channels=(4, 4, 4),
                         disc_kernels=(3, 3, 3), disc_dense=8),
}


class Encoder(nn.Module):
    def __init__(self, c: VAEGANConfig) -> None:
        super().__init__()
        layers, prev = [], 3
        for i, ch in enumerate(c.encoder_channels):
            layers += [nn.Conv2d(prev, ch, 3, stride=2, padding=1), nn.ReLU()]
            if i < len(c.encoder_channels) - 1:
                layers.append(nn.BatchNorm2d(ch))
            prev = ch
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Linear(prev * c.seed_size ** 2, c.encoder_dense)
        self.mu = nn.Linear(c.encoder_dense, c.latent_dim)
        self.log_var = nn.Linear(c.encoder_dense, c.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.dense(self.convs(x).flatten(1)))  # (B, dense)
        return self.mu(h), self.log_var(h)  # (B, latent) each


class Decoder(nn.Module):
    def __init__(self, c: VAEGANConfig) -> None:
        super().__init__()
        self.c = c
        self.dense = nn.Linear(c.latent_dim, c.decoder_seed_channels * c.seed_size ** 2)
        blocks, prev = [], c.decoder_seed_channels
        for i, ch in enumerate(c.decoder_channels):
            blocks += [nn.ConvTranspose2d(prev, ch, 2, stride=2), nn.Conv2d(ch, ch, 3, padding=1),
                       nn.ReLU()]
            if i < len(c.decoder_channels) - 1:
                blocks.append(nn.BatchNorm2d(ch))
            prev = ch
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(prev, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.c.seed_size
        h = F.relu(self.dense(z)).view(-1, self.c.decoder_seed_channels, s, s)
        return torch.sigmoid(self.out(self.blocks(h)))  # (B, 3, H, W) in [0, 1]


class Discriminator(nn.Module):
    def __init__(self, c: VAEGANConfig) -> None:
        super().__init__()
        layers, prev = [], 3
        for i, (ch, k) in enumerate(zip(c.disc_channels, c.disc_kernels)):
            layers += [nn.Conv2d(prev, ch, k, stride=2, padding=k // 2 - 1 if k % 2 == 0 else k // 2),
                       nn.ReLU()]
            if i < len(c.disc_channels) - 1:
                layers += [nn.MaxPool2d(2, ceil_mode=True), nn.BatchNorm2d(ch)]
            prev = ch
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.convs(torch.zeros(1, 3, c.image_size, c.image_size)).numel()
        self.head = nn.Sequential(nn.Linear(n, c.disc_dense), nn.ReLU(), nn.Linear(c.disc_dense, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x).flatten(1)).squeeze(1)  # (B,) logits


@register
class VAEGAN(nn.Module):
    """Encoder, decoder and discriminator. Images are (B, 3, H, W) float in [0, 1]."""

    Config = VAEGANConfig

    def __init__(self, config: VAEGANConfig) -> None:
        super().__init__()
        if config.image_size % 2 ** len(config.encoder_channels):
            raise ValueError("image_size must be divisible by 2 ** len(encoder_channels)")
        if len(config.decoder_channels) != len(config.encoder_channels):
            raise ValueError("decoder_channels must have as many entries as encoder_channels")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.discriminator = Discriminator(config)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):  # noqa: ANN201
        """Training pass: (reconstruction from a sampled z, mu, log_var)."""
        mu, log_var = self.encoder(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.decoder(mu + eps * torch.exp(0.5 * log_var)), mu, log_var

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction from the posterior mean: x' = d(mu(x)). (B, 3, H, W)."""
        return self.decoder(self.encoder(x)[0])
