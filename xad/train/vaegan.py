"""Training the VAE-GAN on normal images only (Rashid et al.; losses as in the reference code).

Per step: 1. encode, sample z, decode (eq. z = e(x), x' = d(z)); 2. VAE loss = BCE(x', x) summed
over pixels + KL + max(BCE(s(x'), real) - L_s, 1e-4); 3. discriminator loss L_s = BCE(s(x), real)
+ BCE(s(x'), fake). Adam, lr 1e-3, batch 32. Mixed precision (bf16 autocast) on CPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from xad.precision import bf16_is_fast
from xad.models.vaegan import VAEGAN
from xad.tensors import to_tensor
from xad.train.augment import PROFILES, augment


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    augment: str = "object"  # a key of xad.train.augment.PROFILES
    max_minutes: float = 0.0  # stop early after this wall time (0: no limit)
    bf16: bool = field(default_factory=bf16_is_fast)


@dataclass(frozen=True)
class TrainLog:
    steps_done: int
    seconds: float
    final_losses: dict[str, float]


def _losses(model: VAEGAN, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict]:
    rec, mu, log_var = model(x, generator=g)  # 1.
    rec = rec.float()
    bce = F.binary_cross_entropy(rec, x, reduction="none").sum(dim=(1, 2, 3)).mean()
    kl = (-0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(1)).mean()
    d_real = model.discriminator(x).float()
    d_fake = model.discriminator(rec.detach()).float()
    ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_real)
    d_loss = (F.binary_cross_entropy_with_logits(d_real, ones)
              + F.binary_cross_entropy_with_logits(d_fake, zeros))  # 3.
    fooled = F.binary_cross_entropy_with_logits(model.discriminator(rec).float(), ones)
    g_term = torch.clamp(fooled - d_loss.detach(), min=1e-4)
    vae_loss = bce + kl + g_term  # 2.
    return vae_loss, d_loss, {"bce": bce.item(), "kl": kl.item(), "g": g_term.item(), "d": d_loss.item()}


def train(model: VAEGAN, images: np.ndarray, s: TrainSettings, progress: bool = True) -> TrainLog:
    """Train in place on normal images (N, H, W, 3) uint8; returns what happened."""
    torch.manual_seed(s.seed)
    g = torch.Generator().manual_seed(s.seed)
    data = to_tensor(images)
    model.train().to(memory_format=torch.channels_last)
    vae_params = [*model.encoder.parameters(), *model.decoder.parameters()]
    opt_vae = torch.optim.Adam(vae_params, lr=s.lr)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=s.lr)
    start, logs, step = time.time(), {}, 0
    bar = tqdm(range(s.steps), desc="train vaegan", disable=not progress, mininterval=2)
    for step in bar:
        idx = torch.randint(0, len(data), (s.batch_size,), generator=g)
        x = augment(data[idx], PROFILES[s.augment], g).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16):
            vae_loss, d_loss, logs = _losses(model, x, g)
        opt_vae.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        vae_loss.backward(inputs=vae_params)
        d_loss.backward(inputs=list(model.discriminator.parameters()))
        opt_vae.step()
        opt_d.step()
        if step % 20 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
        if s.max_minutes and time.time() - start > 60 * s.max_minutes:
            break
    model.eval().to(memory_format=torch.contiguous_format)
    return TrainLog(step + 1, time.time() - start, logs)


def settings_dict(s: TrainSettings) -> dict:
    return asdict(s)
