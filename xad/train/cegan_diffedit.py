"""``python -m xad train cegan --diffedit WEIGHTS``: the DiffEdit version of Liznerski et al.'s
counterfactual generator,

    G(x, alpha, k) = A_dec(G'(psi(A_enc(x), t), alpha, k)),

where ``A_enc`` / ``A_dec`` are a text-conditional latent diffusion model's autoencoder, ``psi`` is
DiffEdit with the target prompt ``t`` set to the normal class's caption ("digit seven"), and G' is
trained on the edited latents with the objective of the GAN version (:func:`xad.train.cegan.losses`
and :func:`xad.train.cegan.fit`, with ``decode = A_dec``).

Choices the paper leaves open (written on the card and in the UI):

- DiffEdit's *source* prompt is the empty (unconditional) caption: the class of an anomaly is not
  known when it is explained, so the mask compares "the normal class" with "anything";
- psi runs once per training image before training (cached on disk), not inside the loop; inside
  the loop L_cyc feeds G''s own output latent back to G' (psi of a generated image is not re-run);
- G''s input is psi's latent z_e, so "the input's own score" is phi(A_dec(z_e)), the score of the
  plain edit, and L_rec = |z_e - G'(z_e, phi(A_dec(z_e)), k)|, L_cyc likewise, in latent space
  (only G''s output is decoded: for phi, D and R).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from xad import CACHE_ROOT, portable
from xad.data import semantic
from xad.data.transforms import DataError
from xad.tensors import to_tensor
from xad.models.cegan import CEGAN, PRESETS
from xad.data.labelled import DIGIT_NAMES, caption
from xad.models.diffedit import decode, diffedit, pipeline
from xad.models.textldm import TextLDM
from xad.train.cegan import CEGANSettings, fit
from xad.weights import load_model, save_model

#: psi's edits of training inputs are cached here (``$XAD_CACHE/diffedit-psi``, default ``runs/``).
CACHE_DIR = CACHE_ROOT / "diffedit-psi"


#: G''s default loss weights where they differ from the GAN version's. L_rec and L_cyc are means of
#: |latent difference|, and the detector's gradient reaches a latent element ~17x weaker than an image
#: pixel (measured on mnist-7-hsc: mean |dL_phi/dz| 0.0097 per latent element against 0.163 per
#: pixel) while a latent has 1024 elements to an image's 3072. Per element, L_phi's gradient is then
#: ~33x L_rec's with lambda_rec = 0.3 (the GAN version: ~50-100x with lambda_rec 10-5); with
#: lambda_rec = 5 it was ~2x and G' stayed the identity.
LATENT_OBJECTIVE = {"lambda_rec": 0.3, "lambda_phi": 1.0}  # lambda_phi as G' was measured with (not the GAN preset's 5)


@dataclass(frozen=True)
class PsiSettings:
    """DiffEdit's parameters for psi (the same at training and at explanation time)."""

    target_prompt: str = ""  # "" = the setup's normal class caption ("digit seven")
    source_prompt: str = ""  # unconditional: the anomaly's class is unknown
    strength: float = 0.5
    steps: int = 20
    guidance: float = 7.5
    seed: int = 0

    def resolved(self, setup: str) -> PsiSettings:
        return replace(self, target_prompt=self.target_prompt or normal_prompt(setup))


def normal_prompt(setup: str) -> str:
    """The caption of a setup's normal class: mnist:7 -> "digit seven"."""
    kind, _, arg = setup.partition(":")
    if kind == "mnist" and arg in [str(d) for d in range(10)]:
        return caption(int(arg))
    raise DataError(f"{setup}: no default DiffEdit prompt for the normal class; give one "
                    f"(e.g. --target-prompt \"digit {DIGIT_NAMES[1]}\")")


def _key(ldm_folder: Path, images: np.ndarray, psi: PsiSettings) -> str:
    h = hashlib.sha256()
    h.update((Path(ldm_folder) / "model.safetensors").read_bytes())
    h.update(repr(sorted(asdict(psi).items())).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:20]


