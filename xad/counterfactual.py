"""Counterfactual explanations of anomaly detectors (Liznerski et al.): what would have to change
for the detector to call an anomaly normal.

A *bundle* is a trained generator (a ``cegan`` weights folder) with the detector it was trained
against and the dataset's FID feature extractor. Everything the counterfactual page shows comes
from the functions here: one image's counterfactual for a target score alpha and concept k, all
concepts side by side, the alpha sequence from 1 to 0, and the paper's metrics on the test set.

Two backends share this code: the GAN version (G maps images) and the DiffEdit version
(``backend == "diffedit"``: G(x) = A_dec(G'(psi(A_enc(x)), alpha, k)) with a text-conditional latent
diffusion model; psi, the DiffEdit edit towards the normal class, runs once per image and is kept in
the bundle, so moving a slider only runs G' and the decoder).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xad import resolve
from xad.data import semantic
from xad.data.transforms import DataError, resize_image
from xad.tensors import to_float, to_tensor, to_uint8
from xad.metrics import counterfactual as cm
from xad.models.cegan import CEGAN
from xad.models.detectors import Detector, score_images
from xad.models.diffedit import decode, diffedit, pipeline
from xad.models.textldm import TextLDM
from xad.models.features import FeatureNet, dataset_of, features, predict
from xad.weights import (WEIGHTS_DIR, ModelRecord, WeightsError, card_notes, find_model, list_models, load_model,
                         read_record, write_metrics)

#: Table 1 / 2 of the paper (AuROC normal vs CE, FID_N; in %), for comparison in the UI.
PAPER = {"cmnist": {"bce": (55.6, 56), "hsc": (55.8, 95), "dsvdd": (61.5, 83)},
         "mnist": {"bce": (72.0, 43), "hsc": (80.8, 68), "dsvdd": (75.2, 100)},
         "cifar10": {"bce": (47.5, None), "hsc": (49.9, None), "dsvdd": (54.6, None)}}


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


def generators(roots: list[str | Path] | None = None) -> list[ModelRecord]:
    """Trained counterfactual generators (cegan folders), shipped ones first."""
    return [m for m in list_models(roots)[0] if m.cls == "CEGAN"]


def find_generator(name: str | Path) -> Path:
    """A generator folder from a shipped name ("cegan/<folder>" or "<folder>") or a path."""
    return find_model(name, generators(), "generator")


def feature_extractor_for(setup: str, roots: list[str | Path] | None = None) -> ModelRecord | None:
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
        raise ValueError(f"concept k must be in 1..{b.concepts}")
    if b.backend == "diffedit":
        codes = psi(b, np.asarray(images))[0]
        g = lambda i: decode(b.ldm, b.generator(codes[i: i + batch_size], torch.from_numpy(  # noqa: E731
            a[i: i + batch_size].copy()), torch.from_numpy(kk[i: i + batch_size].copy())))
    else:
        g = lambda i: b.generator(to_tensor(images[i: i + batch_size]), torch.from_numpy(  # noqa: E731
            a[i: i + batch_size].copy()), torch.from_numpy(kk[i: i + batch_size].copy()))
    out = [g(i).permute(0, 2, 3, 1).numpy() for i in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 32, 32, 3), np.float32)


@torch.inference_mode()
def concept_logits(b: Bundle, x: np.ndarray, x_bar: np.ndarray) -> np.ndarray:
    return b.generator.concept_logits(to_tensor(x), to_tensor(x_bar)).double().numpy()


def change_map(x: np.ndarray, x_bar: np.ndarray) -> np.ndarray:
    """|x - x_bar| as the per-pixel channel maximum, (H, W) in [0, 1]."""
    return np.abs(to_float(x) - x_bar).max(axis=-1)


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
    # DiffEdit backend only: psi's mask, its plain edit towards the normal class and that edit's score
    edit_mask: np.ndarray | None = None
    edit: np.ndarray | None = None
    edit_score: float | None = None
    edit_change: np.ndarray | None = None  # |x - psi(x)|


def explain(b: Bundle, image: np.ndarray, alpha: float = 0.0) -> Explanation:
    """The counterfactual of ``image`` for every concept at target score ``alpha``."""
    x = prepare(image)
    xs = np.repeat(x[None], b.concepts, 0)
    ce = generate(b, xs, alpha, np.arange(b.concepts))
    extra = {}
    if b.backend == "diffedit":
        _, mask, edit = psi(b, x[None])
        extra = {"edit_mask": mask[0], "edit": edit[0], "edit_score": float(score_images(b.detector, edit)[0]),
                 "edit_change": change_map(x, edit[0])}
    return Explanation(x, float(score_images(b.detector, x[None])[0]), float(alpha), ce, score_images(b.detector, ce),
                       np.stack([change_map(x, c) for c in ce]), **extra)


def alpha_sequence(b: Bundle, image: np.ndarray, k: int, alphas: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CEs of concept k for alpha from 1 to 0 (the "increasing impact" strip): (alphas, images,
    reached scores)."""
    alphas = np.linspace(1, 0, 6) if alphas is None else np.asarray(alphas, np.float32)
    x = prepare(image)
    ce = generate(b, np.repeat(x[None], len(alphas), 0), alphas, k)
    return alphas, ce, score_images(b.detector, ce)


