"""Counterfactual explanations of anomaly detectors (Liznerski et al.): what would have to change
for the detector to call an anomaly normal.

A *bundle* is a trained generator (a ``cegan`` weights folder) with the detector it was trained
against and the dataset's FID feature extractor. Everything the counterfactual page shows comes
from the functions here: one image's counterfactual for a target score alpha and concept k, all
concepts side by side, the alpha sequence from 1 to 0, and the paper's metrics on the test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xad import resolve
from xad.data import semantic
from xad.data.transforms import DataError, resize_image
from xad.explain.reconstruction import to_tensor
from xad.metrics import counterfactual as cm
from xad.models.cegan import CEGAN
from xad.models.detectors import Detector
from xad.models.features import FeatureNet
from xad.weights import (WEIGHTS_DIR, ModelRecord, WeightsError, find_model, list_models, load_model, read_record,
                         write_metrics)

#: Table 1 / 2 of the paper (AuROC normal vs CE, FID_N; in %), for comparison in the UI.
PAPER = {"cmnist": {"bce": (55.6, 56), "hsc": (55.8, 95), "dsvdd": (61.5, 83)},
         "mnist": {"bce": (72.0, 43), "hsc": (80.8, 68), "dsvdd": (75.2, 100)},
         "cifar10": {"bce": (47.5, None), "hsc": (49.9, None), "dsvdd": (54.6, None)}}


@dataclass
class Bundle:
    """generator: the CEGAN (G, D, R); detector: phi; features: FID extractor or None."""

    generator: CEGAN
    detector: Detector
    features: FeatureNet | None
    record: ModelRecord
    detector_record: ModelRecord
    features_record: ModelRecord | None

    @property
    def setup(self) -> str:
        return self.record.meta["setup"]

    @property
    def concepts(self) -> int:
        return self.generator.config.concepts


def generators(roots: list[str | Path] | None = None) -> list[ModelRecord]:
    """Trained counterfactual generators (cegan folders), shipped ones first."""
    return [m for m in list_models(roots)[0] if m.cls == "CEGAN"]


def find_generator(name: str | Path) -> Path:
    """A generator folder from a shipped name ("cegan/<folder>" or "<folder>") or a path."""
    return find_model(name, generators(), "generator")


def feature_extractor_for(setup: str, roots: list[str | Path] | None = None) -> ModelRecord | None:
    from xad.train.features import dataset_of

    want = dataset_of(setup)
    return next((m for m in list_models(roots or [WEIGHTS_DIR])[0]
                 if m.cls == "FeatureNet" and m.meta.get("dataset") == want), None)


def load_bundle(folder: str | Path) -> Bundle:
    """The generator folder, its detector (``meta.detector``) and the FID extractor of its data."""
    gen, rec = load_model(folder, expect="CEGAN")
    det_path = rec.meta.get("detector")
    if not det_path:
        raise WeightsError(f"{folder}: config.json does not name the detector it was trained against")
    det, det_rec = load_model(resolve(det_path), expect="Detector")
    # the extractor beside the generator's weights root first (a user's folder), then the shipped one
    feat_rec = feature_extractor_for(rec.meta.get("setup", ""), [Path(folder).resolve().parent.parent,
                                                                  WEIGHTS_DIR])
    feat = load_model(feat_rec.path, expect="FeatureNet")[0] if feat_rec else None
    return Bundle(gen, det, feat, rec, det_rec, feat_rec)


@torch.inference_mode()
def generate(b: Bundle, images: np.ndarray, alpha: float | np.ndarray, k: int | np.ndarray,
             batch_size: int = 512) -> np.ndarray:
    """G(x, alpha, k) for (N, 32, 32, 3) images -> (N, 32, 32, 3) float32 in [0, 1]. k is 0-based."""
    n = len(images)
    a = np.broadcast_to(np.asarray(alpha, np.float32), (n,))
    kk = np.broadcast_to(np.asarray(k, np.int64), (n,))
    if kk.size and (kk.min() < 0 or kk.max() >= b.concepts):
        raise ValueError(f"concept k must be in 1..{b.concepts}")
    out = [b.generator(to_tensor(images[i: i + batch_size]), torch.from_numpy(a[i: i + batch_size].copy()),
                       torch.from_numpy(kk[i: i + batch_size].copy())).permute(0, 2, 3, 1).numpy()
           for i in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 32, 32, 3), np.float32)


@torch.inference_mode()
def scores(b: Bundle, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """phi(x) for (N, 32, 32, 3) images (uint8 or float in [0, 1]) -> (N,) float64."""
    out = [b.detector(to_tensor(images[i: i + batch_size])).double().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


@torch.inference_mode()
def concept_logits(b: Bundle, x: np.ndarray, x_bar: np.ndarray) -> np.ndarray:
    return b.generator.concept_logits(to_tensor(x), to_tensor(x_bar)).double().numpy()


def change_map(x: np.ndarray, x_bar: np.ndarray) -> np.ndarray:
    """|x - x_bar| as the per-pixel channel maximum, (H, W) in [0, 1]."""
    xf = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
    return np.abs(xf - x_bar).max(axis=-1)


def prepare(image: np.ndarray) -> np.ndarray:
    """Any RGB uint8 image (e.g. an upload, already converted to RGB) -> (32, 32, 3) uint8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError("expected an RGB uint8 image (H, W, 3)")
    return image if image.shape[:2] == (32, 32) else resize_image(image, 32)


