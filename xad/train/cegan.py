"""``python -m xad train cegan``: the counterfactual generator of Liznerski et al. against a trained,
frozen detector phi, with the full objective of their eq. (1):

    lambda_gan (L_D + L_G) + lambda_phi L_phi + lambda_rec (L_rec + L_cyc) + lambda_r L_con

- L_D, L_G: hinge losses (L_G = max(0, 1 - D(G(x))) as the paper; ``generator_loss = "linear"``
  is -D(G(x))), D with spectral normalisation; D's real images are normal training images;
- L_phi: the continuous BCE between the target alpha and phi(G(x, alpha, k)) (the paper writes it
  with a minus sign in front of the log-likelihood; we minimise the cross entropy);
- L_rec = |x - G(x, phi(x), k)|_1, L_cyc = |x - G(G(x, alpha, k), phi(x), k)|_1 (means over pixels);
  with ``cycle = "intensity"`` L_cyc compares only the per-pixel max over channels, so a CE that
  recolours the input (a green digit made red) need not carry its old colour for the way back;
- L_con = CE(k, R(x, x_bar)) + CE(k, R(x_bar, x_bar)), minimised by G and R together;
- pseudo-anomalies: a share of each batch is replaced by G(x, alpha in [0.8, 1], k') (no gradient)
  with its own phi, so G also learns to turn (pseudo-)anomalies back into normal images;
- for detectors trained with outlier exposure, a quarter of the inputs are OE images (the data phi
  was trained on), which are anomalies G must learn to normalise too.

The DiffEdit version (:mod:`xad.train.cegan_diffedit`) trains G' with the same :func:`losses` and
:func:`fit`: G' maps latents, ``decode`` (the autoencoder's decoder) turns its outputs into the
images that phi, D and R see, and L_rec and L_cyc compare latents (G''s inputs and outputs), as the
GAN version compares images.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from xad import portable
from xad.data import semantic
from xad.tensors import to_tensor
from xad.models.cegan import CEGAN, PRESETS
from xad.precision import bf16_is_fast
from xad.weights import load_model, save_model

#: Draws one training batch: (G's inputs, the images they show, real normal images for D).
#: For the GAN version G's inputs are the images themselves (the middle element is None).
Draw = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]


@dataclass(frozen=True)
class CEGANSettings:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-4
    d_lr: float | None = None  # the discriminator's learning rate (None: lr); > lr is TTUR
    seed: int = 0
    oe_fraction: float = 0.25  # only when the detector was trained with OE
    max_minutes: float = 0.0
    bf16: bool = field(default_factory=bf16_is_fast)  # autocast if native bf16; losses fp32


def sample_alpha(n: int, how: str, g: torch.Generator) -> torch.Tensor:
    """Target scores: "uniform" in [0, 1]; "extremes": half exactly 0 or 1, half uniform."""
    a = torch.rand(n, generator=g)
    if how == "extremes":
        pick = torch.rand(n, generator=g) < 0.5
        a = torch.where(pick, (torch.rand(n, generator=g) < 0.5).float(), a)
    return a


def score_loss(phi: torch.nn.Module, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """L_phi: the continuous BCE between the detector's score of x and the target alpha, from the
    detector's log scores (a saturated sigmoid would give no gradient)."""
    log_s, log_1ms = phi.log_scores(x)
    return -(alpha * log_s + (1 - alpha) * log_1ms).mean()


def cycle_loss(x: torch.Tensor, x_back: torch.Tensor, how: str = "full") -> torch.Tensor:
    """L_cyc: mean |x - x_back| over every channel ("full"), or over the per-pixel max over
    channels ("intensity"; a digit drawn in another colour of the same brightness costs nothing)."""
    if how == "intensity":
        return (x.amax(1) - x_back.amax(1)).abs().mean()
    return (x - x_back).abs().mean()


