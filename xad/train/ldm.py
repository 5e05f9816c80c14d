"""``python -m xad train ldm``: the three stages of Wang & Tavakkoli's detector on one setting
(MNIST many-vs-one: nine digits normal, one anomalous; CIFAR-10 many-vs-many where available):

1. the VQ autoencoder on normal training images (L1 reconstruction + VQ commitment loss); then
   the latent scale is set to 1 / std of the training latents (as Stable Diffusion does);
2. the latent UNet with the DDPM noise-prediction loss (T = 1000, linear betas);
3. the ResNet-18 same-class classifier: positives (x, reconstruction of x from t with DDIM),
   negatives (x, a sample generated from pure noise), cross entropy.

Progress bars per stage; seeds everywhere; the weights folder gets a card with the evaluation.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from xad.precision import bf16_is_fast
from xad import portable
from xad.data import digits, semantic
from xad.data.transforms import DataError
from xad.models.ldm import PRESETS, LatentDiffusionAD
from xad.tensors import to_tensor
from xad.weights import save_model


@dataclass(frozen=True)
class LDMSettings:
    vq_steps: int = 2000
    unet_steps: int = 4000
    clf_steps: int = 1500
    batch_size: int = 128
    vq_batch_size: int = 64  # the VQ stage runs at full resolution: the costly one on CPU
    lr: float = 5e-4
    clf_pool: int = 3000  # training images reconstructed (and as many samples) for the classifier
    ddim_steps: int = 50  # DDIM schedule used to make the classifier's pairs
    seed: int = 0
    bf16: bool = field(default_factory=bf16_is_fast)  # autocast if native bf16; losses fp32


def _autocast(s: LDMSettings):  # noqa: ANN202
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16)


@dataclass(frozen=True)
class MultiClassData:
    """setting: "mnist:<anomalous digit>" or "cifar10:<c1c2…>" (the normal classes);
    x_*: (N, 32, 32, 3) uint8; y_*: class ids; anomalous_test: (M,) bool."""

    setting: str
    description: str
    normal_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    anomalous_test: np.ndarray


def load_setting(setting: str, path: str | None = None) -> MultiClassData:
    kind, _, arg = setting.partition(":")
    if kind == "mnist":
        if arg not in [str(d) for d in range(10)]:
            raise DataError(f"{setting}: the anomalous digit must be 0..9 (mnist:<digit>)")
        m = digits.load_mnist(path or semantic.default_mnist_path())
        d = int(arg)
        return MultiClassData(setting, f"MNIST, digit {d} anomalous, the other nine normal (many vs one)",
                              semantic.pad_rgb(m.x_train[m.y_train != d]), semantic.pad_rgb(m.x_test),
                              m.y_test, m.y_test == d)
    if kind == "cifar10":
        if path is None:
            raise DataError("CIFAR-10 is not embedded: give the cifar-10-batches-py folder with --data")
        if not arg or not arg.isdigit():
            raise DataError(f"{setting}: name the normal classes as digits, e.g. cifar10:01234")
        normal = sorted({int(c) for c in arg})
        c = digits.load_cifar10(path)
        return MultiClassData(setting, f"CIFAR-10, classes {normal} normal, the rest anomalous",
                              c.x_train[np.isin(c.y_train, normal)], c.x_test, c.y_test,
                              ~np.isin(c.y_test, normal))
    raise DataError(f"unknown setting {setting!r} (use mnist:<anomalous digit> or cifar10:<normal classes>)")


def _batches(x: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return x[torch.randint(0, len(x), (n,), generator=g)]


def train_vq(model: LatentDiffusionAD, x: torch.Tensor, s: LDMSettings, g: torch.Generator) -> float:
    opt = torch.optim.Adam(model.vq.parameters(), lr=s.lr)
    model.vq.train()
    loss = torch.zeros(())
    for _ in tqdm(range(s.vq_steps), desc="ldm 1/3: VQ autoencoder", mininterval=2):
        xb = _batches(x, s.vq_batch_size, g) * 2 - 1
        with _autocast(s):
            out = model.vq(xb)
        loss = (out.sample.float() - xb).abs().mean() + out.commit_loss.float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.vq.eval()
    return loss.item()


@torch.no_grad()
def encode_all(model: LatentDiffusionAD, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    return torch.cat([model.encode(x[i: i + batch]) for i in range(0, len(x), batch)])


def train_unet(model: LatentDiffusionAD, z: torch.Tensor, s: LDMSettings, g: torch.Generator) -> float:
    sched = model.scheduler("ddpm")
    opt = torch.optim.AdamW(model.unet.parameters(), lr=s.lr, weight_decay=0.0)
    lr_at = lambda i: min(1.0, (i + 1) / 200)  # noqa: E731 - warm-up
    model.unet.train()
    loss = torch.zeros(())
    for i in tqdm(range(s.unet_steps), desc="ldm 2/3: latent UNet (DDPM)", mininterval=2):
        for group in opt.param_groups:
            group["lr"] = s.lr * lr_at(i)
        z0 = _batches(z, s.batch_size, g)
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, model.config.timesteps, (len(z0),), generator=g)
        with _autocast(s):
            pred = model.unet(sched.add_noise(z0, noise, t), t).sample
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.unet.eval()
    return loss.item()


@torch.no_grad()
def classifier_pairs(model: LatentDiffusionAD, x: torch.Tensor, s: LDMSettings, g: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, their reconstructions from t, samples from pure noise), ``clf_pool`` of each."""
    idx = torch.randperm(len(x), generator=g)[: s.clf_pool]
    xs, recs, samples = x[idx], [], []
    t = model.config.t_default
    for i in tqdm(range(0, len(xs), 256), desc="ldm 3/3: reconstructions and samples", mininterval=2):
        recs.append(model.reconstruct(xs[i: i + 256], t, "ddim", s.ddim_steps, g))
        samples.append(model.sample(len(xs[i: i + 256]), "ddim", s.ddim_steps, g))
    return xs, torch.cat(recs), torch.cat(samples)