def test_anomalies(b: Bundle, n: int = 24, data_path: str | None = None, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A fixed gallery of ``n`` test anomalies of the bundle's setup: (images, descriptions)."""
    data = semantic.load_setup(b.setup, data_path)
    idx = np.flatnonzero(data.anomalous_test)
    pick = np.sort(np.random.default_rng(seed).choice(idx, size=min(n, len(idx)), replace=False))
    return data.x_test[pick], data.labels_test[pick]


def evaluate(b: Bundle, data_path: str | None = None, limit: int | None = None, seed: int = 0) -> dict:
    """The paper's metrics on (up to ``limit``; default 2000, 500 for DiffEdit) test anomalies and
    normal test images, alpha = 0.

    Returns auroc_normal_vs_ce (per concept and all), fid_n (% ; None without an extractor),
    concept_accuracy (R on the held-out CEs), mse and ssim (anomaly vs CE), the detector's mean
    score on anomalies before and on their CEs after, and the counts used. For DiffEdit also the
    plain edit psi(x)'s AuROC, mean score, MSE and SSIM, and seconds per image for psi and for G'.
    """
    limit = limit or (500 if b.backend == "diffedit" else 2000)
    data = semantic.load_setup(b.setup, data_path)
    rng = np.random.default_rng(seed)
    anomalies = data.anomalies_test[rng.permutation(len(data.anomalies_test))[:limit]]
    normal = data.normal_test[rng.permutation(len(data.normal_test))[:limit]]
    s_normal, s_anom = score_images(b.detector, normal), score_images(b.detector, anomalies)
    x = to_float(anomalies)
    extra: dict = {}
    if b.backend == "diffedit":
        t0 = time.perf_counter()
        _, masks, edits = psi(b, anomalies)
        s_edit = score_images(b.detector, edits)
        extra = {"seconds_psi_per_image": round((time.perf_counter() - t0) / max(1, len(anomalies)), 4),
                 "plain_edit_auroc_normal_vs_edit": round(cm.auroc_normal_vs_ce(s_normal, s_edit), 4),
                 "plain_edit_mean_score": round(float(s_edit.mean()), 4),
                 "plain_edit_mask_fraction": round(float(masks.mean()), 4),
                 "plain_edit_mse": round(float(cm.mse(x, edits).mean()), 5),
                 "plain_edit_ssim": round(float(cm.ssim(x[:500], edits[:500]).mean()), 4)}
    per_k, ces, logits, ks = {}, [], [], []
    t0 = time.perf_counter()
    for k in range(b.concepts):
        ce = generate(b, anomalies, 0.0, k)
        s_ce = score_images(b.detector, ce)
        per_k[f"auroc_k{k + 1}"] = round(cm.auroc_normal_vs_ce(s_normal, s_ce), 4)
        per_k[f"mean_score_ce_k{k + 1}"] = round(float(s_ce.mean()), 4)
        ces.append(ce)
        logits.append(concept_logits(b, anomalies, ce))
        ks.append(np.full(len(ce), k))
    all_ce = np.concatenate(ces)
    seconds_g = (time.perf_counter() - t0) / max(1, len(all_ce))  # includes scoring and R
    s_all = score_images(b.detector, all_ce)
    out = {"backend": b.backend, "n_anomalies": len(anomalies), "n_normal": len(normal),
           "detector_auroc_normal_vs_anomalies": round(cm.auroc_normal_vs_ce(s_normal, s_anom), 4),
           "auroc_normal_vs_ce": round(cm.auroc_normal_vs_ce(s_normal, s_all), 4),
           **per_k,
           "mean_score_anomalies": round(float(s_anom.mean()), 4),
           "mean_score_ce": round(float(s_all.mean()), 4),
           "concept_accuracy": round(cm.concept_accuracy(np.concatenate(logits), np.concatenate(ks)), 4),
           "mse": round(float(np.mean([cm.mse(x, c).mean() for c in ces])), 5),
           "ssim": round(float(np.mean([cm.ssim(x[:500], c[:500]).mean() for c in ces])), 4),
           "seconds_per_ce_batched": round(seconds_g, 5),
           "fid_n": None, "feature_extractor": None, **extra}
    if b.features is not None:
        f_norm, f_anom = features(b.features, normal), features(b.features, anomalies)
        f_ce = features(b.features, all_ce[rng.permutation(len(all_ce))[:limit]])
        out["fid_n"] = round(cm.fid_normalised(f_ce, f_norm, f_anom), 1)
        out["fid_ce_normal"] = round(cm.fid(f_ce, f_norm), 3)
        out["fid_anomalies_normal"] = round(cm.fid(f_anom, f_norm), 3)
        out["feature_extractor"] = b.features_record.name
        out.update(judged_normal(b, normal, anomalies, ces))
    return out


def judged_normal(b: Bundle, normal: np.ndarray, anomalies: np.ndarray, ces: list[np.ndarray]) -> dict:
    """How often an independent classifier (the setup's feature extractor, trained on the dataset's
    own labels, never on the detector) puts an image in a normal class: normal test images,
    anomalies, and each concept's CEs (alpha = 0), overall and per way of being normal
    (e.g. "red" and "digit 1" on coloured MNIST). A proxy for "a person recognises it as normal"."""
    def rates(images: np.ndarray) -> dict[str, float]:
        routes = semantic.normal_routes(b.setup, predict(b.features, images))
        anyroute = np.logical_or.reduce(list(routes.values()))
        return {"normal": round(float(anyroute.mean()), 4),
                **{name: round(float(v.mean()), 4) for name, v in routes.items()}}

    try:
        per_k = [rates(ce) for ce in ces]
        out = {"judged_normal_normal_test": rates(normal)["normal"],
               "judged_normal_anomalies": rates(anomalies)["normal"],
               "judged_normal_ce": round(float(np.mean([r["normal"] for r in per_k])), 4),
               "judged_routes_ce": {f"k{k + 1}": r for k, r in enumerate(per_k)}}
    except DataError:  # a setup without a label-based rule: no judge
        return {}
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
        *([] if metrics.get("judged_normal_ce") is None else [
            {"metric": "judged normal by an independent classifier (%): anomalies -> CEs "
                       "(normal test images)",
             "this model": f"{pct(metrics['judged_normal_anomalies'])} -> {pct(metrics['judged_normal_ce'])} "
                           f"({pct(metrics['judged_normal_normal_test'])})", "paper": None}]),
        {"metric": "minimality: MSE anomaly vs CE", "this model": metrics.get("mse"), "paper": None},
        {"metric": "minimality: SSIM anomaly vs CE", "this model": metrics.get("ssim"), "paper": None},
    ] + ([] if "plain_edit_mean_score" not in metrics else [
        {"metric": "plain DiffEdit edit psi(x): AuROC normal vs edit (%)",
         "this model": pct(metrics.get("plain_edit_auroc_normal_vs_edit")), "paper": None},
        {"metric": "plain DiffEdit edit: detector's mean score anomalies -> edits",
         "this model": f"{metrics.get('mean_score_anomalies', float('nan')):.3f} -> "
                       f"{metrics['plain_edit_mean_score']:.3f}", "paper": None},
        {"metric": "plain DiffEdit edit: MSE / SSIM vs anomaly; share of pixels in the mask",
         "this model": f"{metrics.get('plain_edit_mse')} / {metrics.get('plain_edit_ssim')}; "
                       f"{metrics.get('plain_edit_mask_fraction')}", "paper": None},
        {"metric": "CPU seconds per image: psi (DiffEdit, once per image) / G' + decoder",
         "this model": f"{metrics.get('seconds_psi_per_image')} / {metrics.get('seconds_per_ce_batched')}",
         "paper": None},
    ])


