"""What a hidden segment shows while a detector's score is explained (the perturbation background).

The paper hides segments with the VAE-GAN's reconstruction x'. A detector without a
reconstruction needs another choice; each is a pure function of the image x (H, W, 3) float in
[0, 1] -> (H, W, 3) float32:

- ``reconstruction``: x' (VAE-GAN only; the audit passes it);
- ``blur``: a Gaussian blur of x (sigma = 1/16 of the side), texture gone, layout kept;
- ``mean``: x's mean colour everywhere;
- ``inpaint``: every superpixel of x (quickshift, as S1) filled from its surroundings by biharmonic
  inpainting (``skimage.restoration.inpaint_biharmonic``), so a hidden region looks like what
  surrounds it, not like a grey hole;
- ``reference``: a normal image of the user's (resized to x's size by the caller).
"""

from __future__ import annotations

import numpy as np

BACKGROUNDS = ("reconstruction", "blur", "mean", "inpaint", "reference")


def blur(x: np.ndarray) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(x, sigma=max(1.0, x.shape[0] / 16), channel_axis=-1, preserve_range=True).astype(np.float32)


def mean(x: np.ndarray) -> np.ndarray:
    return np.broadcast_to(x.reshape(-1, x.shape[-1]).mean(0), x.shape).astype(np.float32).copy()


def inpaint(x: np.ndarray, segments: int = 40, seed: int = 1234) -> np.ndarray:
    """Each quickshift superpixel of x inpainted from the rest of the image, one at a time."""
    from skimage.restoration import inpaint_biharmonic

    from xad.explain.segmentation import quickshift_k

    labels = quickshift_k(x, segments, seed).labels
    out = np.empty_like(x, dtype=np.float32)
    for k in np.unique(labels):
        hole = labels == k
        out[hole] = inpaint_biharmonic(x, hole, channel_axis=-1)[hole]
    return out


def background(name: str, x: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The background ``name`` of image x (H, W, 3) float in [0, 1]."""
    if name == "blur":
        return blur(x)
    if name == "mean":
        return mean(x)
    if name == "inpaint":
        return inpaint(x)
    if name == "reference":
        if reference is None or reference.shape != x.shape:
            raise ValueError(f"the reference image must be {x.shape}, got "
                             f"{None if reference is None else reference.shape}")
        return np.asarray(reference, np.float32)
    raise ValueError(f"background {name!r}: the reconstruction is the VAE-GAN's own; others: {BACKGROUNDS[1:]}")