def generator_loss(d_fake: torch.Tensor, how: str = "hinge") -> torch.Tensor:
    """L_G from the discriminator's outputs on G's images: "hinge" mean max(0, 1 - D) (the paper;
    no gradient once D calls an image real by the margin), "linear" mean -D (unbounded)."""
    return F.relu(1 - d_fake).mean() if how == "hinge" else -d_fake.mean()


def losses(model: CEGAN, phi: torch.nn.Module, x: torch.Tensor, x_real: torch.Tensor,
           g: torch.Generator, decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
           images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One step's (D loss, G+R loss, logs) for G's inputs x and real (normal) images x_real.

    GAN version: x are images. DiffEdit version: x are G''s input latents, ``images`` the images
    they decode to and ``decode`` maps G''s output latents to images (differentiably); L_rec and
    L_cyc are taken on G''s own inputs and outputs (latents there, images here)."""
    c = model.config
    n = len(x)
    dec = decode or (lambda t: t)
    img = x if images is None else images
    with torch.no_grad():
        phi_x = phi(img)
        n_pa = int(round(n * c.pseudo_anomaly_fraction))
        if n_pa:
            hi = 0.8 + 0.2 * torch.rand(n_pa, generator=g)
            k_pa = torch.randint(0, c.concepts, (n_pa,), generator=g)
            pa = model(x[:n_pa], hi, k_pa)
            pa_img = dec(pa).float()
            x, img = torch.cat([pa, x[n_pa:]]), torch.cat([pa_img, img[n_pa:]])
            phi_x = torch.cat([phi(pa_img), phi_x[n_pa:]])
    alpha = sample_alpha(n, c.alpha_sampling, g)
    k = torch.randint(0, c.concepts, (n,), generator=g)
    code_bar = model(x, alpha, k)
    x_bar = dec(code_bar)
    d_loss = F.relu(1 - model.discriminate(x_real).float()).mean() + \
        F.relu(1 + model.discriminate(x_bar.detach()).float()).mean()
    l_g = generator_loss(model.discriminate(x_bar).float(), c.generator_loss)
    l_phi = score_loss(phi, x_bar, alpha)
    l_rec = (x - model(x, phi_x, k).float()).abs().mean()
    l_cyc = cycle_loss(x, model(code_bar, phi_x, k).float(), c.cycle)
    l_con = F.cross_entropy(model.concept_logits(img, x_bar).float(), k) + \
        F.cross_entropy(model.concept_logits(x_bar, x_bar).float(), k)
    total = c.lambda_gan * l_g + c.lambda_phi * l_phi + c.lambda_rec * (l_rec + l_cyc) + c.lambda_r * l_con
    logs = {"d": d_loss.item(), "g": l_g.item(), "phi": l_phi.item(), "rec": l_rec.item(),
            "cyc": l_cyc.item(), "con": l_con.item()}
    return c.lambda_gan * d_loss, total, logs


def train(model: CEGAN, phi: torch.nn.Module, normal: np.ndarray, oe: np.ndarray | None,
          s: CEGANSettings, progress: bool = True) -> dict:
    """Train G, D, R in place against the frozen detector ``phi`` (the GAN version)."""
    x_norm = to_tensor(normal)
    x_oe = to_tensor(oe) if oe is not None and len(oe) else None
    n_oe = int(round(s.batch_size * s.oe_fraction)) if x_oe is not None else 0

    def draw(g: torch.Generator) -> tuple[torch.Tensor, None, torch.Tensor]:
        x = x_norm[torch.randint(0, len(x_norm), (s.batch_size - n_oe,), generator=g)]
        if n_oe:
            x = torch.cat([x_oe[torch.randint(0, len(x_oe), (n_oe,), generator=g)], x])
        return x, None, x_norm[torch.randint(0, len(x_norm), (s.batch_size,), generator=g)]

    return fit(model, phi, draw, s, progress)


def fit(model: CEGAN, phi: torch.nn.Module, draw: Draw, s: CEGANSettings, progress: bool = True,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None, desc: str = "train cegan") -> dict:
    """The training loop shared by both versions: ``draw`` gives each step's batch, ``decode``
    turns G's outputs into images (None: G makes images). Trains G, D, R in place."""
    g = torch.Generator().manual_seed(s.seed)
    phi.eval().requires_grad_(False)
    g_params = [*model.generator.parameters(), *model.concept_classifier.parameters()]
    opt_g = torch.optim.Adam(g_params, lr=s.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=s.d_lr or s.lr, betas=(0.5, 0.999))
    model.train()
    start, logs, step = time.time(), {}, 0
    bar = tqdm(range(s.steps), desc=desc, disable=not progress, mininterval=2)
    for step in bar:
        x, images, x_real = draw(g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.bf16):
            d_loss, total, logs = losses(model, phi, x, x_real, g, decode, images)
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        d_loss.backward(inputs=list(model.discriminator.parameters()))
        total.backward(inputs=g_params)
        opt_d.step()
        opt_g.step()
        if step % 20 == 0:
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
        if s.max_minutes and time.time() - start > 60 * s.max_minutes:
            break
    model.eval()
    return {"steps_done": step + 1, "train_seconds": round(time.time() - start, 1),
            "final_losses": {k: round(v, 4) for k, v in logs.items()}}


def continued(init_from: Path, overrides: dict | None = None) -> tuple[CEGAN, str, list[dict]]:
    """The generator of the GAN-version folder ``init_from`` (G, D and R) with its objective
    changed by ``overrides``, to be trained on; returns (model, its preset, the training history
    to record: every earlier stage, oldest first, each with its command, steps and minutes)."""
    m0, r0 = load_model(init_from, expect="CEGAN")
    if m0.config.space != "image":
        raise ValueError(f"{init_from}: a DiffEdit generator; --init-from continues a GAN-version one")
    model = CEGAN(replace(m0.config, **(overrides or {})))
    model.load_state_dict(m0.state_dict())
    stage = {"folder": portable(init_from), "command": r0.meta.get("command", ""),
             "steps_done": r0.meta.get("steps_done"), "train_seconds": r0.meta.get("train_seconds"),
             "objective": {k: v for k, v in asdict(m0.config).items() if k.startswith("lambda_")}}
    return model, r0.preset, [*r0.meta.get("history", []), stage]


def run(setup: str, detector: Path, out: Path, settings: CEGANSettings, concepts: int = 2,
        preset: str = "cpu", data_path: str | None = None, command: str = "",
        overrides: dict | None = None, init_from: Path | None = None) -> Path:
    """Train a generator for ``setup`` against the detector folder, save it, evaluate it.
    ``init_from``: start from that generator folder's G, D and R (its architecture; ``overrides``
    change only the objective) instead of a fresh preset; the card records both stages."""
    from xad.counterfactual.evaluation import evaluate_folder

    phi, det_record = load_model(detector, expect="Detector")
    data = semantic.load_setup(setup, data_path)
    n_oe = max(1, min(20000, int(settings.steps * settings.batch_size * settings.oe_fraction)))
    oe = None if phi.config.kind == "dsvdd" else semantic.outliers(data.oe_kind, n_oe, settings.seed + 1)
    torch.manual_seed(settings.seed)
    history: list[dict] = []
    if init_from is not None:
        model, preset, history = continued(init_from, overrides)
    else:
        model = CEGAN(replace(PRESETS[preset], concepts=concepts, **(overrides or {})))
    log = train(model, phi, data.normal_train, oe, settings)
    meta = {"setup": setup, "setup_description": data.description, "detector": portable(detector),
            "detector_kind": phi.config.kind, "image_size": 32, "seed": settings.seed,
            "training_data": f"{len(data.normal_train)} normal training images of {setup}"
                             + ("" if oe is None else f" + OE ({data.oe_kind}) as inputs"),
            "data_path": portable(data_path) if data_path else "embedded MNIST",
            "train_settings": asdict(settings), **log, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "command": command,
            **({"history": history} if history else {})}
    save_model(model, out, family="cegan", card="(evaluating …)", preset=preset, meta=meta,
               dtype=torch.float16)
    return evaluate_folder(out, data_path)