def gan_counterpart(r: ModelRecord, roots: list[str | Path] | None = None) -> ModelRecord | None:
    """The GAN-version generator trained for the same setup against the same detector as the
    DiffEdit generator ``r`` (for the side-by-side table), or None."""
    return next((g for g in generators(roots) if g.meta.get("backend", "gan") == "gan"
                 and g.meta.get("setup") == r.meta.get("setup") and g.metrics
                 and Path(resolve(g.meta.get("detector", ""))).resolve()
                 == Path(resolve(r.meta.get("detector", ""))).resolve()), None)


def side_by_side(records: dict[str, ModelRecord]) -> list[dict]:
    """Rows (metric, one column per named generator, paper) from each record's measured metrics."""
    tables = {name: metrics_table(r.metrics, r.meta.get("setup", ""), r.meta.get("detector_kind", ""))
              for name, r in records.items()}
    metrics = list(dict.fromkeys(row["metric"] for t in tables.values() for row in t))
    rows = []
    for m in metrics:
        found = {name: next((row for row in t if row["metric"] == m), None) for name, t in tables.items()}
        paper = next((row["paper"] for row in found.values() if row and row["paper"] is not None), None)
        rows.append({"metric": m, **{name: "" if row is None else row["this model"] for name, row in found.items()},
                     "paper": paper})
    return rows


