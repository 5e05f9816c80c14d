"""Latent-diffusion multi-class detection (Wang & Tavakkoli): scores, reconstructions across
timesteps, AUROC against baselines and a control, class drift, and both as functions of t. The
latent-diffusion page and ``python -m xad evaluate ldm`` call these functions.

Scores on one evaluation subset (``limit`` anomalous and ``limit`` normal test images, drawn with
a seed), all from the same reconstructions from t:

- **method** (``auroc_method``): the same-class classifier's logit that x and its reconstruction
  from t show different classes;
- **DDPM reconstruction error** (``auroc_ddpm``): pixel MSE between x and its reconstruction;
- **latent error** (``auroc_latent``): mean |z0 - z0_hat| between the latent and its denoised one;
- **autoencoder error** (``auroc_ae``): the VQ autoencoder alone, decode(encode(x)) (t = 0);
- **ink control** (``auroc_ink``): the sum of pixel values, no model at all. A score that does no
  better than this only counts ink.

**Drift** at t: the share of normal and of anomalous test images whose reconstruction an
independent digit classifier (``weights/features/mnist-cpu``) puts in another class than the
image's label (the paper's Fig. 3: anomalies drift from t = 200, normals stay).

Two diagnostics say *why* the method scores what it does (neither is a detector, neither counts
as a baseline):

- **class-change reference** (``auroc_class_change``): 1 - P(reconstruction in x's class), by the
  same independent digit classifier (x's class as it predicts it; no label used). That classifier
  was trained on all ten digits, anomalies included, so this is what a near-perfect "same class?"
  decision could reach from these reconstructions: the method's ceiling as the paper frames it.
- **rank correlation of the method with the latent error** (``rank_corr_method_latent``,
  Spearman): near 1, the classifier ranks images by how far the reconstruction moved, not by class.

Reconstructions are stochastic (forward noise, DDPM ancestral noise); every call takes a seed, so
the same inputs and seed give the same numbers. Nothing here imports :mod:`xad.train`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from xad import REPO_ROOT, __version__
from xad.data.multiclass import MultiClassData
from xad.models.ldm import LatentDiffusionAD
from xad.tensors import to_tensor
from xad.weights import ModelRecord, WeightsError, find_model, list_models, load_model

SWEEP_TS = tuple(range(0, 501, 50))
#: Where the drift classifier lives (an independent digit classifier, not trained by this model).
DRIFT_CLASSIFIER = REPO_ROOT / "weights" / "features" / "mnist-cpu"
SCORES = ("method", "ddpm", "latent", "ae", "ink")
SCORE_NAMES = {"method": "latent diffusion + same-class classifier (this paper)",
               "ddpm": "DDPM reconstruction error (baseline)",
               "latent": "latent error, mean |z0 - z0_hat| (baseline)",
               "ae": "autoencoder reconstruction error (baseline)",
               "ink": "ink mass, sum of pixels (control, no model)"}


def sweep_ts(model: LatentDiffusionAD, step: int = 50) -> tuple[int, ...]:
    """The timesteps of the sweep and the Fig. 3 grid: 0, step, ..., 500 (for models with fewer
    than 1000 steps, 11 steps from 0 to T / 2)."""
    T = model.config.timesteps
    if T > 2 * SWEEP_TS[-1]:
        return tuple(range(0, SWEEP_TS[-1] + 1, step))
    return tuple(int(v) for v in np.linspace(0, T // 2, 11))


def models(roots: list[str | Path] | None = None) -> list[ModelRecord]:
    return [m for m in list_models(roots)[0] if m.cls == "LatentDiffusionAD"]


def find(name: str | Path) -> Path:
    """An ldm weights folder from a shipped name ("ldm/<folder>" or "<folder>") or a path."""
    return find_model(name, models(), "latent-diffusion model")


def load(folder: str | Path) -> tuple[LatentDiffusionAD, ModelRecord]:
    return load_model(folder, expect="LatentDiffusionAD")


def drift_classifier(data: MultiClassData) -> torch.nn.Module | None:
    """The independent digit classifier for MNIST settings (None for other data or if absent)."""
    if not data.setting.startswith("mnist") or not (DRIFT_CLASSIFIER / "config.json").is_file():
        return None
    try:
        return load_model(DRIFT_CLASSIFIER, expect="FeatureNet")[0].float().eval()
    except WeightsError:
        return None


@torch.inference_mode()
def class_probabilities(classifier: torch.nn.Module, images: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """(N, 3, 32, 32) in [0, 1] -> (N, classes) softmax of the first head, float64."""
    if not len(images):
        return np.zeros((0, 10))
    return np.concatenate([torch.softmax(classifier(images[i: i + batch])[0].double(), 1).numpy()
                           for i in range(0, len(images), batch)])


def predict_classes(classifier: torch.nn.Module, images: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """(N, 3, 32, 32) in [0, 1] -> (N,) class ids from the first head."""
    return class_probabilities(classifier, images, batch).argmax(1) if len(images) else np.zeros(0, int)


def class_change_scores(classifier: torch.nn.Module, images: torch.Tensor, recs: torch.Tensor) -> np.ndarray:
    """1 - P(rec in x's class) for each pair, x's class being the classifier's own prediction on x."""
    cls = predict_classes(classifier, images)
    return 1.0 - class_probabilities(classifier, recs)[np.arange(len(cls)), cls]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties), rounded to 4 digits."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return round(float(np.corrcoef(ra, rb)[0, 1]), 4)


