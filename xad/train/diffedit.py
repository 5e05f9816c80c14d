"""``python -m xad train diffedit``: the small text-conditional latent diffusion model that DiffEdit
runs on (:mod:`xad.models.textldm`), trained on embedded digits with captions:

- ``mnist``: "digit <name>" (e.g. "digit seven");
- ``cmnist``: coloured MNIST (colours fixed by seed 0, as the shipped feature extractor's),
  "<colour> digit <name>" (e.g. "red digit one").

Two stages, as Stable Diffusion is built:

1. the ``AutoencoderKL`` (L1 reconstruction + a small KL weight, posterior samples); then the
   latent scaling factor is set to 1 / std of the training latents;
2. the ``UNet2DConditionModel`` and the (randomly initialised) ``CLIPTextModel`` together, with
   the DDPM noise-prediction loss (T = 1000, scaled-linear betas as Stable Diffusion) on the
   posterior means of the training latents; the caption is replaced by the empty caption 10 % of
   the time so classifier-free guidance works.

bf16 autocast on CPU for the VAE's forward passes (the UNet's measured faster in fp32), losses
in fp32; progress bars per stage; seeds
everywhere. The weights folder (fp16 safetensors) gets a card with measured checks: the VAE's
test reconstruction MSE, the held-out diffusion loss with the right, a wrong and the empty caption,
and a DiffEdit check ("three" -> "seven" on test threes, scored by the shipped digit classifier
when it is there).
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.optimization import get_constant_schedule_with_warmup
from tqdm import tqdm

from xad.precision import bf16_is_fast
from xad import portable
from xad.cards import write_card
from xad.data.transforms import DataError
from xad.tensors import to_float, to_tensor
from xad.data.labelled import CaptionedDigits, caption, load_captioned
from xad.models.diffedit import decode, diffedit, pipeline
from xad.models.textldm import PRESETS, TextLDM
from xad.weights import WEIGHTS_DIR, WeightsError, load_model, save_model, write_metrics

@dataclass(frozen=True)
class TextLDMSettings:
    vae_steps: int = 2000
    unet_steps: int = 4000
    batch_size: int = 64
    vae_lr: float = 1e-3
    lr: float = 5e-4  # UNet and text encoder (AdamW, 200 warm-up steps, gradients clipped at 1)
    kl_weight: float = 1e-4  # on the per-element KL to N(0, 1)
    uncond_prob: float = 0.1  # classifier-free-guidance dropout of the caption
    seed: int = 0
    bf16: bool = field(default_factory=bf16_is_fast)  # autocast if native bf16; losses fp32
    # the UNet stage in bf16 measured slower here (1.13 vs 0.78 s per step, cpu preset, batch 64,
    # 1 thread: its attention and group norms gain nothing), so it runs in fp32 by default
    bf16_unet: bool = False
    eval_limit: int = 200  # test threes edited for the card's DiffEdit check
    eval_steps: int = 20  # DiffEdit DDIM steps of that check (strength 0.5, guidance 7.5)


def _autocast(s: TextLDMSettings, unet: bool = False):  # noqa: ANN202
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16_unet if unet else s.bf16)


def _pick(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, n, (size,), generator=g)


def train_vae(model: TextLDM, x: np.ndarray, s: TextLDMSettings, g: torch.Generator) -> float:
    """Stage 1 in place: L1 reconstruction of posterior samples + kl_weight x mean KL per latent
    element. x: (N, H, W, 3) uint8 (made float per batch: the 60000 MNIST images as fp32 would
    take 0.7 GB). Returns the mean loss of the last 50 steps."""
    vae = model.vae
    opt = torch.optim.Adam(vae.parameters(), lr=s.vae_lr)
    vae.train()
    losses = []
    for _ in tqdm(range(s.vae_steps), desc="diffedit 1/2: AutoencoderKL", mininterval=2):
        xb = to_tensor(x[_pick(len(x), s.batch_size, g).numpy()]) * 2 - 1
        with _autocast(s):
            post = vae.encode(xb).latent_dist  # diffusers' DiagonalGaussianDistribution
            rec = vae.decode(post.sample(generator=g)).sample
        kl = post.kl().float().mean() / post.mean[0].numel()  # per latent element
        loss = (rec.float() - xb).abs().mean() + s.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    vae.eval()
    return float(np.mean(losses[-50:])) if losses else float("nan")


@torch.no_grad()
def encode_means(model: TextLDM, x: np.ndarray, s: TextLDMSettings, batch: int = 512) -> torch.Tensor:
    """Posterior means of x (N, H, W, 3) uint8, times the scaling factor: (N, C, h, w) fp32."""
    sf = model.vae.config.scaling_factor
    out = []
    for i in range(0, len(x), batch):
        with _autocast(s):
            out.append(model.vae.encode(to_tensor(x[i: i + batch]) * 2 - 1).latent_dist.mean.float() * sf)
    return torch.cat(out)


def train_unet(model: TextLDM, z: torch.Tensor, caption_idx: torch.Tensor, table: torch.Tensor,
               empty: int, s: TextLDMSettings, g: torch.Generator) -> float:
    """Stage 2 in place: the UNet and text encoder on latents z (N, C, h, w) with captions
    ``table[caption_idx]`` (token ids), the empty caption (row ``empty``) with probability
    ``uncond_prob``. Returns the mean loss of the last 50 steps."""
    sched = model.noise_scheduler()
    params = [*model.unet.parameters(), *model.text_encoder.parameters()]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
    for group in opt.param_groups:
        group["initial_lr"] = s.lr
    # step i runs at lr * min(1, (i + 1) / 200): the schedule starts one step in (last_epoch 0)
    warmup = get_constant_schedule_with_warmup(opt, num_warmup_steps=200, last_epoch=0)
    model.unet.train()
    model.text_encoder.train()
    losses = []
    for _ in tqdm(range(s.unet_steps), desc="diffedit 2/2: UNet + text encoder (DDPM)", mininterval=2):
        b = _pick(len(z), s.batch_size, g)
        drop = torch.rand(len(b), generator=g) < s.uncond_prob
        ids = table[torch.where(drop, torch.full_like(b, empty), caption_idx[b])]
        z0 = z[b]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, model.config.timesteps, (len(z0),), generator=g)
        with _autocast(s, unet=True):
            pred = model(sched.add_noise(z0, noise, t), t, ids)
        loss = F.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        warmup.step()
        losses.append(loss.item())
    model.eval()
    return float(np.mean(losses[-50:])) if losses else float("nan")


def train(model: TextLDM, data: CaptionedDigits, s: TextLDMSettings) -> dict:
    """Both stages in place on ``data``'s training images. Returns a log (losses, seconds)."""
    g = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    x = data.x_train
    t0 = time.time()
    vae_loss = train_vae(model, x, s, g)
    sub = torch.randperm(len(x), generator=g)[:4096]
    model.set_scaling_factor(float(1 / encode_means(model, x[sub.numpy()], s).std()))
    vae_seconds = time.time() - t0
    t0 = time.time()
    # the latents the UNet will see: all images, or a random pool of steps x batch of them
    pool = torch.randperm(len(x), generator=g)[: min(len(x), max(1, s.unet_steps) * s.batch_size)]
    z = encode_means(model, x[pool.numpy()], s)
    captions, inverse = np.unique(data.captions_train[pool.numpy()], return_inverse=True)
    table = model.token_ids([*captions.tolist(), ""])
    unet_loss = train_unet(model, z, torch.from_numpy(inverse.astype(np.int64)), table, len(captions), s, g)
    unet_seconds = time.time() - t0
    return {"final_losses": {"vae": round(vae_loss, 5), "unet": round(unet_loss, 5)},
            "stage_seconds": {"vae": round(vae_seconds, 1), "unet": round(unet_seconds, 1)},
            "seconds_per_step": {"vae": round(vae_seconds / max(1, s.vae_steps), 4),
                                 "unet": round(unet_seconds / max(1, s.unet_steps), 4)},
            "train_seconds": round(vae_seconds + unet_seconds, 1),
            "scaling_factor": round(model.config.scaling_factor, 5)}


