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