@dataclass(frozen=True)
class Explanation:
    """One anomaly explained at one alpha: its score; per concept k (0-based) the CE, the score
    the detector gives it and the change map."""

    image: np.ndarray
    score: float
    alpha: float
    counterfactuals: np.ndarray  # (K, 32, 32, 3) float in [0, 1]
    ce_scores: np.ndarray  # (K,)
    changes: np.ndarray  # (K, 32, 32)


def explain(b: Bundle, image: np.ndarray, alpha: float = 0.0) -> Explanation:
    """The counterfactual of ``image`` for every concept at target score ``alpha``."""
    x = prepare(image)
    xs = np.repeat(x[None], b.concepts, 0)
    ce = generate(b, xs, alpha, np.arange(b.concepts))
    return Explanation(x, float(scores(b, x[None])[0]), float(alpha), ce, scores(b, ce),
                       np.stack([change_map(x, c) for c in ce]))


def alpha_sequence(b: Bundle, image: np.ndarray, k: int, alphas: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CEs of concept k for alpha from 1 to 0 (the "increasing impact" strip): (alphas, images,
    reached scores)."""
    alphas = np.linspace(1, 0, 6) if alphas is None else np.asarray(alphas, np.float32)
    x = prepare(image)
    ce = generate(b, np.repeat(x[None], len(alphas), 0), alphas, k)
    return alphas, ce, scores(b, ce)


def test_anomalies(b: Bundle, n: int = 24, data_path: str | None = None, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed gallery of ``n`` test anomalies of the bundle's setup: (images, descriptions)."""
    data = semantic.load_setup(b.setup, data_path)
    idx = np.flatnonzero(data.anomalous_test)
    pick = np.sort(np.random.default_rng(seed).choice(idx, size=min(n, len(idx)), replace=False))
    return data.x_test[pick], data.labels_test[pick]


def evaluate(b: Bundle, data_path: str | None = None, limit: int = 2000, seed: int = 0) -> dict:
    """The paper's metrics on (up to ``limit``) test anomalies and normal test images, alpha = 0.

    Returns auroc_normal_vs_ce (per concept and all), fid_n (% ; None without an extractor),
    concept_accuracy (R on the held-out CEs), mse and ssim (anomaly vs CE), the detector's mean
    score on anomalies before and on their CEs after, and the counts used.
    """
    data = semantic.load_setup(b.setup, data_path)
    rng = np.random.default_rng(seed)
    anomalies = data.anomalies_test[rng.permutation(len(data.anomalies_test))[:limit]]
    normal = data.normal_test[rng.permutation(len(data.normal_test))[:limit]]
    s_normal, s_anom = scores(b, normal), scores(b, anomalies)
    x = anomalies.astype(np.float32) / 255
    per_k, ces, logits, ks = {}, [], [], []
    for k in range(b.concepts):
        ce = generate(b, anomalies, 0.0, k)
        s_ce = scores(b, ce)
        per_k[f"auroc_k{k + 1}"] = round(cm.auroc_normal_vs_ce(s_normal, s_ce), 4)
        per_k[f"mean_score_ce_k{k + 1}"] = round(float(s_ce.mean()), 4)
        ces.append(ce)
        logits.append(concept_logits(b, anomalies, ce))
        ks.append(np.full(len(ce), k))
    all_ce = np.concatenate(ces)
    out = {"n_anomalies": len(anomalies), "n_normal": len(normal),
           "detector_auroc_normal_vs_anomalies": round(cm.auroc_normal_vs_ce(s_normal, s_anom), 4),
           "auroc_normal_vs_ce": round(cm.auroc_normal_vs_ce(s_normal, scores(b, all_ce)), 4),
           **per_k,
           "mean_score_anomalies": round(float(s_anom.mean()), 4),
           "mean_score_ce": round(float(scores(b, all_ce).mean()), 4),
           "concept_accuracy": round(cm.concept_accuracy(np.concatenate(logits), np.concatenate(ks)), 4),
           "mse": round(float(np.mean([cm.mse(x, c).mean() for c in ces])), 5),
           "ssim": round(float(np.mean([cm.ssim(x[:500], c[:500]).mean() for c in ces])), 4),
           "fid_n": None, "feature_extractor": None}
    if b.features is not None:
        from xad.train.features import features

        f_norm, f_anom = features(b.features, normal), features(b.features, anomalies)
        f_ce = features(b.features, all_ce[rng.permutation(len(all_ce))[:limit]])
        out["fid_n"] = round(cm.fid_normalised(f_ce, f_norm, f_anom), 1)
        out["fid_ce_normal"] = round(cm.fid(f_ce, f_norm), 3)
        out["fid_anomalies_normal"] = round(cm.fid(f_anom, f_norm), 3)
        out["feature_extractor"] = b.features_record.name
    return out


def metrics_table(metrics: dict, setup: str, kind: str) -> list[dict]:
    """Rows (metric, this model, paper) for the page and the card."""
    paper = PAPER.get(setup.partition(":")[0], {}).get(kind, (None, None))
    pct = lambda v: None if v is None else round(100 * v, 1)  # noqa: E731
    return [
        {"metric": "AuROC normal vs CE, alpha = 0 (%; ideal about 50)",
         "this model": pct(metrics.get("auroc_normal_vs_ce")), "paper": paper[0]},
        {"metric": f"FID_N (%; extractor {metrics.get('feature_extractor') or 'none'}, not Inception)",
         "this model": metrics.get("fid_n"), "paper": paper[1]},
        {"metric": "concept accuracy of R on CEs (%; paper: mostly > 90)",
         "this model": pct(metrics.get("concept_accuracy")), "paper": None},
        {"metric": "detector's mean score: anomalies -> CEs",
         "this model": f"{metrics.get('mean_score_anomalies', float('nan')):.3f} -> "
                       f"{metrics.get('mean_score_ce', float('nan')):.3f}", "paper": None},
        {"metric": "minimality: MSE anomaly vs CE", "this model": metrics.get("mse"), "paper": None},
        {"metric": "minimality: SSIM anomaly vs CE", "this model": metrics.get("ssim"), "paper": None},
    ]


def evaluate_folder(folder: str | Path, data_path: str | None = None) -> Path:
    """Measure a generator folder and write the metrics into its config.json and card."""
    b = load_bundle(folder)
    metrics = evaluate(b, data_path)
    write_metrics(folder, metrics)
    (Path(folder) / "card.md").write_text(card(read_record(folder), b))
    return Path(folder)


def card(r: ModelRecord, b: Bundle) -> str:
    m, meta, s, c = r.metrics, r.meta, r.meta.get("train_settings", {}), r.config
    rows = "\n".join(f"| {row['metric']} | {row['this model']} | {row['paper'] if row['paper'] is not None else ''} |"
                     for row in metrics_table(m, meta.get("setup", ""), meta.get("detector_kind", "")))
    per_k = " · ".join(f"k = {k + 1}: AuROC {100 * m.get(f'auroc_k{k + 1}', float('nan')):.1f} %, mean score "
                       f"{m.get(f'mean_score_ce_k{k + 1}', float('nan')):.3f}" for k in range(c["concepts"]))
    return f"""# Counterfactual generator ({r.preset} preset) — {meta.get('setup')}, {meta.get('detector_kind', '').upper()} detector

Concept-disentangled counterfactual GAN of Liznerski et al., "Reimagining Anomalies": G(x, alpha, k)
with K = {c['concepts']} concepts, trained against the frozen detector `{meta.get('detector')}`.
{meta.get('setup_description')}.

- **Command:** `{meta.get('command', '')}`
- **Data:** {meta.get('training_data')}
- **Objective:** lambda_gan {c['lambda_gan']}, lambda_phi {c['lambda_phi']}, lambda_rec {c['lambda_rec']},
  lambda_r {c['lambda_r']}; alpha sampling `{c['alpha_sampling']}`; pseudo-anomaly share
  {c['pseudo_anomaly_fraction']}
- **Seed:** {meta.get('seed')}; {meta.get('steps_done')} steps of batch {s.get('batch_size')} (asked {s.get('steps')});
  Adam lr {s.get('lr')}
- **CPU wall time:** {meta.get('train_seconds', 0) / 60:.1f} min on {meta.get('threads')} threads
- **Weights:** fp16 safetensors (loaded as fp32)

## Measured on the test split (alpha = 0; `python -m xad evaluate cegan --weights {r.path.name}`)
{m.get('n_anomalies')} test anomalies, {m.get('n_normal')} normal test images; the detector's own AuROC
(normal vs anomalies) is {100 * m.get('detector_auroc_normal_vs_anomalies', float('nan')):.1f} %.

| metric | this model | paper (Tables 1, 2) |
| --- | --- | --- |
{rows}

Per concept: {per_k}.
"""
