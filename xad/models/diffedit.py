"""DiffEdit (Couairon et al., 2023) for counterfactual explanations of image anomaly detectors
(Liznerski et al., "Reimagining Anomalies", section "Diffusion Models for CE of Image AD").

The paper writes the generator as ``G(x, alpha, k) = A_dec(G'(psi(A_enc(x), t), alpha, k))``
where ``A_enc`` / ``A_dec`` are a latent diffusion model's autoencoder and ``psi`` is DiffEdit with
the prompt ``t`` set to the normal class's name. This module is the pipeline; the small text-conditional model it runs on for digits is
:class:`xad.models.textldm.TextLDM`. It gives

- :func:`pipeline`: diffusers' ``StableDiffusionDiffEditPipeline`` assembled around a
  :class:`TextLDM` (DDIM and DDIM-inverse schedulers with the training's beta schedule);
- :func:`load_stable_diffusion`: the same pipeline from a local diffusers-format Stable Diffusion
  folder (never downloads); :func:`save_as_diffusers` writes a :class:`TextLDM` in that format;
- :func:`diffedit`: ``psi``: mask from the difference of the noise predictions under the two
  prompts, DDIM inversion, masked denoising; returns masks, edited images and the latents;
- :func:`encode` / :func:`decode`: ``A_enc`` / ``A_dec`` on scaled latents (for ``G'``).

Images are (N, H, W, 3) uint8 or float in [0, 1] at the API; the VAE sees [-1, 1].
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from xad.data.transforms import DataError
from xad.models.textldm import TextLDM
from xad.tensors import to_float, to_tensor
from xad.weights import WeightsError


# -- pipelines ----------------------------------------------------------------------------------

def _pipeline_class():  # noqa: ANN202
    from diffusers import StableDiffusionDiffEditPipeline

    return StableDiffusionDiffEditPipeline


def _ddim_pair(config: dict[str, Any]):  # noqa: ANN202
    """(DDIMScheduler, DDIMInverseScheduler) from one scheduler config, as Stable Diffusion sets
    them up: no clipping, steps_offset 1; the sampler's last step ends at alphas_cumprod[0], the
    inversion's first step starts from the clean latent (alpha 1)."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    # private keys dropped: "_use_default_values" would make from_config ignore our overrides
    base = {k: v for k, v in dict(config).items() if not k.startswith("_") and k != "set_alpha_to_zero"}
    base.update(clip_sample=False, steps_offset=1)
    return (DDIMScheduler.from_config({**base, "set_alpha_to_one": False}),
            DDIMInverseScheduler.from_config({**base, "set_alpha_to_one": True}))


