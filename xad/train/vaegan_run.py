"""``python -m xad train vaegan`` and ``python -m xad evaluate vaegan``: data -> training ->
weights folder; then the test evaluation written into config.json's metrics and the card."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from xad import portable as _shown
from xad.cards import write_card
from xad.data.catalog import resolve_mvtec
from xad.audit import AuditParams, score
from xad.metrics.detection import auroc_by_group, evaluate
from xad.models.vaegan import PRESETS, VAEGAN
from xad.train.vaegan import TrainSettings, settings_dict, train
from xad.weights import load_model, save_model, write_metrics


def run(data: str, category: str, out: Path, preset: str, settings: TrainSettings,
        resample: str = "nearest", command: str = "") -> Path:
    """Train on ``category``'s train/good images, save, evaluate on its test split."""
    config = PRESETS[preset]
    ds = resolve_mvtec(data, category)
    train_x = np.stack([ds.load(r, config.image_size, resample).image for r in ds.refs("train")])
    torch.manual_seed(settings.seed)  # the initial weights too
    model = VAEGAN(config)
    log = train(model, train_x, settings)
    meta = {"category": category, "dataset": str(data), "image_size": config.image_size,
            "training_data": f"{_shown(ds.folder)} (train/good, {len(train_x)} images)",
            "training_images": len(train_x),
            "seed": settings.seed, "resample": resample, "train_settings": settings_dict(settings),
            "steps_done": log.steps_done, "train_seconds": round(log.seconds, 1),
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "command": command}
    save_model(model, out, family="vaegan", card="(evaluating …)", preset=preset, meta=meta,
               dtype=torch.float16)
    return evaluate_folder(out, data)


def evaluate_folder(folder: Path, data: str = "embedded") -> Path:
    """Score the test split with the saved (fp16) weights; write metrics and the card."""
    model, record = load_model(folder, expect="VAEGAN")
    ds = resolve_mvtec(data, record.meta["category"])
    # the audit's own scoring (x' in fp32, gray-max map, alpha = max m, tau* on the test labels)
    sc = score(model, ds, AuditParams(resample=record.meta.get("resample", "nearest")))
    det = evaluate(sc.scores, sc.labels)
    metrics = {"test_auroc": round(det.auroc, 4), "accuracy_at_tau_star": round(det.accuracy, 4),
               "tau_star": round(det.tau, 5), "confusion": det.describe(),
               "auroc_by_defect": {k: round(v, 3) for k, v in auroc_by_group(sc.scores, sc.labels, sc.defects).items()}}
    write_metrics(folder, metrics)
    write_card(folder)
    return Path(folder)
