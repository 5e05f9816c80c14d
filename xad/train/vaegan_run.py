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
from xad.train.vaegan import TrainSettings, settings_dict, split_holdout, train, use_compile
from xad.weights import load_model, read_record, save_model, write_metrics


def _test_auroc(ds, size: int, resample: str, geometry: str):  # noqa: ANN001, ANN202
    """model -> image AUROC on the test split (None where it lacks good or anomalous images)."""
    from sklearn.metrics import roc_auc_score

    samples = [ds.load(r, size, resample, geometry) for r in ds.refs("test")]
    labels = np.array([s.is_anomalous for s in samples], dtype=int)
    if labels.all() or not labels.any():
        return None
    x = np.stack([s.image for s in samples])
    xf = x.astype(np.float32) / 255

    def auroc(model: VAEGAN) -> float:
        scores = anomaly_score(anomaly_map(xf, reconstruct(model, x, bf16=False, channels_last=True)))
        return float(roc_auc_score(labels, scores))

    return auroc


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
            "training_data": f"{_shown(ds.folder)} (train/good, {len(all_x)} images: {len(fit)} trained on, "
                             f"{len(held)} held out)",
            "heldout_ids": [refs[i].id for i in held],
            "seed": settings.seed, "resample": resample, "resize": geometry,
            "train_settings": settings_dict(settings),
            "steps_done": log.steps_done, "kept_step": log.kept_step, "learning_curve": log.curve,
            "train_seconds": round(log.seconds, 1), "compiled": use_compile(settings),
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
    meta = record.meta
    ds = resolve_mvtec(data, meta["category"])
    refs = ds.refs("test")
    resample, geometry = meta.get("resample", "nearest"), meta.get("resize", "stretch")
    samples = [ds.load(r, model.config.image_size, resample, geometry) for r in refs]
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
- **Data:** resize `{meta.get('resize', 'stretch')}` (how non-square images become square)
- **Seed:** {meta.get('seed')}; batch {s.get('batch_size')}; Adam lr {s.get('lr')} (discriminator
  {s.get('d_lr') or s.get('lr')}); generator-term weight {s.get('gan_weight', 1.0)} after
  {s.get('gan_warmup', 0)} VAE-only steps; augmentation `{s.get('augment')}`; bf16 autocast
  {'on' if s.get('bf16') else 'off'}; torch.compile {'on' if _compiled(meta) else 'off'}
- **Steps:** {meta.get('steps_done')} (asked {s.get('steps')}, time cap {s.get('max_minutes')} min);
  **CPU wall time:** {meta.get('train_seconds', 0) / 60:.1f} min on {meta.get('threads')} threads
{_init_line(meta)}- **Weights:** fp16 safetensors (loaded as fp32); architecture sizes in config.json

## Measured on the test split
tau* fitted on the test labels, as the paper does
(`python -m xad evaluate vaegan --weights {_shown(r.path)}`).

| metric | value |
| --- | --- |
| image AUROC | {m.get('test_auroc', float('nan')):.3f} |
| accuracy at tau* | {m.get('accuracy_at_tau_star', float('nan')):.3f} |
| tau* | {m.get('tau_star', float('nan')):.4f} |

{m.get('confusion', '')}.

AUROC per defect type (each against all good images): {by_defect}.
{curve_section(meta)}{notes}"""


def _compiled(meta: dict) -> bool:
    """Whether the training step was compiled (older records: derived from their settings)."""
    if "compiled" in meta:
        return bool(meta["compiled"])
    return use_compile(TrainSettings(**{k: v for k, v in meta.get("train_settings", {}).items()
                                        if k in ("steps", "compile")}))


def _init_line(meta: dict) -> str:
    i = meta.get("initialised_from")
    if not i:
        return ""
    return (f"- **Continued training:** started from `{i.get('weights')}` ({i.get('steps_done')} steps, "
            f"{(i.get('train_seconds') or 0) / 60:.0f} min on {i.get('cpu')}: `{i.get('command')}`); "
            "the steps and time above are this run's only\n")


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def curve_section(meta: dict, rows: int = 10) -> str:
    """The card's learning-curve table (at most ``rows`` evaluations, the kept one always shown)."""
    c, kept = meta.get("learning_curve") or {}, meta.get("kept_step")
    steps = c.get("step", [])
    if not steps:
        return ""
    held, tr = c.get("heldout", {}), c.get("train", {})
    auroc = dict(zip(c.get("test_auroc", {}).get("step", []), c.get("test_auroc", {}).get("auroc", [])))
    pick = sorted({*range(0, len(steps), max(1, -(-len(steps) // rows))), len(steps) - 1,
                   *[i for i, st in enumerate(steps) if st == kept or st in auroc]})
    lines = []
    for i in pick:
        col = (lambda k, d=held: d.get(k, [None] * len(steps))[i])  # noqa: E731
        tcol = (lambda k: tr.get(k, [None] * len(steps))[i])  # noqa: E731
        mark = " **kept**" if steps[i] == kept else ""
        lines.append(f"| {steps[i]}{mark} | {c['minutes'][i]:.1f} | {_fmt(col('bce_excess'), '.1f')} | "
                     f"{_fmt(col('mse'), '.5f')} | {_fmt(tcol('bce'), '.0f')} | {_fmt(tcol('kl'), '.1f')} | "
                     f"{_fmt(tcol('g'), '.3g')} | {_fmt(tcol('d'), '.3g')} | "
                     f"{_fmt(auroc.get(steps[i]), '.3f')} |")
    n_held = len(meta.get("heldout_ids", []))
    best = held.get("bce", [None] * len(steps))[steps.index(kept)] if kept in steps else None
    kept_line = (f"The weights kept are those of step {kept}, the best held-out reconstruction loss "
                 f"(BCE {best:.1f} per image) of the {len(steps)} evaluations (early stopping)"
                 if best is not None else
                 f"The weights kept are the last ones (step {kept}): no held-out images")
    return f"""
## Learning curve
Every {c.get('every')} steps: the posterior-mean reconstruction of the {n_held} held-out normal training
images (never trained on) as summed BCE above its floor (the BCE of an image with itself, which
is most of the raw BCE on grey images) and as per-pixel MSE; the training loss components
averaged since the previous evaluation; the test AUROC at a few checkpoints (measured only, never
used to choose the weights). {kept_line}.

| step | min | held-out BCE - floor | held-out MSE | train BCE | KL | G term | D loss | test AUROC |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
""" + "\n".join(lines) + "\n"