@torch.no_grad()
def heldout_losses(model: TextLDM, data: CaptionedDigits, s: TextLDMSettings, n: int = 1000) -> dict:
    """The noise-prediction MSE on ``n`` test images (same noise and t for each condition) with
    the right caption, a wrong one (the digit shifted by one) and the empty caption."""
    rng = np.random.default_rng(s.seed)
    idx = rng.permutation(len(data.x_test))[:n]
    z = encode_means(model, data.x_test[idx], s)
    g = torch.Generator().manual_seed(s.seed + 1)
    noise = torch.randn(z.shape, generator=g)
    t = torch.randint(0, model.config.timesteps, (len(z),), generator=g)
    noisy = model.noise_scheduler().add_noise(z, noise, t)
    colours = data.colour_test[idx] if data.colour_test is not None else [None] * len(idx)
    y = data.y_test[idx]
    conditions = {"right": [caption(d, c) for d, c in zip(y, colours)],
                  "wrong": [caption((d + 1) % 10, c) for d, c in zip(y, colours)],
                  "empty": [""] * len(idx)}
    out = {}
    for name, caps in conditions.items():
        ids = model.token_ids(caps)
        pred = torch.cat([model(noisy[i: i + 256], t[i: i + 256], ids[i: i + 256])
                          for i in range(0, len(z), 256)])
        out[f"heldout_diffusion_loss_{name}_caption"] = round(float(F.mse_loss(pred, noise)), 5)
    return out


