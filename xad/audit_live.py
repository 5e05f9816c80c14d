"""One sample explained live (the audit page's panel) or an image of the user's (upload), with the
same per-sample work as a whole audit (:func:`xad.audit.explain_sample`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from xad.audit import AuditParams, explain_sample
from xad.explain.reconstruction import reconstruct
from xad.metrics.detection import anomaly_map, anomaly_score, predicted_anomalous


def explain_one(model: torch.nn.Module, sample, params: AuditParams,  # noqa: ANN001 - a Sample
                progress: Callable[[str, float], None] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Explain one loaded sample live: (per-setup results, reconstruction (H, W, 3), anomaly map)."""
    x_rec = reconstruct(model, sample.image[None], bf16=False)[0]  # fp32, as in :func:`score`
    amap = anomaly_map(sample.image.astype(np.float32)[None] / 255, x_rec[None], params.map_mode)[0]
    return explain_sample(sample.image, x_rec, sample.mask, model, params, progress), x_rec, amap


def explain_image(model: torch.nn.Module, image: np.ndarray, params: AuditParams, tau: float | None = None,
                  name: str = "upload", progress: Callable[[str, float], None] | None = None) -> dict:
    """Score and explain one image of the user's (no ground truth): resized to the model's size;
    S2 needs a ground-truth mask, so only S1 and S3 run. Returns the sample, x', the anomaly map,
    alpha, the verdict at ``tau`` (if given) and the per-setup results (IoU not defined)."""
    from xad.data.mvtec import Sample
    from xad.data.transforms import resize_image

    size = model.config.image_size
    image = image if image.shape[:2] == (size, size) else resize_image(image, size)
    setups = tuple(s for s in params.setups if s != "S2") or ("S1",)
    sample = Sample(f"upload/{name}", image, None, "unknown")
    res, x_rec, amap = explain_one(model, sample, replace(params, setups=setups), progress)
    alpha = float(anomaly_score(amap[None])[0])
    verdict = None if tau is None else ("anomalous" if predicted_anomalous(alpha, tau) else "good")
    return {"sample": sample, "reconstruction": x_rec, "anomaly_map": amap, "score": alpha,
            "verdict": verdict, "results": res, "setups": setups}


def bf16_agreement(model: torch.nn.Module, ds, samples: int = 1000, resample: str = "nearest",  # noqa: ANN001
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """bf16 against fp32 explanations (S1, S3, ``samples`` evaluations) of the first anomalous test
    image of every defect type, both in torch. Where the CPU has no native bf16 the bf16 side is
    emulated: ~10x slower for the VAE-GAN, the same numbers (tablet/test/cut/000 S1 rank correlation
    0.9852 emulated on AVX2, 0.9850 on an AMX CPU). ``agrees``: whether the bar holds
    (:data:`xad.precision.BF16_BAR`); :func:`xad.audit.default_bf16` explains the model in fp32 where it does not."""
    from scipy.stats import spearmanr

    from xad.precision import _native_bf16

    refs = [ds.refs("test", d)[0] for d in ds.defects("test") if d != "good"]
    rows = []
    for i, ref in enumerate(refs):
        sample = ds.load(ref, model.config.image_size, resample)
        out = {b: explain_one(model, sample, AuditParams(setups=("S1", "S3"), samples=samples, bf16=b,
                                                         backend="torch", resample=resample))[0]
               for b in (False, True)}
        row = {"id": ref.id}
        for s in ("S1", "S3"):
            row[f"rho_{s}"] = round(float(spearmanr(out[False][s]["map"].ravel(), out[True][s]["map"].ravel())[0]), 4)
            row[f"iou_{s}_fp32"], row[f"iou_{s}_bf16"] = (round(float(out[b][s]["iou"]), 4) for b in (False, True))
        rows.append(row)
        if progress:
            progress(i + 1, len(refs))
    return {"agrees": bf16_verdict(rows), "samples": samples, "native_bf16": _native_bf16(),
            "s1_rho_min": min(r["rho_S1"] for r in rows),
            "s3_rho_median": round(float(np.median([r["rho_S3"] for r in rows])), 4), "rows": rows}


def bf16_verdict(rows: list[dict]) -> bool:
    """Whether rows of :func:`bf16_agreement` meet :data:`xad.precision.BF16_BAR`: S1 on every sample
    (rank correlation, J*), S3's median rank correlation, the mean J* of both setups."""
    from xad.precision import BF16_BAR

    if not rows:
        return False
    rho, dj = BF16_BAR["rho"], BF16_BAR["iou"]
    s1 = all(r["rho_S1"] >= rho and abs(r["iou_S1_fp32"] - r["iou_S1_bf16"]) <= dj for r in rows)
    s3 = float(np.median([r["rho_S3"] for r in rows])) >= rho
    means = all(abs(np.mean([r[f"iou_{s}_fp32"] - r[f"iou_{s}_bf16"] for r in rows])) <= dj for s in ("S1", "S3"))
    return bool(s1 and s3 and means)
