"""``python -m xad train vaegan`` and ``python -m xad evaluate vaegan``: data -> training ->
weights folder; then the test evaluation written into config.json's metrics and the card."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from xad import portable as _shown
from xad.data.catalog import resolve_mvtec
from xad.explain.reconstruction import reconstruct
from xad.metrics.detection import anomaly_map, anomaly_score, auroc_by_group, evaluate
from xad.models.vaegan import PRESETS, VAEGAN
from xad.train.vaegan import TrainSettings, settings_dict, train
from xad.weights import load_model, read_record, save_model, write_metrics


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
    meta = record.meta
    ds = resolve_mvtec(data, meta["category"])
    refs = ds.refs("test")
    samples = [ds.load(r, model.config.image_size, meta.get("resample", "nearest")) for r in refs]
    x = np.stack([s.image for s in samples])
    scores = anomaly_score(anomaly_map(x.astype(np.float32) / 255, reconstruct(model, x, bf16=False)))
    labels = np.array([s.is_anomalous for s in samples], dtype=int)
    det = evaluate(scores, labels)
    metrics = {"test_auroc": round(det.auroc, 4), "accuracy_at_tau_star": round(det.accuracy, 4),
               "tau_star": round(det.tau, 5), "confusion": det.describe(),
               "auroc_by_defect": {k: round(v, 3) for k, v in
                                   auroc_by_group(scores, labels, [r.defect for r in refs]).items()}}
    write_metrics(folder, metrics)
    (Path(folder) / "card.md").write_text(card(read_record(folder)))
    return Path(folder)


def card(r) -> str:  # noqa: ANN001 - a ModelRecord
    """The model card, from what config.json records."""
    m, meta, s = r.metrics, r.meta, r.meta.get("train_settings", {})
    by_defect = " · ".join(f"{k} {v:.2f}" for k, v in m.get("auroc_by_defect", {}).items())
    notes = "".join(f"\n{n}\n" for n in meta.get("notes", []))
    return f"""# VAE-GAN ({r.preset} preset) — {meta.get('category')}

Anomaly detector of Rashid et al., "Can I trust my anomaly detection system?": a VAE-GAN trained on
normal images; anomaly map m = |gs(x) - gs(x')| (gs: per-pixel max over channels), score
alpha = max(m), threshold tau* = argmax sqrt(TPR (1 - FPR)). Reconstruction from the posterior mean.

- **Command:** `{meta.get('command', '')}`
- **Data:** `{meta.get('training_data')}`, {meta.get('image_size')} px ({meta.get('resample')} resize)
- **Seed:** {meta.get('seed')}; batch {s.get('batch_size')}; Adam lr {s.get('lr')}; augmentation
  `{s.get('augment')}`; bf16 autocast {'on' if s.get('bf16') else 'off'}
- **Steps:** {meta.get('steps_done')} (asked {s.get('steps')}, time cap {s.get('max_minutes')} min);
  **CPU wall time:** {meta.get('train_seconds', 0) / 60:.1f} min on {meta.get('threads')} threads
- **Weights:** fp16 safetensors (loaded as fp32); architecture sizes in config.json

## Measured on the test split
tau* fitted on the test labels, as the paper does (`python -m xad evaluate vaegan --weights {_shown(r.path)}`).

| metric | value |
| --- | --- |
| image AUROC | {m.get('test_auroc', float('nan')):.3f} |
| accuracy at tau* | {m.get('accuracy_at_tau_star', float('nan')):.3f} |
| tau* | {m.get('tau_star', float('nan')):.4f} |

{m.get('confusion', '')}.

AUROC per defect type (each against all good images): {by_defect}.
{notes}"""