def _digit_classifier(dataset: str):  # noqa: ANN202
    """The shipped digit classifier (the FID feature extractor) of ``dataset``, or None."""
    folder = WEIGHTS_DIR / "features" / f"{dataset}-cpu"
    try:
        return load_model(folder, expect="FeatureNet")
    except WeightsError:
        return None


@torch.no_grad()
def evaluate(model: TextLDM, data: CaptionedDigits, s: TextLDMSettings, source: int = 3,
             target: int = 7) -> dict:
    """The card's measured checks: VAE test reconstruction MSE (1000 test images), held-out
    diffusion losses, and DiffEdit from digit ``source`` to ``target`` on ``eval_limit`` test
    images of ``source`` (prompts with their colour for cmnist): mean mask fraction, mean |change|
    inside and outside the mask, and, with the shipped digit classifier, how many it calls
    ``target`` / ``source`` before and after."""
    x = data.x_test[:1000]
    z = encode_means(model, x, s)
    rec = torch.cat([decode(model, z[i: i + 250]) for i in range(0, len(z), 250)])
    out = {"vae_test_mse": round(float((rec - to_tensor(x)).pow(2).mean()), 6)}
    out.update(heldout_losses(model, data, s))
    idx = np.flatnonzero(data.y_test == source)[: s.eval_limit]
    if not len(idx):
        return out
    pipe = pipeline(model)
    colours = [None] * len(idx) if data.colour_test is None else list(data.colour_test[idx])
    groups = {c: [i for i, ci in zip(idx, colours) if ci == c] for c in dict.fromkeys(colours)}
    edited, masks = [], []
    for colour, sel in groups.items():  # one prompt pair per colour
        r = diffedit(pipe, data.x_test[sel], caption(source, colour), caption(target, colour),
                     strength=0.5, steps=s.eval_steps, guidance=7.5, seed=s.seed)
        edited.append(r.edited)
        masks.append(r.masks)
    edited, masks = np.concatenate(edited), np.concatenate(masks)
    before = to_float(data.x_test[np.concatenate(list(groups.values()))])
    change = np.abs(edited - before).mean(-1)
    inside = (change * masks).sum() / max(masks.sum(), 1)
    outside = (change * (1 - masks)).sum() / max((1 - masks).sum(), 1)
    check = {"n": len(idx), "source": caption(source), "target": caption(target),
             "strength": 0.5, "steps": s.eval_steps, "guidance": 7.5,
             "mean_mask_fraction": round(float(masks.mean()), 4),
             "mean_abs_change_inside_mask": round(float(inside), 4),
             "mean_abs_change_outside_mask": round(float(outside), 4)}
    clf = _digit_classifier(data.dataset)
    if clf is not None:
        net, record = clf
        pred_before = net(to_tensor(before))[0].argmax(1).numpy()
        pred_after = net(to_tensor(edited))[0].argmax(1).numpy()
        check.update({"classifier": record.name,
                      "classified_target_before": round(float((pred_before == target).mean()), 4),
                      "classified_target_after": round(float((pred_after == target).mean()), 4),
                      "classified_source_before": round(float((pred_before == source).mean()), 4),
                      "classified_source_after": round(float((pred_after == source).mean()), 4)})
    out["diffedit_check"] = check
    return out


def run(dataset: str, out: Path, settings: TextLDMSettings, preset: str = "cpu", command: str = "",
        data_path: str | None = None) -> Path:
    """Train on ``dataset`` ("mnist" or "cmnist"), save the weights folder (fp16 safetensors,
    config.json, card.md with the measured checks) at ``out``. Returns the folder."""
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r} (use one of {', '.join(PRESETS)})")
    data = load_captioned(dataset, data_path)
    torch.manual_seed(settings.seed)
    model = TextLDM(PRESETS[preset])
    log = train(model, data, settings)
    meta = {"dataset": dataset, "image_size": model.config.image_size,
            "training_data": f"{len(data.x_train)} training images of 32 px "
                             f"{'MNIST' if dataset == 'mnist' else 'coloured MNIST (colours: seed 0)'}",
            "caption_example": str(data.captions_train[0]),
            "data_path": portable(data_path) if data_path else "embedded MNIST", "seed": settings.seed,
            "train_settings": asdict(settings), **log, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "command": command}
    folder = save_model(model, out, family="diffedit", card="(evaluating …)", preset=preset, meta=meta,
                        dtype=torch.float16)
    model, _ = load_model(folder, expect="TextLDM")  # measure what was saved (fp16 weights)
    metrics = evaluate(model, data, settings)
    write_metrics(folder, metrics)
    write_card(folder)
    return folder