def evaluate_folder(folder: str | Path, data_path: str | None = None, limit: int | None = None) -> Path:
    """Measure a generator folder and write the metrics into its config.json and card."""
    b = load_bundle(folder)
    metrics = evaluate(b, data_path, limit)
    write_metrics(folder, metrics)
    (Path(folder) / "card.md").write_text(card(read_record(folder), b))
    return Path(folder)


def _method(r: ModelRecord) -> str:
    meta, c = r.meta, r.config
    if meta.get("backend") != "diffedit":
        return f"""Concept-disentangled counterfactual GAN of Liznerski et al., "Reimagining Anomalies": G(x, alpha, k)
with K = {c['concepts']} concepts, trained against the frozen detector `{meta.get('detector')}`.""" + (
            "\nG may recolour the whole image: a 3x3 colour matrix per image, predicted from G's bottleneck "
            "and started at the identity, under the pixels G paints (`--colour-mixing`)."
            if c.get("colour_mixing") else "") + (
            "\nL_cyc compares only the per-pixel max over channels (`--cycle intensity`): turning a CE back "
            "need not recover a colour it replaced." if c.get("cycle") == "intensity" else "")
    p = meta.get("psi", {})
    return f"""DiffEdit version of Liznerski et al., "Reimagining Anomalies": G(x, alpha, k) =
A_dec(G'(psi(A_enc(x)), alpha, k)) with K = {c['concepts']} concepts, trained against the frozen
detector `{meta.get('detector')}`. A_enc, A_dec and psi come from the text-conditional latent
diffusion model `{meta.get('diffedit')}`; psi is diffusers' DiffEdit with target prompt
"{p.get('target_prompt')}" (the normal class) and source prompt "{p.get('source_prompt')}" (empty =
unconditional: an anomaly's class is unknown when it is explained), strength {p.get('strength')},
{p.get('steps')} DDIM steps, guidance {p.get('guidance')}, seed {p.get('seed')}. psi ran once per
training image before training ({_psi_cost(meta)}); G' (a latent-to-latent U-Net) was
trained with the GAN version's losses: phi, D and R see decoded images; L_rec and L_cyc compare
latents, with phi(A_dec(psi(x))) as the input's own score (so lambda_rec is smaller than the GAN
version's: the detector's gradient per latent element is ~17x weaker than per pixel); L_cyc feeds
G''s output latent back to G' without re-running psi."""


def _psi_cost(meta: dict) -> str:
    seconds, n = meta.get("psi_seconds"), meta.get("psi_images")
    if not seconds:  # None, or 0.0 from a run before the cache kept its timing
        return "read from the on-disk cache; psi's CPU seconds per image are in the table below"
    return f"{seconds} s" + (f" for {n} images, {seconds / n:.2f} s per image" if n else "")


