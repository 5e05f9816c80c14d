"""Latent-diffusion multi-class anomaly detection (Wang & Tavakkoli), on diffusers and transformers
building blocks:

- compression: ``diffusers.VQModel`` (3 levels; 32x32 images -> 8x8x3 latents, VQ regularised);
- diffusion: ``diffusers.UNet2DModel`` on the latents with ``DDPMScheduler`` (T = 1000, linear
  betas). The latents are **not rescaled** (``latent_scale`` 1, as in the paper), so t means the
  paper's t: at t = 200 the signal-to-noise ratio of the latent is the paper's. Reconstruction from
  timestep t = forward-noise the latent to t, run DDPM ancestral sampling (Eq. 9) from t to 0,
  decode; ``DDIMScheduler`` with a 50-step schedule is the fast option;
- classifier: a ResNet-18 from ``transformers`` (``ResNetConfig``, 6 input channels) on the channel
  concatenation of the input and a second image; trained with positives (x, reconstruction of x
  from t) and negatives (x, a sample generated from pure noise); the anomaly score is its logit
  of "different class" (log-odds; :meth:`p_different` gives the probability).

Everything lives in one module (and one weights folder); the three parts are trained in turn by
:mod:`xad.train.ldm`. Images are (B, 3, 32, 32) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xad.weights import register

SAMPLERS = ("ddpm", "ddim")


@dataclass(frozen=True)
class LDMConfig:
    image_size: int = 32
    vq_channels: tuple[int, ...] = (64, 128, 256)
    vq_layers_per_block: int = 1
    latent_channels: int = 3
    vq_codes: int = 512
    unet_channels: tuple[int, ...] = (224, 448, 672)
    unet_layers_per_block: int = 2
    norm_groups: int = 32
    timesteps: int = 1000
    clf_embedding: int = 64
    clf_hidden: tuple[int, ...] = (64, 128, 256, 512)  # ResNet-18: depths 2, 2, 2, 2
    latent_scale: float = 1.0  # 1 = the paper's unscaled latents; 1 / std = Stable Diffusion's scaling
    t_default: int = 200


PRESETS = {
    "paper": LDMConfig(),
    # sized for one CPU thread (AVX2, fp32): a training run of all three stages in about 20 min
    "cpu": LDMConfig(vq_channels=(8, 16, 32), vq_codes=256, unet_channels=(16, 32, 48),
                     unet_layers_per_block=1, norm_groups=8, clf_embedding=16,
                     clf_hidden=(16, 32, 64, 128)),
    "tiny": LDMConfig(vq_channels=(8, 8, 8), vq_codes=16, unet_channels=(8, 8, 8),
                      unet_layers_per_block=1, norm_groups=4, timesteps=50, clf_embedding=4,
                      clf_hidden=(4, 4, 4, 4), t_default=10),
}


@register
class LatentDiffusionAD(nn.Module):
    Config = LDMConfig

    def __init__(self, config: LDMConfig) -> None:
        super().__init__()
        from diffusers import UNet2DModel, VQModel
        from transformers import ResNetConfig, ResNetForImageClassification

        c = config
        levels = len(c.vq_channels)
        self.config = c
        self.vq = VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                          up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=c.vq_channels,
                          layers_per_block=c.vq_layers_per_block, latent_channels=c.latent_channels,
                          num_vq_embeddings=c.vq_codes, vq_embed_dim=c.latent_channels,
                          sample_size=c.image_size, norm_num_groups=c.norm_groups)
        n = len(c.unet_channels)
        self.unet = UNet2DModel(
            sample_size=c.image_size // 2 ** (levels - 1), in_channels=c.latent_channels,
            out_channels=c.latent_channels, block_out_channels=c.unet_channels,
            down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
            up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
            layers_per_block=c.unet_layers_per_block, norm_num_groups=c.norm_groups)
        self.classifier = ResNetForImageClassification(ResNetConfig(
            num_channels=6, embedding_size=c.clf_embedding, hidden_sizes=list(c.clf_hidden),
            depths=[2] * len(c.clf_hidden), layer_type="basic", num_labels=2,
            downsample_in_first_stage=False))

    # -- compression --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> quantised, scaled latents (B, C, h, w)."""
        h = self.vq.encode(x * 2 - 1).latents
        z, _, _ = self.vq.quantize(h)
        return z * self.config.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [0, 1] (quantised again, as the VQ decoder expects)."""
        out = self.vq.decode(z / self.config.latent_scale).sample
        return ((out + 1) / 2).clamp(0, 1)

    def autoencode(self, x: torch.Tensor) -> torch.Tensor:
        """The plain autoencoder reconstruction (the AE baseline): decode(encode(x))."""
        return self.decode(self.encode(x))

    # -- diffusion ----------------------------------------------------------------------------
    def scheduler(self, sampler: str = "ddpm", steps: int | None = None):  # noqa: ANN201
        """A fresh DDPM or DDIM scheduler, linear betas. DDPM runs all T steps (``steps`` is ignored);
        DDIM a ``steps``-step schedule (default 50)."""
        from diffusers import DDIMScheduler, DDPMScheduler

        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}")
        cls = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
        s = cls(num_train_timesteps=self.config.timesteps, beta_schedule="linear", clip_sample=False)
        s.set_timesteps(self.config.timesteps if sampler == "ddpm" else (steps or 50))
        return s

    def denoise_from(self, z_t: torch.Tensor, t: int, sampler: str = "ddpm", steps: int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the reverse process from timestep t down to 0 on latents z_t."""
        s = self.scheduler(sampler, steps)
        for tau in [int(v) for v in s.timesteps if int(v) <= t]:
            eps = self.unet(z_t, torch.full((len(z_t),), tau, dtype=torch.long)).sample
            kwargs = {"generator": generator} if sampler == "ddpm" else {"eta": 0.0}
            z_t = s.step(eps, tau, z_t, **kwargs).prev_sample
        return z_t

    def first_timestep(self, t: int, sampler: str = "ddpm", steps: int | None = None) -> int:
        """The largest timestep of the sampler's schedule that is <= t (where noising starts)."""
        s = self.scheduler(sampler, steps)
        below = [int(v) for v in s.timesteps if int(v) <= t]
        return max(below) if below else 0

    @torch.no_grad()
    def reconstruct_latents(self, x: torch.Tensor, t: int, sampler: str = "ddpm", steps: int | None = None,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z0, z0_hat): the latent of x, and that latent noised to t (one draw from
        ``generator``) and denoised back to 0."""
        z0 = self.encode(x)
        if t <= 0:
            return z0, z0
        t0 = self.first_timestep(t, sampler, steps)
        noise = torch.randn(z0.shape, generator=generator)
        z_t = self.scheduler("ddpm").add_noise(z0, noise, torch.full((len(z0),), t0, dtype=torch.long))
        return z0, self.denoise_from(z_t, t0, sampler, steps, generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, t: int, sampler: str = "ddpm", steps: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise the latent of x to t, denoise to 0, decode: images in [0, 1]."""
        return self.decode(self.reconstruct_latents(x, t, sampler, steps, generator)[1])

    @torch.no_grad()
    def sample(self, n: int, sampler: str = "ddpm", steps: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images generated from pure noise (the classifier's negatives): DDPM from t = T - 1."""
        side = self.config.image_size // 2 ** (len(self.config.vq_channels) - 1)
        z = torch.randn((n, self.config.latent_channels, side, side), generator=generator)
        return self.decode(self.denoise_from(z, self.config.timesteps - 1, sampler, steps, generator))

    # -- classifier ---------------------------------------------------------------------------
    def pair_logits(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """ResNet-18 logits (B, 2) on cat(x, other) along channels; class 1 = "different"."""
        return self.classifier(pixel_values=torch.cat([x, other], 1) * 2 - 1).logits

    @torch.no_grad()
    def score(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Anomaly score: the classifier's logit (log-odds) that x and its reconstruction differ
        in class. A logit, not a probability, so that confident scores still rank."""
        logits = self.pair_logits(x, reconstruction).float()
        return logits[:, 1] - logits[:, 0]

    @torch.no_grad()
    def p_different(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """The classifier's probability that x and its reconstruction differ in class."""
        return torch.sigmoid(self.score(x, reconstruction))

    # -- batched inference helpers (training and evaluation share them) -----------------------
    @torch.no_grad()
    def encode_batched(self, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
        return torch.cat([self.encode(x[i: i + batch]) for i in range(0, len(x), batch)])

    @torch.no_grad()
    def reconstruct_batched(self, x: torch.Tensor, t: int, sampler: str = "ddpm", steps: int | None = None,
                            generator: torch.Generator | None = None, batch: int = 500) -> torch.Tensor:
        return torch.cat([self.reconstruct(x[i: i + batch], t, sampler, steps, generator)
                          for i in range(0, len(x), batch)]) if len(x) else x.clone()

    @torch.no_grad()
    def sample_batched(self, n: int, sampler: str = "ddpm", steps: int | None = None,
                       generator: torch.Generator | None = None, batch: int = 500) -> torch.Tensor:
        return torch.cat([self.sample(min(batch, n - i), sampler, steps, generator) for i in range(0, n, batch)])
