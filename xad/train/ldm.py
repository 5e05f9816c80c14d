"""``python -m xad train ldm``: the three stages of Wang & Tavakkoli's detector on one setting
(MNIST many-vs-one, ``mnist-anomalous:<d>``; CIFAR-10 many-vs-many where available):

1. the VQ autoencoder on normal training images (L1 reconstruction + VQ commitment loss). The
   latents are left unscaled by default (the paper's); ``latent_scaling="unit"`` rescales them to
   unit std as Stable Diffusion does, ``"std"`` to ``latent_target_std``. The scale sets how much
   of the latent survives at a given t: an unscaled VQ latent's std is whatever the VQ training
   left (0.16-0.31 measured), so "unscaled" alone does not fix the noise level of t = 200;
2. the latent UNet with the DDPM noise-prediction loss (T = 1000, linear betas);
3. the ResNet-18 same-class classifier: positives (x, reconstruction of x from t by DDPM ancestral
   sampling), negatives (x, a DDPM sample generated from pure noise), cross entropy (optional label
   smoothing). A held-out split of normal training images, reconstructed and paired the same way,
   stops training at its lowest loss so the classifier does not saturate. ``negatives="others"``
   (x, reconstruction of another training image) is an extension, not the paper's, and so is
   ``negatives="classes"``: pairs labelled by the normal training images' classes (positives: x
   with the reconstruction of an image of its class, itself half the time; negatives: x with the
   reconstruction of an image of another normal class), a classifier that has to judge class, not
   alignment. It uses the normal classes' labels, which the paper's recipe does not.

``pair_jitter`` / ``pair_affine``: xad's augmentation of the training pairs' partners (measured on all
ten digits, no gain over the seed's spread: docs/DESIGN-NOTES.md). ``from_weights``: reuse a trained
folder's VQ autoencoder, latent scale and UNet (and its held-out split) and train the classifier stage
alone, continuing from that folder's classifier weights, e.g. to compare negatives on one diffusion model.

A held-out share of the normal training images is kept out of every stage. Progress bars per
stage; seeds everywhere. Evaluation is separate (:func:`xad.ldm_report.evaluate_folder`; the CLI chains
both): nothing here imports the inference side's evaluation.
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from xad import portable
from xad.data.multiclass import MultiClassData, holdout_split, load_setting
from xad.data.transforms import DataError
from xad.models.ldm import PRESETS, SAMPLERS, LatentDiffusionAD
from xad.precision import bf16_is_fast
from xad.tensors import to_tensor
from xad.train.augment import Augment, augment
from xad.weights import load_model, save_model

NEGATIVES = ("noise", "others", "classes")
SCALINGS = ("none", "unit", "std")


@dataclass(frozen=True)
class LDMSettings:
    vq_steps: int = 300
    unet_steps: int = 1200
    clf_steps: int = 800  # at most; the held-out loss picks the step kept
    batch_size: int = 64  # the UNet's
    vq_batch_size: int = 64  # the VQ stage runs at full resolution: the costly one on CPU
    clf_batch_size: int = 64  # half positives, half negatives
    lr: float = 5e-4
    vq_lr: float = 1e-3
    clf_lr: float = 1e-3
    clf_pool: int = 600  # training images reconstructed from t (the positives)
    negatives: int = 200  # samples generated from pure noise (the negatives)
    negative_kind: str = "noise"  # "noise" (the paper) | "others" | "classes" (extensions)
    holdout: int = 1000  # normal training images kept out of every stage (early stopping)
    holdout_pairs: int = 200  # of them, reconstructed for the held-out loss (and as many / 2 samples)
    label_smoothing: float = 0.0
    pair_jitter: int = 0  # training pairs: the partner shifted by up to this many pixels (0: none)
    pair_affine: bool = False  # training pairs: the partner also turned, shifted and zoomed a little
    eval_every: int = 50
    patience: int = 4  # held-out checks without improvement before stopping
    sampler: str = "ddpm"  # reverse process for the classifier's pairs
    ddim_steps: int = 50
    latent_scaling: str = "none"  # "none" (the paper) | "unit" (Stable Diffusion) | "std" (latent_target_std)
    latent_target_std: float = 0.5  # with latent_scaling "std": the latents' std after scaling
    negative_sampler: str = "ddpm"  # reverse process of the negatives (samples from pure noise)
    t: int | None = None  # the shipped t (reconstruction timestep); None: the preset's t_default
    seed: int = 0
    bf16: bool = field(default_factory=bf16_is_fast)  # autocast if native bf16; losses fp32

    def __post_init__(self) -> None:
        if self.negative_kind not in NEGATIVES:
            raise DataError(f"negatives must be one of {NEGATIVES}")
        if self.latent_scaling not in SCALINGS:
            raise DataError(f"latent scaling must be one of {SCALINGS}")
        if self.sampler not in SAMPLERS or self.negative_sampler not in SAMPLERS:
            raise DataError(f"samplers must be one of {SAMPLERS}")
        if not self.latent_target_std > 0:
            raise DataError("the latents' target std must be positive")
        if min(self.vq_steps, self.unet_steps, self.clf_steps, self.clf_pool, self.negatives,
               self.batch_size, self.eval_every) < 1 or self.holdout_pairs < 2:
            raise DataError("steps, pools and batch sizes must be positive")
        if self.t is not None and self.t < 1:
            raise DataError("t must be positive")
        if not 0 <= self.pair_jitter < 8:
            raise DataError("the pair jitter must be 0 to 7 pixels")


def _autocast(s: LDMSettings):  # noqa: ANN202
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16)


def _batches(x: torch.Tensor | np.ndarray, n: int, g: torch.Generator) -> torch.Tensor:
    """n random rows of x; uint8 images (N, H, W, 3) come back as (n, 3, H, W) floats in [0, 1]."""
    idx = torch.randint(0, len(x), (n,), generator=g)
    return _images(x[idx.numpy()]) if isinstance(x, np.ndarray) else x[idx]


def _images(x: np.ndarray) -> torch.Tensor:
    return to_tensor(x).contiguous()


@torch.no_grad()
def _encode(model: LatentDiffusionAD, x: np.ndarray, batch: int = 512) -> torch.Tensor:
    """Latents of uint8 images, converted a batch at a time (no full float copy of the set)."""
    return torch.cat([model.encode(_images(x[i: i + batch])) for i in range(0, len(x), batch)])


def train_vq(model: LatentDiffusionAD, x: np.ndarray, s: LDMSettings, g: torch.Generator) -> float:
    opt = torch.optim.Adam(model.vq.parameters(), lr=s.vq_lr)
    model.vq.train()
    loss = torch.zeros(())
    for _ in tqdm(range(s.vq_steps), desc="ldm 1/3: VQ autoencoder", mininterval=5):
        xb = _batches(x, s.vq_batch_size, g) * 2 - 1
        with _autocast(s):
            out = model.vq(xb)
        loss = (out.sample.float() - xb).abs().mean() + out.commit_loss.float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.vq.eval()
    return loss.item()


def train_unet(model: LatentDiffusionAD, z: torch.Tensor, s: LDMSettings, g: torch.Generator) -> float:
    sched = model.scheduler("ddpm")
    opt = torch.optim.AdamW(model.unet.parameters(), lr=s.lr, weight_decay=0.0)
    lr_at = lambda i: min(1.0, (i + 1) / 200)  # noqa: E731 - warm-up
    model.unet.train()
    loss = torch.zeros(())
    for i in tqdm(range(s.unet_steps), desc="ldm 2/3: latent UNet (DDPM)", mininterval=5):
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


@dataclass(frozen=True)
class Pairs:
    """The classifier's material: inputs ``x``, their reconstructions ``rec`` from t (positives
    with x) and ``neg`` (negatives with any input: samples from pure noise, or for the "others"
    extension reconstructions of other images)."""

    x: torch.Tensor
    rec: torch.Tensor
    neg: torch.Tensor
    y: np.ndarray | None = None  # the classes of x ("classes" pairs only)


@torch.no_grad()
def make_pairs(model: LatentDiffusionAD, x: torch.Tensor, n_neg: int, s: LDMSettings,
               g: torch.Generator, desc: str = "", y: np.ndarray | None = None) -> Pairs:
    """"classes" pairs (``y`` given) draw both partners from the reconstructions, so no samples."""
    t = model.config.t_default
    with tqdm(total=2, desc=f"ldm 3/3: {desc}reconstructions from t = {t} and samples", mininterval=5) as bar:
        rec = model.reconstruct_batched(x, t, s.sampler, s.ddim_steps, g)
        bar.update()
        if s.negative_kind == "classes":
            neg = rec
        elif s.negative_kind == "noise":
            neg = model.sample_batched(n_neg, s.negative_sampler, s.ddim_steps, g)
        else:
            neg = rec[torch.randperm(len(rec), generator=g)[:n_neg]]
        bar.update()
    # contiguous NCHW: the channel concatenation of permuted (channels-last) views crashed the
    # classifier's backward pass (torch 2.13 CPU, glibc heap corruption)
    y = None if s.negative_kind != "classes" else np.asarray(y)
    if s.negative_kind == "classes" and (y is None or len(y) != len(x) or len(np.unique(y)) < 2):
        raise DataError("class-labelled pairs need the classes of at least two normal classes")
    return Pairs(x.contiguous(), rec.contiguous(), neg.contiguous(), y)


def class_partners(y: np.ndarray, i: np.ndarray, keep: np.ndarray, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For anchors i: a same-class partner (i itself where ``keep``, else the image ``pick`` (a
    fraction in [0, 1)) along i's class) and an other-class partner (``pick`` along the others)."""
    same, other = np.empty(len(i), int), np.empty(len(i), int)
    for n, (a, u) in enumerate(zip(i, pick)):
        mates, rest = np.flatnonzero(y == y[a]), np.flatnonzero(y != y[a])
        same[n] = a if keep[n] else mates[int(u * len(mates))]
        other[n] = rest[int(u * len(rest))]
    return same, other


