"""A counterfactual *bundle*: a trained generator (a ``cegan`` weights folder) with the detector it
was trained against, the dataset's FID feature extractor and, for the DiffEdit version, the text
LDM; psi's per-image cache; G(x, alpha, k) and R on (N, 32, 32, 3) images."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xad import resolve
from xad.models.cegan import CEGAN
from xad.models.detectors import Detector, score_images
from xad.models.diffedit import decode, diffedit, pipeline
from xad.models.features import FeatureNet, dataset_of
from xad.models.textldm import TextLDM
from xad.tensors import to_tensor
from xad.weights import WEIGHTS_DIR, ModelRecord, WeightsError, find_model, list_models, load_model


@dataclass
class Bundle:
    """generator: the CEGAN (G, D, R); detector: phi; features: FID extractor or None; ldm: the
    DiffEdit backend's text-conditional latent diffusion model (None for the GAN version)."""

    generator: CEGAN
    detector: Detector
    features: FeatureNet | None
    record: ModelRecord
    detector_record: ModelRecord
    features_record: ModelRecord | None
    ldm: TextLDM | None = None
    ldm_record: ModelRecord | None = None
    psi_cache: dict = field(default_factory=dict, repr=False)  # image hash -> (latent, mask, edit)

    @property
    def backend(self) -> str:
        """"gan" or "diffedit"."""
        return "diffedit" if self.generator.config.space == "latent" else "gan"

    @property
    def setup(self) -> str:
        return self.record.meta["setup"]

    @property
    def concepts(self) -> int:
        return self.generator.config.concepts

    @property
    def data_path(self) -> str | None:
        """The data the generator was trained on (``--data``), None for the embedded MNIST: its
        evaluation and the page's gallery read the same data by default."""
        p = self.record.meta.get("data_path")
        return None if not p or p == "embedded MNIST" else str(resolve(p))


def generators(roots: list[str | Path] | None = None) -> list[ModelRecord]:
    """Trained counterfactual generators (cegan folders), shipped ones first."""
    return [m for m in list_models(roots)[0] if m.cls == "CEGAN"]


def find_generator(name: str | Path) -> Path:
    """A generator folder from a shipped name ("cegan/<folder>" or "<folder>") or a path."""
    return find_model(name, generators(), "generator")


def feature_extractor_for(setup: str, roots: list[str | Path] | None = None,
                          data_path: str | None = None) -> ModelRecord | None:
    """The FID extractor of the setup's dataset: one trained on the same data (``data_path`` as
    recorded in its config, "embedded MNIST" for the embedded one) first, else any of the dataset."""
    want = dataset_of(setup)
    found = [m for m in list_models(roots or [WEIGHTS_DIR])[0]
             if m.cls == "FeatureNet" and m.meta.get("dataset") == want]
    same = [m for m in found if m.meta.get("data_path", "embedded MNIST") == (data_path or "embedded MNIST")]
    return (same or found or [None])[0]


def load_bundle(folder: str | Path) -> Bundle:
    """The generator folder, its detector (``meta.detector``) and the FID extractor of its data."""
    gen, rec = load_model(folder, expect="CEGAN")
    det_path = rec.meta.get("detector")
    if not det_path:
        raise WeightsError(f"{folder}: config.json does not name the detector it was trained against")
    det, det_rec = load_model(resolve(det_path), expect="Detector")
    # the extractor beside the generator's weights root first (a user's folder), then the shipped one
    feat_rec = feature_extractor_for(rec.meta.get("setup", ""), [Path(folder).resolve().parent.parent,
                                                                  WEIGHTS_DIR], rec.meta.get("data_path"))
    feat = load_model(feat_rec.path, expect="FeatureNet")[0] if feat_rec else None
    ldm = ldm_rec = None
    if gen.config.space == "latent":
        if not rec.meta.get("diffedit") or not rec.meta.get("psi"):
            raise WeightsError(f"{folder}: a DiffEdit generator's config.json must name its latent "
                               "diffusion model (meta 'diffedit') and psi's settings (meta 'psi')")
        ldm, ldm_rec = load_model(resolve(rec.meta["diffedit"]), expect="TextLDM")
        if ldm.config.latent_channels != gen.config.code_channels:
            raise WeightsError(f"{folder}: G' maps {gen.config.code_channels}-channel latents, but "
                               f"{ldm_rec.name} makes {ldm.config.latent_channels}-channel ones")
    return Bundle(gen, det, feat, rec, det_rec, feat_rec, ldm, ldm_rec)


#: psi results kept per bundle (about 20 kB each; the oldest go first).
PSI_CACHE_SIZE = 5000


