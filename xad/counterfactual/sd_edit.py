"""DiffEdit with a Stable Diffusion pipeline from a local folder on one image, scored by a bundle's
detector (the counterfactual page's "bring your own diffusion model" panel)."""

from __future__ import annotations

import time

import numpy as np

from xad.counterfactual.bundle import Bundle
from xad.counterfactual.explanation import prepare
from xad.data.transforms import resize_image
from xad.models.detectors import score_images
from xad.models.diffedit import diffedit, fit_image
from xad.tensors import to_uint8


def stable_diffusion_edit(b: Bundle, pipe, image: np.ndarray, source: str, target: str,  # noqa: ANN001
                          strength: float = 0.5, steps: int = 20, guidance: float = 7.5, seed: int = 0
                          ) -> dict:
    """DiffEdit with a Stable Diffusion pipeline from disk (:func:`xad.models.diffedit.load_stable_diffusion`)
    on one image at the pipeline's own size, and the bundle's detector on the edit scaled back to
    32 px: {"image", "mask", "edited" (native size), "score", "edit_score", "seconds"}."""
    x = fit_image(pipe, prepare(image))
    t0 = time.perf_counter()
    r = diffedit(pipe, x, source, target, strength=strength, steps=steps, guidance=guidance, seed=seed,
                 batch_size=1)
    seconds = time.perf_counter() - t0
    small = resize_image(to_uint8(r.edited[0]), 32)
    return {"image": x, "mask": r.masks[0], "edited": r.edited[0], "seconds": round(seconds, 2),
            "score": float(score_images(b.detector, prepare(image)[None])[0]), "edit_score": float(score_images(b.detector, small[None])[0])}