def eval_indices(data: MultiClassData, limit: int = 500, seed: int = 0) -> np.ndarray:
    """Up to ``limit`` anomalous and ``limit`` normal test indices, seeded, sorted."""
    rng = np.random.default_rng(seed)
    anom, norm = np.flatnonzero(data.anomalous_test), np.flatnonzero(~data.anomalous_test)
    return np.sort(np.r_[rng.permutation(anom)[:limit], rng.permutation(norm)[:limit]])


@dataclass(frozen=True)
class Reconstruction:
    """images: (N, 32, 32, 3) float in [0, 1]; scores: the classifier's logit of "different";
    errors: pixel MSE; latent_errors: mean |z0 - z0_hat|; tensor: the images as (N, 3, 32, 32)."""

    images: np.ndarray
    scores: np.ndarray
    errors: np.ndarray
    latent_errors: np.ndarray
    tensor: torch.Tensor


@torch.inference_mode()
def reconstruct(model: LatentDiffusionAD, images: np.ndarray, t: int, sampler: str = "ddpm",
                steps: int = 50, seed: int = 0, batch_size: int = 500) -> Reconstruction:
    """Reconstruct (N, 32, 32, 3) uint8 images from timestep t and score them."""
    g = torch.Generator().manual_seed(seed)
    recs, scores, errors, lat = [], [], [], []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i: i + batch_size])
        z0, z_hat = model.reconstruct_latents(x, t, sampler, steps, g)
        r = model.decode(z_hat)
        recs.append(r)
        scores.append(model.score(x, r).double().numpy())
        errors.append(((x - r) ** 2).mean((1, 2, 3)).double().numpy())
        lat.append((z0 - z_hat).abs().mean((1, 2, 3)).double().numpy())
    if not recs:
        return Reconstruction(np.zeros((0, 32, 32, 3)), *(np.zeros(0),) * 3, torch.zeros(0, 3, 32, 32))
    tensor = torch.cat(recs)
    return Reconstruction(tensor.permute(0, 2, 3, 1).numpy(), np.concatenate(scores), np.concatenate(errors),
                          np.concatenate(lat), tensor)


@torch.inference_mode()
def autoencoder_errors(model: LatentDiffusionAD, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    out = [np.zeros(0)]
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i: i + batch_size])
        out.append(((x - model.autoencode(x)) ** 2).mean((1, 2, 3)).double().numpy())
    return np.concatenate(out)