def _image_key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def psi(b: Bundle, images: np.ndarray, progress: object = None
        ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """DiffEdit's psi on (N, 32, 32, 3) uint8 images with the generator's training settings:
    (latents (N, C, h, w), masks (N, 32, 32), plain edits (N, 32, 32, 3) float). Each image's
    result is kept in the bundle, so it is computed once. ``progress(done, total)``: optional."""
    if b.ldm is None:
        raise ValueError("psi needs the DiffEdit backend")
    keys = [_image_key(x) for x in images]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}  # each distinct image once
    missing = [first[k] for k in dict.fromkeys(keys) if k not in b.psi_cache]
    if missing:
        p = b.record.meta["psi"]
        r = diffedit(pipeline(b.ldm), images[missing], p["source_prompt"], p["target_prompt"],
                     strength=p["strength"], steps=p["steps"], guidance=p["guidance"], seed=p["seed"],
                     progress=progress)
        for j, i in enumerate(missing):
            b.psi_cache[keys[i]] = (r.edited_latents[j], r.masks[j], r.edited[j])
    got = [b.psi_cache[k] for k in keys]
    while len(b.psi_cache) > PSI_CACHE_SIZE:  # the oldest go first (dicts keep insertion order)
        b.psi_cache.pop(next(iter(b.psi_cache)))
    if not got:
        return torch.zeros(0), np.zeros((0, 32, 32), np.float32), np.zeros((0, 32, 32, 3), np.float32)
    return torch.stack([g[0] for g in got]), np.stack([g[1] for g in got]), np.stack([g[2] for g in got])


@torch.inference_mode()
def generate(b: Bundle, images: np.ndarray, alpha: float | np.ndarray, k: int | np.ndarray,
             batch_size: int = 512) -> np.ndarray:
    """G(x, alpha, k) for (N, 32, 32, 3) images -> (N, 32, 32, 3) float32 in [0, 1]. k is 0-based."""
    n = len(images)
    a = np.broadcast_to(np.asarray(alpha, np.float32), (n,))
    kk = np.broadcast_to(np.asarray(k, np.int64), (n,))
    if kk.size and (kk.min() < 0 or kk.max() >= b.concepts):
        raise ValueError(f"concept k must be in 0..{b.concepts - 1} (0-based; the page and the CLI count 1..{b.concepts})")
    if b.backend == "diffedit":
        codes = psi(b, np.asarray(images))[0]
        g = lambda i: decode(b.ldm, b.generator(codes[i: i + batch_size], torch.from_numpy(  # noqa: E731
            a[i: i + batch_size].copy()), torch.from_numpy(kk[i: i + batch_size].copy())))
    else:
        g = lambda i: b.generator(to_tensor(images[i: i + batch_size]), torch.from_numpy(  # noqa: E731
            a[i: i + batch_size].copy()), torch.from_numpy(kk[i: i + batch_size].copy()))
    out = [g(i).permute(0, 2, 3, 1).numpy() for i in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 32, 32, 3), np.float32)


#: bisection steps of :func:`generate_matched`: G's alpha input to within 2**-12 of [0, 1]
MATCH_ITERATIONS = 12


def generate_matched(b: Bundle, images: np.ndarray, alpha: float | np.ndarray, k: int | np.ndarray,
                     iterations: int = MATCH_ITERATIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xad's extension "alpha matched": per image, the alpha input a of G for which the detector
    scores G(x, a, k) at the target ``alpha``, found by bisection on a in [0, 1] (the score of
    G(x, a, k) rises with a wherever G is calibrated in order). Where the target lies outside what
    G reaches for that image, a ends at 0 or 1. Returns (CEs, G's alpha inputs, their scores).

    This is not the paper's G(x, alpha, k) (which takes the target as its input unchanged): it
    calls the detector ``iterations + 1`` times per image and exists so that a user's alpha is the
    score the CE gets; metrics of G itself never use it."""
    n = len(images)
    target = np.broadcast_to(np.asarray(alpha, np.float32), (n,))
    lo, hi = np.zeros(n, np.float32), np.ones(n, np.float32)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        below = score_images(b.detector, generate(b, images, mid, k)) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    a = (lo + hi) / 2
    a = np.where(lo == 0, 0.0, np.where(hi == 1, 1.0, a)).astype(np.float32)  # unreachable: the end
    ce = generate(b, images, a, k)
    return ce, a, score_images(b.detector, ce)


@torch.inference_mode()
def concept_logits(b: Bundle, x: np.ndarray, x_bar: np.ndarray) -> np.ndarray:
    return b.generator.concept_logits(to_tensor(x), to_tensor(x_bar)).double().numpy()


def gan_counterpart(r: ModelRecord, roots: list[str | Path] | None = None) -> ModelRecord | None:
    """The GAN-version generator trained for the same setup against the same detector as the
    DiffEdit generator ``r`` (for the side-by-side table), or None."""
    return next((g for g in generators(roots) if g.meta.get("backend", "gan") == "gan"
                 and g.meta.get("setup") == r.meta.get("setup") and g.metrics
                 and Path(resolve(g.meta.get("detector", ""))).resolve()
                 == Path(resolve(r.meta.get("detector", ""))).resolve()), None)


def stored_evaluation(r: ModelRecord, n_anomalies: int) -> dict | None:
    """The generator's measured metrics on ``n_anomalies`` test anomalies: its config.json metrics
    if they were measured on that many, else a ``metrics-n<N>.json`` beside the weights (written by
    ``python -m xad evaluate cegan --limit N --out ...``), else None."""
    if r.metrics.get("n_anomalies") == n_anomalies:
        return r.metrics
    path = r.path / f"metrics-n{n_anomalies}.json"
    return json.loads(path.read_text()) if path.is_file() else None
