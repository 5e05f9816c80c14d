"""Training the VAE-GAN on normal images only (Rashid et al.; losses as in the reference code).

Per step: 1. encode, sample z, decode (z = e(x), x' = d(z)); 2. VAE loss = BCE(x', x) summed over
pixels + KL + w * max(BCE(s(x'), real) - L_s, 1e-4); 3. discriminator loss L_s = BCE(s(x), real) +
BCE(s(x'), fake), labels real = 0 / fake = 1 as in the published code (BCE is symmetric in the
labels: swapping them only flips the sign of the logit). Adam, lr 1e-3 for both, batch 32, w = 1
in the published recipe. Options (each measured, see the cards): ``gan_warmup`` (VAE alone for the
first steps), ``d_lr`` (the discriminator's learning rate), ``gan_weight`` (0: the VAE alone, no
discriminator is run at all).

Every ``eval_every`` steps the posterior-mean reconstruction loss of a held-out tenth of the
normal training images is measured (and, where test labels are given, the test AUROC at a few
checkpoints); the weights with the best held-out loss are the ones kept (early stopping).
``TrainLog.curve`` is the learning curve, stored in config.json.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from xad.models.vaegan import VAEGAN
from xad.precision import bf16_is_fast
from xad.tensors import to_tensor
from xad.train.augment import PROFILES, augment

COMPONENTS = ("bce", "kl", "g", "d")

# Why the defaults differ from the published recipe (batch 32, generator-term weight 1), measured
# on hexnut (1 thread, batch 16, seed 0, 14 min each, machine under heavy load; issue 22): with the
# published GAN term the discriminator wins within 50 steps (D loss 0.22 averaged over steps 1-50,
# 0.005 over 51-84, G term 5.3 -> 7.9) and the test AUROC after 84 steps was 0.515; the VAE alone
# ran 104 steps in the same time (no discriminator passes) and reached 0.700 with a lower held-out
# reconstruction loss. At the end of the shipped 7,382-step GAN training the G term's gradient on
# the encoder and decoder was 3.8 % of the reconstruction term's. Default: the VAE alone; the
# published term is --gan-weight 1 (optionally after --gan-warmup steps, with a smaller --d-lr).
# Tried and not kept (the first, free-pose tablet set, 40 min, 1 thread, seed 0): evaluating and keeping an exponential
# moving average of the weights (decay 0.999, BatchNorm statistics of the live model) gave test AUROC
# 0.744 against 0.777 for the live weights, its held-out loss jumping 6-fold where the live
# BatchNorm statistics did not fit the averaged weights.
# Nor a smaller learning rate (capsule, --lr 1e-4 for 17 min continuing the kept 1e-3 weights):
# held-out MSE 0.0030 -> 0.0026, test AUROC 0.782 -> 0.780. Every object category's held-out loss
# levels off within 600-3000 steps while its reconstructions stay blurred at the outline, where the
# good images' max |gs(x) - gs(x')| lies (0.35-0.47 on the free-pose capsule): the limit is the blur, not the time.
# Augmentation is a choice per category, by measurement (40 min each, 1 thread, seed 0, CLI defaults
# otherwise, AVX2 EPYC, two runs at a time): the default `object` profile turns and flips parts in
# the fixture, so the light (always from the upper left there) comes from every side in training
# and the rotations interpolate (blur) the training images. Tablet with `--augment none`: 3817
# steps, test AUROC 0.877 (crack 0.99, cut 1.00, hole 1.00, print 0.49, stain 0.91), 0.87-0.95 at
# every checkpoint, held-out MSE 0.0009-0.0011; with `object` (shipped): 0.850, 0.70-0.85 at the
# checkpoints, held-out MSE 0.0026. Capsule with `none`: 0.682 (the KL fell to 4 nats: the
# posterior collapsed onto the mean capsule) against 0.782 with `object`. Hexnut (any pose, light
# from any side) from scratch: `none` 0.568 (held-out MSE stuck at 0.004: 180 images are too few
# without augmentation), `dihedral` 0.762 (3781 steps, held-out MSE still falling, 0.0044 ->
# 0.0018; test AUROC 0.84 at step 3600): 40 minutes from scratch are not enough for the nut.
# Nor are more steps (2026-12-06, AMD EPYC with AVX-512 BF16, bf16 autocast, 1 thread each, two runs
# at a time, seed 0, 45 min, ~13,400 steps each): washer `dihedral` from scratch 0.667 (kept step 8000;
# the checkpoints' test AUROC 0.60-0.75 throughout, no trend; print 0.54, scratch 0.44) against the
# shipped `object` 0.735; hexnut `dihedral` continued from the shipped weights 0.787 (kept step 12600;
# checkpoints 0.76-0.86 throughout). With 20 good test images one good image is 0.05 of AUROC, and the
# checkpoints scatter by that much around ~0.80 (hexnut) / ~0.68 (washer) whatever the steps: the
# faint defects (print, scratch: 0.44-0.66) stay below the good images' outline error.
# Nor do new round parts in the fixture (same CPU and recipe, `--augment none`, seed 0, two at a time): a
# green glass bottle (40 min, 12,974 steps) 0.721 and a blue screw cap (40 min; its KL fell to ~2 nats)
# 0.788; made brighter, as the tablet (the painters darken by a factor, so a bright part shows its
# defects with more contrast), in 20 min: the clear glass `bottle` 0.827 (crack 0.91, cut 1.00, hole 0.99,
# print 0.56, stain 0.67; shipped in place of the washer) and the yellow `screwcap` 0.796 (crack 0.95, cut
# 1.00, hole 1.00, print 0.45, stain 0.58; not shipped). Structural defects are found on every round
# part; print (0.45-0.68 on all of them) and stain (0.51-0.67 here) are at chance, and with two faint
# types of five a category's AUROC levels off near 0.80-0.85: a limit of max |gs(x) - gs(x')| on
# faint colour defects, not of the steps.
# The bottle now takes MVTec AD's bottle defects (broken_large, broken_small, contamination; 20 test
# images each, as MVTec's 20-22), not the hazelnut's list: retrained with the same command (20 min,
# bf16, 6,645 steps, the held-out loss best at step 1800 as before) it reaches test AUROC 0.981
# (broken_large 1.00, broken_small 0.99, contamination 0.95): the paper's score works on a glass
# part's structural defects, as the authors' MVTec results suggest; the faint ones stay on the tablet.
# A real grayscale surface set fails with the defaults (2026-12-07, AMD EPYC with AVX-512 BF16, fp32
# forced with XAD_BF16=0 as on an AVX2 CPU, 1 thread each, two runs at a time, seed 0, 40 min, ~7,550
# steps): the public Magnetic-tile defect set laid out as issue 22's acceptance set (761 free images
# trained on, 191 free + 392 defective tested; `bench/real_surface.py layout`) reaches test AUROC 0.501
# with `--augment object` (the default) and 0.506 with `texture`, 0.50-0.51 at every checkpoint while
# the held-out MSE fell 0.027 -> 0.0096. `bench/real_surface.py diagnose`: the reconstruction is the
# tile's smooth brightness (its std 61 % of the image's on good images; the stripes are gone), 75 % of
# the maps' maxima lie within 8 px of the image edge (the tile's bright or dark rim), and the map's
# interior alone gives 0.563, the map smoothed first 0.511. Model-free controls on the same 128 px
# images: mean brightness 0.530, the largest deviation of gs(x) from its own 9 x 9 median 0.575
# (smoothed 0.629; at 256 px 0.634): the faint defects are not the strongest local deviations of this
# texture, so a score max |gs(x) - gs(x')| over a reconstruction that keeps only the smooth brightness
# cannot separate them. The `paper` preset (Adam 1e-3, the VAE alone) fares no better: 35 min, 1,581
# steps, the held-out MSE best at step 400 (0.0143) and noisy after, test AUROC 0.513 kept (0.529 at the
# last step; per defect 0.47-0.55). The 0.75 of issue 22 needs a model of the texture's normal
# variation that the paper's 32-dimensional dense bottleneck does not learn within the budget.


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 20000
    batch_size: int = 16  # the published 32 halves the steps per minute on one CPU thread
    lr: float = 1e-3
    d_lr: float | None = None  # None: the VAE's lr (published)
    seed: int = 0
    augment: str = "object"  # a key of xad.train.augment.PROFILES
    max_minutes: float = 0.0  # stop after this wall time (0: no limit)
    bf16: bool = field(default_factory=bf16_is_fast)
    gan_weight: float = 0.0  # weight of the generator term (published 1; 0: VAE only, see above)
    gan_warmup: int = 0  # steps of the VAE alone before the GAN terms start
    holdout: float = 0.1  # fraction of train/good held out for the learning curve / early stopping
    eval_every: int = 200  # steps between held-out evaluations
    test_checkpoints: int = 5  # held-out evaluations that also measure the test AUROC (spread out)
    channels_last: bool = True
    foreach: bool = True  # Adam's multi-tensor (foreach) update
    compile: bool | None = False  # torch.compile the training step (see use_compile)


@dataclass(frozen=True)
class TrainLog:
    steps_done: int
    seconds: float
    final_losses: dict[str, float]
    curve: dict = field(default_factory=dict)  # see :func:`train`
    kept_step: int = 0  # the step whose weights were kept (best held-out reconstruction)


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out) of n images: round(fraction * n) held out (at least 1 when
    fraction > 0 and n >= 2), chosen by a seeded permutation; both sorted."""
    k = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def bernoulli_entropy(x: torch.Tensor) -> torch.Tensor:
    """Per image sum of H(x) = BCE(x, x): the floor of the summed BCE when targets are not 0/1.
    x: (B, C, H, W) in [0, 1] -> (B,)."""
    x = x.clamp(1e-6, 1 - 1e-6)
    return -(x * x.log() + (1 - x) * (1 - x).log()).sum(dim=(1, 2, 3))