def ink(images: np.ndarray) -> np.ndarray:
    """The ink-mass control: the sum of pixel values per image, in [0, 1] units."""
    return images.reshape(len(images), -1).astype(np.float64).sum(1) / 255


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    return round(float(roc_auc_score(labels, scores)), 4)


def _drift(classifier: torch.nn.Module | None, rec: Reconstruction, y: np.ndarray,
           anomalous: np.ndarray) -> dict[str, float | None]:
    if classifier is None:
        return {"drift_normal": None, "drift_anomalous": None}
    moved = predict_classes(classifier, rec.tensor) != y
    return {"drift_normal": round(float(moved[~anomalous].mean()), 4),
            "drift_anomalous": round(float(moved[anomalous].mean()), 4)}


def evaluate(model: LatentDiffusionAD, data: MultiClassData, t: int | None = None, sampler: str = "ddpm",
             steps: int = 50, limit: int = 500, seed: int = 0,
             classifier: torch.nn.Module | None = None) -> dict:
    """AUROC of the method, the baselines and the ink control at t on the evaluation subset, and
    the drift shares at t (``classifier``: default the independent digit classifier)."""
    t = model.config.t_default if t is None else t
    if not 0 <= t < model.config.timesteps:
        raise ValueError(f"t must be in 0..{model.config.timesteps - 1}")
    classifier = classifier if classifier is not None else drift_classifier(data)
    idx = eval_indices(data, limit, seed)
    x, y, a = data.x_test[idx], data.y_test[idx], data.anomalous_test[idx]
    r = reconstruct(model, x, t, sampler, steps, seed)
    change = (None if classifier is None else
              auroc(a, class_change_scores(classifier, to_tensor(x), r.tensor)))
    return {"t": t, "sampler": sampler, "ddim_steps": steps if sampler == "ddim" else None, "seed": seed,
            "n_normal": int((~a).sum()), "n_anomalous": int(a.sum()),
            "auroc_method": auroc(a, r.scores), "auroc_ddpm": auroc(a, r.errors),
            "auroc_latent": auroc(a, r.latent_errors), "auroc_ae": auroc(a, autoencoder_errors(model, x)),
            "auroc_ink": auroc(a, ink(x)), **_drift(classifier, r, y, a),
            "auroc_class_change": change, "rank_corr_method_latent": rank_correlation(r.scores, r.latent_errors)}


def sweep(model: LatentDiffusionAD, data: MultiClassData, ts: tuple[int, ...] | None = None,
          sampler: str = "ddpm", steps: int = 50, limit: int = 200, seed: int = 0,
          progress: Callable[[int, int], None] | None = None,
          classifier: torch.nn.Module | None = None) -> pd.DataFrame:
    """AUROC and drift vs t. Columns: t, auroc_method, auroc_ddpm, auroc_latent, drift_normal,
    drift_anomalous (drift None without a digit classifier). progress(i, n) after each t."""
    ts = sweep_ts(model, 100) if ts is None else ts
    classifier = classifier if classifier is not None else drift_classifier(data)
    idx = eval_indices(data, limit, seed)
    x, y, a = data.x_test[idx], data.y_test[idx], data.anomalous_test[idx]
    rows = []
    for i, t in enumerate(ts):
        r = reconstruct(model, x, t, sampler, steps, seed)
        rows.append({"t": t, "auroc_method": auroc(a, r.scores), "auroc_ddpm": auroc(a, r.errors),
                     "auroc_latent": auroc(a, r.latent_errors), **_drift(classifier, r, y, a)})
        if progress:
            progress(i + 1, len(ts))
    return pd.DataFrame(rows)