def _judged(routes: dict | None) -> str:
    """", judged normal 41 % (digit 1 12 %, red 33 %)" for one concept's CEs, or ""."""
    if not routes:
        return ""
    ways = ", ".join(f"{k} {100 * v:.0f} %" for k, v in routes.items() if k != "normal")
    return f", judged normal {100 * routes['normal']:.0f} %" + (f" ({ways})" if len(routes) > 2 else "")


def card(r: ModelRecord, b: Bundle) -> str:
    m, meta, s, c = r.metrics, r.meta, r.meta.get("train_settings", {}), r.config
    rows = "\n".join(f"| {row['metric']} | {row['this model']} | {row['paper'] if row['paper'] is not None else ''} |"
                     for row in metrics_table(m, meta.get("setup", ""), meta.get("detector_kind", "")))
    per_k = " · ".join(f"k = {k + 1}: AuROC {100 * m.get(f'auroc_k{k + 1}', float('nan')):.1f} %, mean score "
                       f"{m.get(f'mean_score_ce_k{k + 1}', float('nan')):.3f}"
                       + _judged(m.get("judged_routes_ce", {}).get(f"k{k + 1}")) for k in range(c["concepts"]))
    return f"""# Counterfactual generator ({r.preset} preset) — {meta.get('setup')}, {meta.get('detector_kind', '').upper()} detector

{_method(r)}
{meta.get('setup_description')}.

- **Command:** `{meta.get('command', '')}`
- **Data:** {meta.get('training_data')}
- **Objective:** lambda_gan {c['lambda_gan']}, lambda_phi {c['lambda_phi']}, lambda_rec {c['lambda_rec']},
  lambda_r {c['lambda_r']}; alpha sampling `{c['alpha_sampling']}`; pseudo-anomaly share
  {c['pseudo_anomaly_fraction']}
- **Seed:** {meta.get('seed')}; {meta.get('steps_done')} steps of batch {s.get('batch_size')} (asked {s.get('steps')});
  Adam lr {s.get('lr')}{'' if not s.get('d_lr') else ' (discriminator ' + str(s['d_lr']) + ')'}
- **CPU wall time:** {meta.get('train_seconds', 0) / 60:.1f} min on {meta.get('threads')} threads
- **Weights:** fp16 safetensors (loaded as fp32)

## Measured on the test split (alpha = 0; `python -m xad evaluate cegan --weights {r.path.name}`)
{m.get('n_anomalies')} test anomalies, {m.get('n_normal')} normal test images; the detector's own AuROC
(normal vs anomalies) is {100 * m.get('detector_auroc_normal_vs_anomalies', float('nan')):.1f} %.

| metric | this model | paper (Tables 1, 2) |
| --- | --- | --- |
{rows}

Per concept: {per_k}.{_judge_note(m)}
{card_notes(meta)}"""


def _judge_note(m: dict) -> str:
    if m.get("judged_normal_ce") is None:
        return ""
    return (f"\n\n\"Judged normal\": the share of images that the feature extractor "
            f"(`{m.get('feature_extractor')}`, a classifier of the dataset's own labels, independent of "
            "the detector and the generator) puts in a normal class; a proxy for whether a person would "
            "recognise a counterfactual as normal.")


def stable_diffusion_edit(b: Bundle, pipe, image: np.ndarray, source: str, target: str,  # noqa: ANN001
                          strength: float = 0.5, steps: int = 20, guidance: float = 7.5, seed: int = 0
                          ) -> dict:
    """DiffEdit with a Stable Diffusion pipeline from disk (:func:`xad.models.diffedit.load_stable_diffusion`)
    on one image at the pipeline's own size, and the bundle's detector on the edit scaled back to
    32 px: {"image", "mask", "edited" (native size), "score", "edit_score", "seconds"}."""
    from xad.models.diffedit import fit_image

    x = fit_image(pipe, prepare(image))
    t0 = time.perf_counter()
    r = diffedit(pipe, x, source, target, strength=strength, steps=steps, guidance=guidance, seed=seed,
                 batch_size=1)
    seconds = time.perf_counter() - t0
    small = resize_image(to_uint8(r.edited[0]), 32)
    return {"image": x, "mask": r.masks[0], "edited": r.edited[0], "seconds": round(seconds, 2),
            "score": float(score_images(b.detector, prepare(image)[None])[0]), "edit_score": float(score_images(b.detector, small[None])[0])}