class _Parts:
    """The three networks as the training step calls them: eager, or compiled by torch.compile (the
    held-out and test evaluations always run the eager modules, in eval mode)."""

    def __init__(self, model: VAEGAN, compiled: bool) -> None:
        wrap = torch.compile if compiled else (lambda m: m)
        self.encoder, self.decoder = wrap(model.encoder), wrap(model.decoder)
        self.discriminator = wrap(model.discriminator)


def use_compile(s: TrainSettings) -> bool:
    """torch.compile for the training step: as set; None (older records) means runs of 1000+ steps.
    Off by default: on the AVX2 EPYC at 1 thread it bought nothing (bench/train_vaegan.py: 0.340
    vs 0.345 steps/s with and without, same run) and cost minutes of compilation."""
    return s.steps >= 1000 if s.compile is None else s.compile


def _losses(model: _Parts, x: torch.Tensor, g: torch.Generator, gan_weight: float
            ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    mu, log_var = model.encoder(x)  # 1.
    eps = torch.randn(mu.shape, generator=g, dtype=mu.dtype)
    rec = model.decoder(mu + eps * torch.exp(0.5 * log_var)).float()
    bce = F.binary_cross_entropy(rec, x, reduction="none").sum(dim=(1, 2, 3)).mean()
    kl = (-0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(1)).mean()
    logs = {"bce": bce.item(), "kl": kl.item(), "g": float("nan"), "d": float("nan")}
    if gan_weight <= 0:
        return bce + kl, None, logs
    d_real = model.discriminator(x).float()
    d_fake = model.discriminator(rec).float()  # one pass: L_s trains s only, the G term e and d
    real, fake = torch.zeros_like(d_real), torch.ones_like(d_real)  # published labels
    d_loss = (F.binary_cross_entropy_with_logits(d_real, real)
              + F.binary_cross_entropy_with_logits(d_fake, fake))  # 3.
    fooled = F.binary_cross_entropy_with_logits(d_fake, real)
    g_term = torch.clamp(fooled - d_loss.detach(), min=1e-4)
    logs.update(g=g_term.item(), d=d_loss.item())
    return bce + kl + gan_weight * g_term, d_loss, logs  # 2.


@torch.no_grad()
def heldout_losses(model: VAEGAN, data: torch.Tensor, channels_last: bool,
                   batch: int = 32) -> dict[str, float]:
    """Posterior-mean reconstruction of (N, 3, H, W) images in [0, 1]: mean per image of the summed
    BCE, of the BCE above its floor (sum of H(x)) and of the per-pixel MSE."""
    was_training = model.training
    model.eval()
    bce, excess, mse = [], [], []
    for i in range(0, len(data), batch):
        x = data[i: i + batch]
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        rec = model.reconstruct(x).float().clamp(1e-6, 1 - 1e-6)
        b = F.binary_cross_entropy(rec, x, reduction="none").sum(dim=(1, 2, 3))
        bce.append(b)
        excess.append(b - bernoulli_entropy(x))
        mse.append(((rec - x) ** 2).mean(dim=(1, 2, 3)))
    model.train(was_training)
    return {k: torch.cat(v).mean().item() for k, v in
            (("bce", bce), ("bce_excess", excess), ("mse", mse))}


def _test_steps(s: TrainSettings) -> set[int]:
    """The evaluation steps that also measure the test AUROC: ``test_checkpoints`` of them, spread
    evenly over the planned steps (the last planned evaluation included)."""
    evals = list(range(s.eval_every, s.steps + 1, s.eval_every)) or [s.steps]
    k = min(s.test_checkpoints, len(evals))
    if k <= 0:
        return set()
    return {evals[round((i + 1) * len(evals) / k) - 1] for i in range(k)}


def _new_curve(s: TrainSettings) -> dict:
    return {"every": s.eval_every, "step": [], "minutes": [],
            "train": {c: [] for c in COMPONENTS},
            "heldout": {"bce": [], "bce_excess": [], "mse": []},
            "test_auroc": {"step": [], "auroc": []}}


class Stepper:
    """One optimisation step of the VAE (Adam on e, d) and the discriminator (Adam on s):
    ``Stepper(model, settings, generator)(x, gan_weight) -> the step's loss components``."""

    def __init__(self, model: VAEGAN, s: TrainSettings, g: torch.Generator) -> None:
        self.model, self.s, self.g = model, s, g
        self.vae_params = [*model.encoder.parameters(), *model.decoder.parameters()]
        self.d_params = list(model.discriminator.parameters())
        self.opt_vae = torch.optim.Adam(self.vae_params, lr=s.lr, foreach=s.foreach)
        self.opt_d = torch.optim.Adam(self.d_params, lr=s.d_lr or s.lr, foreach=s.foreach)
        self.parts = _Parts(model, use_compile(s))

    def __call__(self, x: torch.Tensor, gan_weight: float) -> dict[str, float]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.s.bf16):
            try:
                vae_loss, d_loss, logs = _losses(self.parts, x, self.g, gan_weight)
            except Exception as exc:  # noqa: BLE001 - a compiler missing or failing: run eagerly
                if self.parts.encoder is self.model.encoder:
                    raise
                tqdm.write(f"torch.compile failed ({exc.__class__.__name__}); training eagerly")
                self.parts = _Parts(self.model, False)
                vae_loss, d_loss, logs = _losses(self.parts, x, self.g, gan_weight)
        self.opt_vae.zero_grad(set_to_none=True)
        vae_loss.backward(inputs=self.vae_params, retain_graph=d_loss is not None)
        if d_loss is not None:
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward(inputs=self.d_params)
            self.opt_d.step()
        self.opt_vae.step()
        return logs


