"""``python -m xad train vaegan`` and ``python -m xad evaluate vaegan``: data -> training ->
weights folder; then the test evaluation written into config.json's metrics and the card."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch

from xad import portable as _shown
from xad.audit import AuditParams, score
from xad.cards import write_card
from xad.data.catalog import resolve_mvtec
from xad.explain.reconstruction import reconstruct
from xad.metrics.detection import anomaly_map, anomaly_score, auroc_by_group, evaluate
from xad.models.vaegan import PRESETS, VAEGAN
from xad.train.vaegan import TrainSettings, settings_dict, split_holdout, train, use_compile
from xad.weights import load_model, save_model, write_metrics


def _test_set(ds, size: int, resample: str, geometry: str):  # noqa: ANN001, ANN202
    """(images (N, H, W, 3) uint8, labels (N,), defects) of the test split, as the model sees them."""
    refs = ds.refs("test")
    samples = [ds.load(r, size, resample, geometry) for r in refs]
    labels = np.array([s.is_anomalous for s in samples], dtype=int)
    return np.stack([s.image for s in samples]), labels, [r.defect for r in refs]


def _scores(model: VAEGAN, x: np.ndarray) -> np.ndarray:
    """alpha = max |gs(x) - gs(x')| per image, x' in fp32 (the audit's scoring)."""
    return anomaly_score(anomaly_map(x.astype(np.float32) / 255, reconstruct(model, x, bf16=False)))


def _test_auroc(ds, size: int, resample: str, geometry: str):  # noqa: ANN001, ANN202
    """model -> image AUROC on the test split (None where it lacks good or anomalous images)."""
    from sklearn.metrics import roc_auc_score

    x, labels, _ = _test_set(ds, size, resample, geometry)
    if labels.all() or not labels.any():
        return None
    return lambda model: float(roc_auc_score(labels, _scores(model, x)))


def run(data: str, category: str, out: Path, preset: str, settings: TrainSettings,
        resample: str = "nearest", command: str = "", geometry: str = "stretch",
        progress: bool = True, init: Path | None = None) -> Path:
    """Train on ``category``'s train/good images (a held-out tenth for the learning curve and early
    stopping), save the kept weights, evaluate on its test split. init: a VAE-GAN weights folder
    of the same preset to start from (continued training) instead of a seeded random start."""
    config = PRESETS[preset]
    start = None
    if init is not None:
        start, start_record = load_model(init, expect="VAEGAN")
        if start.config != config:
            raise ValueError(f"--init {init} is not a {preset}-preset VAE-GAN")
    ds = resolve_mvtec(data, category)
    refs = ds.refs("train")
    all_x = np.stack([ds.load(r, config.image_size, resample, geometry).image for r in refs])
    fit, held = split_holdout(len(all_x), settings.holdout, settings.seed)
    torch.manual_seed(settings.seed)  # the initial weights too
    model = VAEGAN(config)
    if start is not None:
        model.load_state_dict(start.state_dict())
    log = train(model, all_x[fit], settings, progress=progress, heldout=all_x[held],
                test=_test_auroc(ds, config.image_size, resample, geometry))
    meta = {"category": category, "dataset": str(data), "image_size": config.image_size,
            "training_data": f"{_shown(ds.folder)} (train/good, {len(all_x)} images: {len(fit)} trained "
                             f"on, {len(held)} held out)",
            "training_images": len(fit), "heldout_ids": [refs[i].id for i in held],
            "seed": settings.seed, "resample": resample, "resize": geometry,
            "train_settings": settings_dict(settings),
            "steps_done": log.steps_done, "kept_step": log.kept_step, "learning_curve": log.curve,
            "train_seconds": round(log.seconds, 1), "compiled": use_compile(settings),
            "load_average_15min_at_end": round(os.getloadavg()[2], 1),
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "command": command}
    if start is not None:
        meta["initialised_from"] = {"weights": _shown(Path(init)),
                                    **{k: start_record.meta.get(k) for k in
                                       ("steps_done", "train_seconds", "cpu", "command")}}
    save_model(model, out, family="vaegan", card="(evaluating …)", preset=preset, meta=meta,
               dtype=torch.float16)
    return evaluate_folder(out, data)


def evaluate_folder(folder: Path, data: str = "embedded") -> Path:
    """Score the test split with the saved (fp16) weights; write metrics and the card."""
    model, record = load_model(folder, expect="VAEGAN")
    ds = resolve_mvtec(data, record.meta["category"])
    resample, geometry = record.meta.get("resample", "nearest"), record.meta.get("resize", "stretch")
    if geometry == "stretch":  # the audit's own scoring (x' in fp32, gray-max map, alpha = max m)
        sc = score(model, ds, AuditParams(resample=resample))
        scores, labels, defects = sc.scores, sc.labels, sc.defects
    else:  # the same scoring on pad / crop geometry (the audit does not take a geometry yet)
        x, labels, defects = _test_set(ds, model.config.image_size, resample, geometry)
        scores = _scores(model, x)
    det = evaluate(scores, labels)
    metrics = {"test_auroc": round(det.auroc, 4), "accuracy_at_tau_star": round(det.accuracy, 4),
               "tau_star": round(det.tau, 5), "confusion": det.describe(),
               "auroc_by_defect": {k: round(v, 3) for k, v in auroc_by_group(scores, labels, defects).items()}}
    write_metrics(folder, metrics)
    write_card(folder)
    return Path(folder)


def bf16_check_folder(folder: Path, data: str = "embedded", samples: int = 1000) -> dict:
    """Measure whether bf16 explanations of this VAE-GAN agree with fp32
    (:func:`xad.audit_live.bf16_agreement`, with a progress bar) and keep the result in its
    config.json (``bf16_agreement``) and card. Where the CPU lacks native bf16 it is emulated (slow)."""
    from tqdm import tqdm

    from xad.audit_live import bf16_agreement
    from xad.weights import write_entry

    model, record = load_model(folder, expect="VAEGAN")
    ds = resolve_mvtec(data, record.meta["category"])
    with tqdm(total=len([d for d in ds.defects("test") if d != "good"]), desc="bf16 vs fp32", unit="sample") as bar:
        got = bf16_agreement(model, ds, samples, record.meta.get("resample", "nearest"),
                             lambda i, n: bar.update(i - bar.n))
    write_entry(folder, "bf16_agreement", got)
    write_card(folder)
    return got