def examples(data: MultiClassData, n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` normal and ``n`` anomalous test images (fixed by seed): (images, labels, anomalous)."""
    rng = np.random.default_rng(seed)
    norm = rng.permutation(np.flatnonzero(~data.anomalous_test))[:n]
    idx = np.r_[norm, rng.permutation(np.flatnonzero(data.anomalous_test))[:n]]
    return data.x_test[idx], data.y_test[idx], data.anomalous_test[idx]


def timestep_grid(model: LatentDiffusionAD, images: np.ndarray, ts: tuple[int, ...] | None = None,
                  sampler: str = "ddpm", steps: int = 50, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Fig. 3: reconstructions of each image at each t, (len(images), len(ts), 32, 32, 3);
    ``progress(i, n)`` after each t."""
    ts = sweep_ts(model) if ts is None else ts
    out = []
    for i, t in enumerate(ts):
        out.append(reconstruct(model, images, t, sampler, steps, seed).images)
        if progress:
            progress(i + 1, len(ts))
    return np.stack(out, axis=1)


def grid_cost(model: LatentDiffusionAD, sampler: str = "ddpm", steps: int = 50) -> int:
    """Denoising steps one image of the Fig. 3 grid takes (DDPM: t steps from each t; DDIM: the
    schedule's steps below t): what the page says before it computes a grid."""
    schedule = [int(v) for v in model.scheduler(sampler, steps).timesteps]
    return sum(sum(1 for v in schedule if v <= t) for t in sweep_ts(model) if t > 0)


@dataclass(frozen=True)
class SampleView:
    """A few normal and anomalous test images reconstructed from one t (the page's slider view).
    images uint8 (N, 32, 32, 3); labels: digit/class ids; anomalous: bool; predicted: the digit
    classifier's class of each reconstruction (None without one); the rest as in
    :class:`Reconstruction`."""

    t: int
    start_t: int
    sampler: str
    images: np.ndarray
    labels: np.ndarray
    anomalous: np.ndarray
    reconstructions: np.ndarray
    scores: np.ndarray
    errors: np.ndarray
    latent_errors: np.ndarray
    predicted: np.ndarray | None = None


def sample_view(model: LatentDiffusionAD, data: MultiClassData, t: int, sampler: str = "ddpm",
                steps: int = 50, n: int = 4, seed: int = 0) -> SampleView:
    """``n`` normal and ``n`` anomalous test images (fixed by ``seed``) reconstructed from t."""
    if not 0 <= t < model.config.timesteps:
        raise ValueError(f"t must be in 0..{model.config.timesteps - 1}")
    images, labels, anomalous = examples(data, n, seed)
    r = reconstruct(model, images, t, sampler, steps, seed)
    start = model.first_timestep(t, sampler, steps) if t > 0 else 0
    clf = drift_classifier(data)
    predicted = predict_classes(clf, r.tensor) if clf is not None else None
    return SampleView(t, start, sampler, images, labels, anomalous, r.images, r.scores, r.errors,
                      r.latent_errors, predicted)


# -- sweeps stored beside the weights or cached --------------------------------------------------
SWEEP_FILE = "sweep.json"
#: The parameters of the sweep shipped beside the weights (``sweep.json``).
SHIPPED_SWEEP = {"sampler": "ddpm", "steps": 50, "limit": 100, "seed": 0, "step": 100}
#: Sweeps with other parameters are cached here (``$XAD_CACHE/ldm``, default ``runs/ldm``).
CACHE_DIR = Path(os.environ.get("XAD_CACHE", REPO_ROOT / "runs")) / "ldm"


def sweep_params(sampler: str = "ddpm", steps: int = 50, limit: int = 100, seed: int = 0, step: int = 100) -> dict:
    return {"sampler": sampler, "steps": steps, "limit": limit, "seed": seed, "step": step}


def run_sweep(model: LatentDiffusionAD, data: MultiClassData, params: dict,
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    return sweep(model, data, sweep_ts(model, params["step"]), params["sampler"], params["steps"],
                 params["limit"], params["seed"], progress)


def save_sweep(folder: str | Path, params: dict, table: pd.DataFrame) -> Path:
    path = Path(folder) / SWEEP_FILE
    path.write_text(json.dumps({"params": params, "table": table.to_dict(orient="list")}) + "\n")
    return path


def load_sweep(folder: str | Path, params: dict | None = None) -> pd.DataFrame | None:
    """The sweep stored beside the weights (``sweep.json``); None if absent, unreadable, or (with
    ``params``) made with other parameters."""
    try:
        stored = json.loads((Path(folder) / SWEEP_FILE).read_text())
        if params is not None and stored["params"] != params:
            return None
        return pd.DataFrame(stored["table"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sweep_key(folder: str | Path, data: MultiClassData, params: dict) -> str:
    """Hash of the weights (tensors + architecture), the test data and the sweep parameters."""
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    h = hashlib.sha256()
    h.update((folder / "model.safetensors").read_bytes())
    h.update(json.dumps({"class": cfg.get("class"), "config": cfg.get("config")}, sort_keys=True).encode())
    h.update(data.x_test.tobytes())
    h.update(data.anomalous_test.tobytes())
    h.update(json.dumps({**params, "version": __version__}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _grid_path(folder: str | Path, data: MultiClassData, sampler: str, n: int, seed: int, steps: int) -> Path:
    params = {"grid": "fig3", "sampler": sampler, "n": n, "seed": seed, "steps": steps}
    return CACHE_DIR / f"grid-{sweep_key(folder, data, params)}.npz"


def find_grid(folder: str | Path, data: MultiClassData, sampler: str = "ddpm", n: int = 4, seed: int = 0,
              steps: int = 50) -> tuple[SampleView, np.ndarray] | None:
    """The Fig. 3 grid of :func:`cached_grid` if it was computed before (``runs/ldm/grid-<key>.npz``,
    keyed by weights, data and parameters), else None. The t = 0 view is cheap and made anew."""
    try:
        with np.load(_grid_path(folder, data, sampler, n, seed, steps), allow_pickle=False) as f:
            grid = f["grid"]
    except (OSError, ValueError, KeyError):
        return None
    return sample_view(load(folder)[0], data, 0, sampler, steps, n, seed), grid


def cached_grid(folder: str | Path, data: MultiClassData, sampler: str = "ddpm", n: int = 4, seed: int = 0,
                steps: int = 50, model: LatentDiffusionAD | None = None,
                progress: Callable[[int, int], None] | None = None) -> tuple[SampleView, np.ndarray]:
    """The t = 0 view of ``n`` normal + ``n`` anomalous test images and their Fig. 3 grid
    (:func:`timestep_grid`), read from the cache or computed now and cached."""
    if (found := find_grid(folder, data, sampler, n, seed, steps)) is not None:
        return found
    model = model if model is not None else load(folder)[0]
    v = sample_view(model, data, 0, sampler, steps, n, seed)
    grid = timestep_grid(model, v.images, None, sampler, steps, seed, progress)
    _store(_grid_path(folder, data, sampler, n, seed, steps), lambda tmp: np.savez_compressed(tmp, grid=grid))
    return v, grid


def find_sweep(folder: str | Path, data: MultiClassData, params: dict) -> pd.DataFrame | None:
    """The AUROC/drift-vs-t sweep for these parameters if it was computed before: the shipped
    ``sweep.json``, else a cached run (``runs/ldm/<key>.json``)."""
    if (shipped := load_sweep(folder, params)) is not None:
        return shipped
    path = CACHE_DIR / f"{sweep_key(folder, data, params)}.json"
    return pd.DataFrame(json.loads(path.read_text())) if path.is_file() else None


def cached_sweep(folder: str | Path, data: MultiClassData, params: dict, model: LatentDiffusionAD | None = None,
                 progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """:func:`find_sweep`, else computed now (``progress(i, n)`` after each t) and cached."""
    if (found := find_sweep(folder, data, params)) is not None:
        return found
    table = run_sweep(model if model is not None else load(folder)[0], data, params, progress)
    _store(CACHE_DIR / f"{sweep_key(folder, data, params)}.json",
           lambda tmp: tmp.write_text(json.dumps(table.to_dict(orient="list")) + "\n"))
    return table


def _store(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` beside ``path``, then renamed onto it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    write(tmp)
    tmp.replace(path)