def train(model: VAEGAN, images: np.ndarray, s: TrainSettings, progress: bool = True,
          heldout: np.ndarray | None = None, test=None) -> TrainLog:  # noqa: ANN001
    """Train in place on normal images (N, H, W, 3) uint8; returns what happened.

    heldout: (M, H, W, 3) uint8 normal images never trained on (None or empty: no learning curve
    of held-out losses and no early stopping: the last weights are kept). test: a callable
    model -> test AUROC (or None). The curve: ``step`` (evaluation steps), ``minutes`` (wall time
    then), ``train`` (means of each loss component over the steps since the last evaluation; nan
    where the term was off), ``heldout`` (:func:`heldout_losses`), ``test_auroc`` (step, auroc)."""
    torch.manual_seed(s.seed)
    g = torch.Generator().manual_seed(s.seed)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    data = to_tensor(images)
    held = to_tensor(heldout) if heldout is not None and len(heldout) else None
    model.train().to(memory_format=fmt)
    step_fn = Stepper(model, s, g)
    curve, test_at = _new_curve(s), _test_steps(s)
    window: dict[str, list[float]] = {c: [] for c in COMPONENTS}
    best, best_state, kept, new_best = float("inf"), None, 0, False
    start, logs, step = time.time(), {}, 0
    bar = tqdm(range(1, s.steps + 1), desc="train vaegan", disable=not progress, mininterval=2)
    for step in bar:
        idx = torch.randint(0, len(data), (s.batch_size,), generator=g)
        x = augment(data[idx], PROFILES[s.augment], g).contiguous(memory_format=fmt)
        logs = step_fn(x, s.gan_weight if step > s.gan_warmup else 0.0)
        for c in COMPONENTS:
            window[c].append(logs[c])
        if step % 20 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if v == v})
        timed_out = bool(s.max_minutes) and time.time() - start > 60 * s.max_minutes
        if step % s.eval_every == 0 or step == s.steps or timed_out:
            curve["step"].append(step)
            curve["minutes"].append(round((time.time() - start) / 60, 2))
            for c in COMPONENTS:
                vals = [v for v in window[c] if v == v]
                curve["train"][c].append(round(float(np.mean(vals)), 4) if vals else None)
                window[c] = []
            if held is not None:
                h = heldout_losses(model, held, s.channels_last)
                for k, v in h.items():
                    curve["heldout"][k].append(round(v, 4))
                if new_best := h["bce"] < best:
                    best, kept = h["bce"], step
                    best_state = copy.deepcopy(model.state_dict())
            # the test AUROC at the planned checkpoints, at the end, and of every new best held-out
            # checkpoint (so the kept weights' AUROC is on the curve even when a time cap stops early)
            if test is not None and (step in test_at or step == s.steps or timed_out or new_best):
                model.eval()
                curve["test_auroc"]["step"].append(step)
                curve["test_auroc"]["auroc"].append(round(float(test(model)), 4))
                model.train()
        if timed_out:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        kept = step
    model.eval().to(memory_format=torch.contiguous_format)
    return TrainLog(step, time.time() - start, logs, curve, kept)


def settings_dict(s: TrainSettings) -> dict:
    return asdict(s)