def train_classifier(model: LatentDiffusionAD, xs: torch.Tensor, recs: torch.Tensor, samples: torch.Tensor,
                     s: LDMSettings, g: torch.Generator) -> float:
    opt = torch.optim.Adam(model.classifier.parameters(), lr=1e-3)
    model.classifier.train()
    half = s.batch_size // 2
    loss = torch.zeros(())
    for _ in tqdm(range(s.clf_steps), desc="ldm 3/3: same-class classifier", mininterval=2):
        i = torch.randint(0, len(xs), (half,), generator=g)
        j = torch.randint(0, len(xs), (half,), generator=g)
        k = torch.randint(0, len(samples), (half,), generator=g)
        x = torch.cat([xs[i], xs[j]])
        other = torch.cat([recs[i], samples[k]])
        labels = torch.cat([torch.zeros(half), torch.ones(half)]).long()
        with _autocast(s):
            logits = model.pair_logits(x, other)
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.classifier.eval()
    return loss.item()


def train(model: LatentDiffusionAD, normal: np.ndarray, s: LDMSettings) -> dict:
    """All three stages in place on normal training images (N, 32, 32, 3) uint8."""
    g = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    x = to_tensor(normal)
    times, losses = {}, {}
    t0 = time.time()
    losses["vq"] = train_vq(model, x, s, g)
    with torch.no_grad():
        z = encode_all(model, x[:4096])
    model.config = dataclasses.replace(model.config, latent_scale=float(1 / z.std()))
    times["vq"] = time.time() - t0
    t0 = time.time()
    z = encode_all(model, x)
    losses["unet"] = train_unet(model, z, s, g)
    times["unet"] = time.time() - t0
    t0 = time.time()
    xs, recs, samples = classifier_pairs(model, x, s, g)
    losses["classifier"] = train_classifier(model, xs, recs, samples, s, g)
    times["classifier"] = time.time() - t0
    model.eval()
    return {"final_losses": {k: round(v, 4) for k, v in losses.items()},
            "stage_seconds": {k: round(v, 1) for k, v in times.items()},
            "train_seconds": round(sum(times.values()), 1)}


def run(setting: str, out: Path, settings: LDMSettings, preset: str = "cpu", data_path: str | None = None,
        command: str = "", eval_limit: int = 1000) -> Path:
    from xad.ldm import evaluate_folder

    data = load_setting(setting, data_path)
    torch.manual_seed(settings.seed)
    model = LatentDiffusionAD(PRESETS[preset])
    log = train(model, data.normal_train, settings)
    meta = {"setting": setting, "setting_description": data.description, "image_size": 32,
            "training_data": f"{len(data.normal_train)} normal training images of {setting}",
            "data_path": portable(data_path) if data_path else "embedded MNIST", "seed": settings.seed,
            "train_settings": asdict(settings), **log, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "command": command}
    save_model(model, out, family="ldm", card="(evaluating …)", preset=preset, meta=meta,
               dtype=torch.float16)
    return evaluate_folder(out, data_path, eval_limit)