def psi_latents(model: TextLDM, ldm_folder: Path, images: np.ndarray, psi: PsiSettings,
                batch_size: int = 32, progress: bool = True, cache: bool = True) -> torch.Tensor:
    """psi(A_enc(x)) for (N, 32, 32, 3) uint8 images -> (N, C, h, w) scaled latents; cached on
    disk (runs/diffedit-psi/<hash of weights, images, settings>.npy)."""
    path = CACHE_DIR / f"{_key(ldm_folder, images, psi)}.npy"
    if cache and path.is_file():
        return torch.from_numpy(np.load(path, allow_pickle=False))
    start = time.time()
    bar = tqdm(total=len(images), desc="DiffEdit psi", disable=not progress, mininterval=2)

    def step(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    r = diffedit(pipeline(model), images, psi.source_prompt, psi.target_prompt, strength=psi.strength,
                 steps=psi.steps, guidance=psi.guidance, seed=psi.seed, batch_size=batch_size,
                 progress=step)
    bar.close()
    z = r.edited_latents.float()
    if cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.save(path, z.numpy())
        path.with_suffix(".json").write_text(json.dumps(
            {"seconds": round(time.time() - start, 1), "images": len(images),
             "threads": torch.get_num_threads()}))
    return z


def psi_seconds(ldm_folder: Path, images: np.ndarray, psi: PsiSettings) -> float | None:
    """The wall time psi took when it made the cached latents for these images (None: unknown)."""
    path = CACHE_DIR / f"{_key(ldm_folder, images, psi)}.json"
    try:
        return float(json.loads(path.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def decoder(model: TextLDM) -> Any:
    """A_dec as a differentiable function (the VAE frozen): scaled latents -> images, about [0, 1].

    Not clamped: the decoder puts an MNIST background slightly below 0, and a clamp there would
    stop every gradient that asks for a new stroke on the background."""
    vae = model.vae.eval().requires_grad_(False)
    sf = vae.config.scaling_factor
    return lambda z: (vae.decode(z / sf).sample.float() + 1) / 2


def run(setup: str, detector: Path, ldm_folder: Path, out: Path, settings: CEGANSettings,
        psi: PsiSettings, concepts: int = 2, preset: str = "cpu", data_path: str | None = None,
        edit_images: int = 2000, command: str = "", overrides: dict | None = None,
        eval_limit: int = 500) -> Path:
    """Edit ``edit_images`` training inputs with psi, train G' against the detector on the edited
    latents, save the weights folder and evaluate it (:func:`xad.counterfactual.evaluation.evaluate_folder`)."""
    from xad.counterfactual.evaluation import evaluate_folder

    phi, _ = load_model(detector, expect="Detector")
    ldm, _ = load_model(ldm_folder, expect="TextLDM")
    data = semantic.load_setup(setup, data_path)
    psi = psi.resolved(setup)
    rng = np.random.default_rng(settings.seed)
    n_oe = 0 if phi.config.kind == "dsvdd" else int(round(edit_images * settings.oe_fraction))
    normal = data.normal_train[rng.permutation(len(data.normal_train))[:edit_images - n_oe]]
    oe = semantic.outliers(data.oe_kind, n_oe, settings.seed + 1) if n_oe else normal[:0]
    inputs = np.concatenate([normal, oe])
    codes = psi_latents(ldm, ldm_folder, inputs, psi)
    seconds = psi_seconds(ldm_folder, inputs, psi)
    images = torch.cat([decode(ldm, codes[i: i + 256]) for i in range(0, len(codes), 256)])  # psi(x)
    x_norm = to_tensor(data.normal_train)

    def draw(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = torch.randint(0, len(codes), (settings.batch_size,), generator=g)
        real = x_norm[torch.randint(0, len(x_norm), (settings.batch_size,), generator=g)]
        return codes[i], images[i], real

    torch.manual_seed(settings.seed)
    config = replace(PRESETS[preset], concepts=concepts, space="latent",
                     code_channels=ldm.config.latent_channels, **{**LATENT_OBJECTIVE, **(overrides or {})})
    model = CEGAN(config)
    log = fit(model, phi, draw, settings, decode=decoder(ldm), desc="train G' (DiffEdit)")
    meta = {"setup": setup, "setup_description": data.description, "detector": portable(detector),
            "detector_kind": phi.config.kind, "image_size": 32, "seed": settings.seed,
            "backend": "diffedit", "diffedit": portable(ldm_folder), "psi": asdict(psi),
            "psi_seconds": seconds, "psi_images": len(inputs),
            "training_data": f"psi-edited latents of {len(normal)} normal training images of {setup}"
                             + (f" + {n_oe} OE ({data.oe_kind}) images" if n_oe else ""),
            "data_path": portable(data_path) if data_path else "embedded MNIST",
            "train_settings": asdict(settings), **log, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "command": command}
    save_model(model, out, family="cegan", card="(evaluating …)", preset=preset, meta=meta,
               dtype=torch.float16)
    return evaluate_folder(out, data_path, eval_limit)