def pipeline(model: TextLDM):  # noqa: ANN201 - StableDiffusionDiffEditPipeline
    """``StableDiffusionDiffEditPipeline`` around ``model``'s modules (shared, not copied), with
    DDIM and DDIM-inverse schedulers on the training's beta schedule; no safety checker, progress
    bars off. Returns the pipeline (eval mode, on the model's device)."""
    model.eval()
    with _quiet():
        sched, inverse = _ddim_pair(model.schedule_kwargs())
        pipe = _pipeline_class()(vae=model.vae, text_encoder=model.text_encoder,
                                 tokenizer=model.tokenizer, unet=model.unet, scheduler=sched,
                                 inverse_scheduler=inverse, safety_checker=None,
                                 feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class _quiet:
    """Silence diffusers' deprecation notice for the (frozen, still working) DiffEdit pipeline."""

    def __enter__(self) -> None:
        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog

        self._level = dlog.get_verbosity()
        self._bars = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", FutureWarning)

    def __exit__(self, *exc: object) -> None:
        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog

        self._w.__exit__(*exc)
        dlog.set_verbosity(self._level)
        if self._bars[0]:
            dlog.enable_progress_bar()
        if self._bars[1]:
            tlog.enable_progress_bar()


#: Components a diffusers-format Stable Diffusion folder must hold for DiffEdit.
SD_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")


def check_diffusers_folder(path: str | Path) -> Path:
    """The folder if it looks like a diffusers-format Stable Diffusion pipeline (model_index.json
    naming vae, text_encoder, tokenizer, unet and scheduler, each a sub-folder with files);
    WeightsError naming the folder and what is missing otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        raise WeightsError(f"{folder}: no such folder (need a diffusers-format Stable Diffusion "
                           "folder; nothing is downloaded)")
    index = folder / "model_index.json"
    if not index.is_file():
        raise WeightsError(f"{folder}: not a diffusers-format Stable Diffusion folder "
                           "(no model_index.json)")
    try:
        raw = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{index}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise WeightsError(f"{index}: must be a JSON object")
    missing = [c for c in SD_COMPONENTS
               if not (isinstance(raw.get(c), list) and raw[c][0] is not None)
               or not (folder / c).is_dir() or not any((folder / c).iterdir())]
    if missing:
        raise WeightsError(f"{folder}: a Stable Diffusion folder for DiffEdit needs the components "
                           f"{', '.join(SD_COMPONENTS)}; missing or empty: {', '.join(missing)}")
    return folder


def load_stable_diffusion(path: str | Path, device: str | torch.device | None = None):  # noqa: ANN201
    """A DiffEdit pipeline from a local diffusers-format Stable Diffusion folder (e.g. a copy of
    stable-diffusion-v1-5, or one written by :func:`save_as_diffusers`), with DDIM / DDIM-inverse
    schedulers built from its scheduler config. Never downloads (``local_files_only``); no safety
    checker. ``device``: default CUDA if available (fp16 there), else CPU in fp32 with a warning
    that it will be slow for a full-size model. Returns the pipeline; WeightsError if the folder
    is unusable."""
    folder = check_diffusers_folder(path)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    try:
        with _quiet():
            pipe = _pipeline_class().from_pretrained(
                folder, local_files_only=True, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False, torch_dtype=dtype)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
        raise WeightsError(f"{folder}: cannot load as a Stable Diffusion pipeline "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                           ) from exc
    with _quiet():
        pipe.scheduler, pipe.inverse_scheduler = _ddim_pair(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if device.type != "cuda":
        warnings.warn(f"{folder}: running Stable Diffusion DiffEdit on {device.type}, not CUDA: "
                      "a full-size model takes minutes per image", RuntimeWarning, stacklevel=2)
    return pipe.to(device)


def save_as_diffusers(model: TextLDM, folder: str | Path) -> Path:
    """Write ``model`` as a diffusers-format pipeline folder (model_index.json, vae/, unet/,
    text_encoder/, tokenizer/, scheduler/, inverse_scheduler/; safetensors), loadable by
    :func:`load_stable_diffusion`. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _quiet():
        pipeline(model).save_pretrained(folder, safe_serialization=True)
    return folder


# -- the edit -----------------------------------------------------------------------------------

def native_size(pipe) -> int:  # noqa: ANN001
    """The image side a pipeline's UNet was trained for (latent size x the VAE's down-sampling):
    32 for the small digit model, 512 for Stable Diffusion 1.x."""
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def fit_image(pipe, image: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """An RGB uint8 (H, W, 3) image resized to the pipeline's native square size (unchanged if it
    has it already): a 32 px digit for Stable Diffusion becomes 512 px, a photo for the digit model
    32 px."""
    from xad.data.transforms import resize_image

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"expected an RGB uint8 image (H, W, 3), not {image.dtype} {image.shape}")
    return resize_image(image, native_size(pipe))


@dataclass
class DiffEditResult:
    """What :func:`diffedit` returns for N images of H x W.

    masks: (N, H, W) float in [0, 1], the DiffEdit mask (binary, computed at latent resolution
    and upsampled by nearest neighbour); latent_masks: (N, h, w) the same at latent resolution;
    edited: (N, H, W, 3) float in [0, 1]; inverted: (N, S, C, h, w) the DDIM-inverted latents,
    most noised first (S = the steps actually used, ``int(steps * strength)``); edited_latents:
    (N, C, h, w) the masked-denoised latents before decoding (``psi``'s output, scaled)."""

    masks: np.ndarray
    latent_masks: np.ndarray
    edited: np.ndarray
    inverted: torch.Tensor
    edited_latents: torch.Tensor
    source_prompt: str
    target_prompt: str

    @property
    def mask_fraction(self) -> np.ndarray:
        """(N,) the fraction of each image inside the mask."""
        return self.masks.reshape(len(self.masks), -1).mean(1)


def as_float_images(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) or (H, W, 3) uint8 / float in [0, 1] -> (N, H, W, 3) float32 in [0, 1];
    DataError for anything else."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] == 0:
        raise DataError(f"images must be (N, H, W, 3) or (H, W, 3) RGB, not shape {a.shape}")
    if a.dtype == np.uint8:
        return to_float(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"images must be uint8 or float in [0, 1], not {a.dtype}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise DataError("float images must be finite and in [0, 1]")
    return a.astype(np.float32)


@torch.no_grad()
def _mask_guidance(guidance: float) -> float:
    """diffusers' ``generate_mask`` fails for guidance <= 1 (no guidance): it concatenates the
    negative prompt embeddings it only computes under guidance. 1 + 1e-6 gives the conditional
    prediction to within 1e-6 x (eps_cond - eps_uncond), i.e. no guidance, through the working path."""
    return max(float(guidance), 1.0 + 1e-6)


def diffedit(pipe, images: np.ndarray | torch.Tensor, source_prompt: str, target_prompt: str,  # noqa: ANN001
             strength: float = 0.5, steps: int = 20, guidance: float = 7.5, seed: int = 0,
             mask_maps: int = 10, mask_threshold: float = 3.0, batch_size: int = 32,
             progress: Any = None) -> DiffEditResult:
    """DiffEdit ``psi`` on each image: (1) the mask: noise the latent to ``strength`` and
    threshold the mean |eps(target) - eps(source)| over ``mask_maps`` noise draws (guidance
    ``guidance``; clamp at ``mask_threshold`` x its mean, binarise at half); (2) DDIM inversion
    of the latent to ``strength`` (unconditional, no guidance: the encoding of Couairon et al.);
    (3) DDIM denoising with the target prompt (negative prompt = the source, guidance
    ``guidance``), keeping the inverted latents outside the mask at every step.

    ``pipe``: from :func:`pipeline` or :func:`load_stable_diffusion`; ``images``: (N, H, W, 3)
    uint8 or float in [0, 1], H and W multiples of the VAE's down-sampling. The mask is made one
    image at a time (the pipeline's clamp uses the mean over its whole batch) with a generator
    seeded ``seed``; inversion and denoising run ``batch_size`` images at a time, each image with
    its own generator seeded ``seed + 1``; so a result does not depend on the batch. ``progress``:
    called with (images done, total) after each batch. Returns a :class:`DiffEditResult`."""
    x = as_float_images(images)
    factor = pipe.vae_scale_factor
    if x.shape[1] % factor or x.shape[2] % factor:
        raise DataError(f"image sides must be multiples of {factor} (the VAE's down-sampling), "
                        f"not {x.shape[1]}x{x.shape[2]}")
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], not {strength}")
    if steps < 1 or int(steps * strength) < 1:
        raise ValueError(f"steps * strength must be at least 1 (steps={steps}, strength={strength})")
    common = {"num_inference_steps": int(steps)}
    masks, inverted, latents = [], [], []
    with _quiet():
        for chunk in to_tensor(x).contiguous().to(pipe.device, pipe.vae.dtype).split(max(1, int(batch_size))):
            n = len(chunk)
            mask = np.concatenate([
                np.asarray(pipe.generate_mask(
                    image=img, source_prompt=source_prompt, target_prompt=target_prompt,
                    mask_encode_strength=strength, guidance_scale=_mask_guidance(guidance),
                    num_maps_per_mask=mask_maps, mask_thresholding_ratio=mask_threshold,
                    generator=torch.Generator().manual_seed(int(seed)), output_type="np", **common),
                    dtype=np.float32) for img in chunk.split(1)])
            gens = lambda: [torch.Generator().manual_seed(int(seed) + 1) for _ in range(n)]  # noqa: E731
            inv = pipe.invert(prompt=[""] * n, image=chunk, inpaint_strength=strength,
                              guidance_scale=1.0, generator=gens(), **common).latents
            z = pipe(prompt=[target_prompt] * n, negative_prompt=[source_prompt] * n,
                     mask_image=mask, image_latents=inv, inpaint_strength=strength,
                     guidance_scale=guidance, generator=gens(), output_type="latent", **common).images
            masks.append(mask.reshape(n, *z.shape[-2:]))
            inverted.append(inv.float().cpu())
            latents.append(z.float().cpu())
            if progress is not None:
                progress(sum(len(m) for m in masks), len(x))
    z = torch.cat(latents)
    edited = decode(pipe, z).permute(0, 2, 3, 1).numpy()
    lm = np.concatenate(masks)
    full = np.kron(lm, np.ones((factor, factor), np.float32))
    return DiffEditResult(full, lm, edited, torch.cat(inverted), z, source_prompt, target_prompt)


# -- the autoencoder on its own (A_enc, A_dec) --------------------------------------------------

def _vae_of(model: Any):  # noqa: ANN202
    vae = getattr(model, "vae", None)
    if vae is None:
        raise TypeError("need a TextLDM or a DiffEdit pipeline (anything with a .vae)")
    return vae


@torch.no_grad()
def encode(model: Any, images: np.ndarray | torch.Tensor, generator: torch.Generator | None = None
           ) -> torch.Tensor:
    """``A_enc``: images -> scaled latents (N, C, h, w) (fp32, CPU). ``model``: a TextLDM or a
    pipeline. ``images``: (N, H, W, 3) numpy uint8 / float in [0, 1], or a (N, 3, H, W) float
    tensor in [0, 1]. The posterior mean, or a sample with ``generator``."""
    vae = _vae_of(model)
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3:
        x = images.float()
    else:
        x = to_tensor(as_float_images(images)).contiguous()
    p = next(vae.parameters())
    dist = vae.encode(x.to(p.device, p.dtype) * 2 - 1).latent_dist
    z = dist.mean if generator is None else dist.sample(generator)
    return (z * vae.config.scaling_factor).float().cpu()


@torch.no_grad()
def decode(model: Any, latents: torch.Tensor) -> torch.Tensor:
    """``A_dec``: scaled latents (N, C, h, w) -> images (N, 3, H, W) float in [0, 1] (fp32, CPU).
    ``model``: a TextLDM or a pipeline."""
    vae = _vae_of(model)
    p = next(vae.parameters())
    out = vae.decode(latents.to(p.device, p.dtype) / vae.config.scaling_factor).sample
    return ((out.float() + 1) / 2).clamp(0, 1).cpu()