def jitter(x: torch.Tensor, pixels: int, g: torch.Generator) -> torch.Tensor:
    """Each image of x (B, C, H, W) shifted by its own random (dy, dx) in [-pixels, pixels], the
    uncovered border filled with 0 (MNIST's background)."""
    if pixels == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    dy, dx = (torch.randint(0, 2 * pixels + 1, (2, b), generator=g)).tolist()
    return torch.stack([padded[i, :, dy[i]: dy[i] + h, dx[i]: dx[i] + w] for i in range(b)])


#: the partner's small random affine change with ``pair_affine`` (turn, shift and zoom; no flips, no brightness)
PAIR_AFFINE = Augment(rotation=15.0, shift=0.1, zoom=0.1, brightness=(1.0, 1.0), flips=False, rot90=False)


def augment_partners(other: torch.Tensor, s: LDMSettings, g: torch.Generator) -> torch.Tensor:
    """The training pairs' partners (reconstructions and negatives alike) as ``s`` asks: affine, then shift."""
    if s.pair_affine:
        other = augment(other, PAIR_AFFINE, g)
    return jitter(other, s.pair_jitter, g)


def _pair_batch(p: Pairs, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n positives and n negatives; "others" negatives never pair an image with its own reconstruction."""
    if p.y is not None:  # "classes": both partners are reconstructions, chosen by class
        i = torch.randint(0, len(p.x), (n,), generator=g).numpy()
        keep, pick = (torch.rand(n, generator=g) < 0.5).numpy(), torch.rand(n, generator=g).double().numpy()
        same, other = class_partners(p.y, i, keep, pick)
        labels = torch.cat([torch.zeros(n), torch.ones(n)]).long()
        return torch.cat([p.x[i], p.x[i]]), torch.cat([p.rec[same], p.rec[other]]), labels
    i, j = torch.randint(0, len(p.x), (n,), generator=g), torch.randint(0, len(p.x), (n,), generator=g)
    k = torch.randint(0, len(p.neg), (n,), generator=g)
    labels = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    return torch.cat([p.x[i], p.x[j]]), torch.cat([p.rec[i], p.neg[k]]), labels


@torch.no_grad()
def heldout_loss(model: LatentDiffusionAD, p: Pairs) -> tuple[float, float]:
    """(cross entropy, accuracy) on the held-out pairs: every input with its reconstruction, and
    with one negative each (fixed pairing)."""
    n = len(p.x)
    if p.y is not None:  # "classes": fixed partners (every other positive is the image itself)
        idx = np.arange(n)
        same, other = class_partners(p.y, idx, idx % 2 == 0, (idx * 0.618034) % 1.0)
        pos, neg = p.rec[same], p.rec[other]
    else:
        pos, neg = p.rec, p.neg[torch.arange(n) % len(p.neg)]
    logits = torch.cat([model.pair_logits(p.x, pos), model.pair_logits(p.x, neg)]).float()
    labels = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def train_classifier(model: LatentDiffusionAD, fit: Pairs, held: Pairs, s: LDMSettings,
                     g: torch.Generator) -> dict:
    """Adam on batches of positives and negatives; every ``eval_every`` steps the held-out loss;
    the weights of the best check are kept; stops after ``patience`` checks without improvement."""
    opt = torch.optim.Adam(model.classifier.parameters(), lr=s.clf_lr)
    half = max(1, s.clf_batch_size // 2)
    best, best_state, best_step, since, history = float("inf"), None, 0, 0, []
    loss = torch.zeros(())
    step = 0
    for step in tqdm(range(1, s.clf_steps + 1), desc="ldm 3/3: same-class classifier", mininterval=5):
        model.classifier.train()
        x, other, labels = _pair_batch(fit, half, g)
        other = augment_partners(other, s, g)
        with _autocast(s):
            logits = model.pair_logits(x, other)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=s.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % s.eval_every == 0 or step == s.clf_steps:
            model.classifier.eval()
            vl, va = heldout_loss(model, held)
            history.append({"step": step, "train_loss": round(loss.item(), 4), "heldout_loss": round(vl, 4),
                            "heldout_accuracy": round(va, 4)})
            if vl < best:
                best, best_state, best_step, since = vl, copy.deepcopy(model.classifier.state_dict()), step, 0
            else:
                since += 1
                if since >= s.patience:
                    break
    if best_state is not None:
        model.classifier.load_state_dict(best_state)
    model.classifier.eval()
    return {"steps_run": step, "best_step": best_step, "heldout_loss": round(best, 4), "history": history,
            "final_train_loss": round(loss.item(), 4)}


def train(model: LatentDiffusionAD, data: MultiClassData, s: LDMSettings) -> dict:
    """All three stages in place on the setting's normal training images (less the held-out split)."""
    g = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    x = data.normal_train[holdout_split(len(data.normal_train), s.holdout, s.seed)[0]]  # uint8 (N, 32, 32, 3)
    times, losses = {}, {}
    t0 = time.time()
    losses["vq"] = train_vq(model, x, s, g)
    n_enc = s.unet_steps * s.batch_size  # the UNet never sees more latents than this
    z = _encode(model, x if n_enc >= len(x) else x[torch.randperm(len(x), generator=g)[:n_enc].numpy()])
    raw_std = float(z.std())
    if s.latent_scaling != "none":
        scale = (1.0 if s.latent_scaling == "unit" else s.latent_target_std) / raw_std
        model.config = dataclasses.replace(model.config, latent_scale=scale)
        z = z * scale
    times["vq"] = time.time() - t0
    t0 = time.time()
    losses["unet"] = train_unet(model, z, s, g)
    times["unet"] = time.time() - t0
    log = classifier_stage(model, data, s, g)
    losses["classifier"] = log["classifier"]["final_train_loss"]
    times |= log["stage_seconds"]
    return {"final_losses": {k: round(v, 4) for k, v in losses.items()}, "latent_std": round(raw_std, 4),
            "classifier": log["classifier"], "holdout_images": log["holdout_images"],
            "stage_seconds": {k: round(v, 1) for k, v in times.items()},
            "train_seconds": round(sum(times.values()), 1)}


def classifier_stage(model: LatentDiffusionAD, data: MultiClassData, s: LDMSettings,
                     g: torch.Generator) -> dict:
    """Stage 3 alone on the trained VQ + UNet: pairs from t, then the classifier (in place)."""
    fit_idx, held_idx = holdout_split(len(data.normal_train), s.holdout, s.seed)
    x, x_held = data.normal_train[fit_idx], data.normal_train[held_idx]
    y, y_held = data.y_train[fit_idx], data.y_train[held_idx]  # used by "classes" pairs only
    t0 = time.time()
    pool = torch.randperm(len(x), generator=g)[: s.clf_pool].numpy()
    fit = make_pairs(model, _images(x[pool]), s.negatives, s, g, y=y[pool])
    held = make_pairs(model, _images(x_held[: s.holdout_pairs]), max(1, s.holdout_pairs // 2), s, g, "held-out ",
                      y=y_held[: s.holdout_pairs])
    pairs_seconds = time.time() - t0
    t0 = time.time()
    clf = train_classifier(model, fit, held, s, g)
    model.eval()
    return {"classifier": clf, "holdout_images": len(held_idx),
            "stage_seconds": {"pairs": round(pairs_seconds, 1), "classifier": round(time.time() - t0, 1)}}


def run(setting: str, out: Path, settings: LDMSettings, preset: str = "cpu", data_path: str | None = None,
        command: str = "", from_weights: Path | None = None) -> Path:
    """Train on ``setting`` and save the weights folder (fp16 safetensors, config, a provisional
    card); evaluate it with :func:`xad.ldm_report.evaluate_folder`. ``from_weights``: start from
    that folder's VQ + UNet (its held-out split and seed too) and train the classifier alone."""
    data = load_setting(setting, data_path)
    torch.manual_seed(settings.seed)
    if from_weights is not None:
        return _run_from(data, out, settings, Path(from_weights), data_path, command)
    config = PRESETS[preset]
    if settings.t is not None:
        if settings.t >= config.timesteps:
            raise DataError(f"t must be below the preset's {config.timesteps} timesteps")
        config = dataclasses.replace(config, t_default=settings.t)
    model = LatentDiffusionAD(config)
    log = train(model, data, settings)
    return _save(model, data, out, settings, preset, data_path, command, log)


def _save(model: LatentDiffusionAD, data: MultiClassData, out: Path, settings: LDMSettings, preset: str,
          data_path: str | None, command: str, log: dict) -> Path:
    n_train = len(data.normal_train) - log["holdout_images"]
    meta = {"setting": data.setting, "setting_description": data.description, "image_size": 32,
            "training_data": f"{n_train} normal training images of {data.setting} "
                             f"({log['holdout_images']} more held out for early stopping)",
            "data_path": portable(data_path) if data_path else "embedded MNIST", "seed": settings.seed,
            "train_settings": asdict(settings), **log, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "command": command}
    return save_model(model, out, family="ldm", card="(not evaluated yet: python -m xad evaluate ldm)",
                      preset=preset, meta=meta, dtype=torch.float16)


def _run_from(data: MultiClassData, out: Path, settings: LDMSettings, source: Path, data_path: str | None,
              command: str) -> Path:
    model, base = load_model(source, expect="LatentDiffusionAD")  # fp32, eval mode
    if base.meta.get("setting") != data.setting:
        raise DataError(f"{source} was trained on {base.meta.get('setting')}, not {data.setting}")
    bs = base.meta.get("train_settings", {})
    # the base's stages and split: its held-out images stay out of every stage
    keep = {k: bs[k] for k in ("vq_steps", "unet_steps", "batch_size", "vq_batch_size", "latent_scaling",
                               "latent_target_std", "holdout", "seed") if k in bs}
    settings = dataclasses.replace(settings, **keep)
    if settings.t is not None and settings.t != model.config.t_default:
        if settings.t >= model.config.timesteps:
            raise DataError(f"t must be below the model's {model.config.timesteps} timesteps")
        model.config = dataclasses.replace(model.config, t_default=settings.t)
    g = torch.Generator().manual_seed(settings.seed)
    log = classifier_stage(model, data, settings, g)
    stages = {k: v for k, v in base.meta.get("stage_seconds", {}).items() if k in ("vq", "unet")}
    log |= {"final_losses": {**{k: v for k, v in base.meta.get("final_losses", {}).items() if k in ("vq", "unet")},
                             "classifier": log["classifier"]["final_train_loss"]},
            "latent_std": base.meta.get("latent_std"), "stage_seconds": stages | log["stage_seconds"],
            "train_seconds": round(sum(log["stage_seconds"].values()), 1),
            "reused_from": {"folder": portable(source), "command": base.meta.get("command"),
                            "stage_seconds": stages}}
    return _save(model, data, out, settings, base.preset, data_path, command, log)
