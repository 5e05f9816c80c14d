"""``python -m xad train detector``: a bounded semantic detector (BCE-OE, HSC-OE or DSVDD) on one
setup's normal training images (+ offline outlier exposure), saved with a card and its test AUROC.

Per step: half a batch of normal images and (for BCE / HSC) half of OE images; Adam (lr 1e-3,
weight decay 1e-6); light augmentation (random shifts of up to 2 px). DSVDD first fixes its
centre c as the mean initial feature of the normal data, then sets the bounding scale after
training (see :mod:`xad.models.detectors`).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from xad import portable
from xad.cards import write_card
from xad.data import semantic
from xad.data.transforms import DataError
from xad.tensors import to_tensor
from xad.models.detectors import PRESETS, Detector, bounding_note, dsvdd_scale_for, score_images
from xad.weights import save_model


@dataclass(frozen=True)
class DetectorSettings:
    kind: str = "bce"
    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    oe_pool: int = 20000  # OE images rendered once, sampled from
    oe: str = ""  # OE kind (a key of semantic.OE_KINDS); "" = the setup's default


def _shift(x: torch.Tensor, g: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Random translation by up to ``pixels`` (zero fill), one shift per batch."""
    dy, dx = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=g))
    return torch.roll(x, (dy, dx), dims=(2, 3))


def train(model: Detector, normal: np.ndarray, oe: np.ndarray | None, s: DetectorSettings,
          progress: bool = True) -> dict:
    """Train in place; returns a log. normal, oe: (N, 32, 32, 3) uint8."""
    g = torch.Generator().manual_seed(s.seed)
    x_norm = to_tensor(normal)
    x_oe = to_tensor(oe) if oe is not None and len(oe) else None
    kind = model.config.kind
    if kind == "dsvdd":
        with torch.no_grad():
            model.eval()
            model.center.copy_(torch.cat([model.features(x_norm[i: i + 512])
                                          for i in range(0, min(len(x_norm), 4096), 512)]).mean(0))
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=1e-6)
    model.train()
    start, loss = time.time(), float("nan")
    half = s.batch_size // 2 if x_oe is not None and kind != "dsvdd" else s.batch_size
    bar = tqdm(range(s.steps), desc=f"train detector ({kind})", disable=not progress, mininterval=2)
    for step in bar:
        xb = x_norm[torch.randint(0, len(x_norm), (half,), generator=g)]
        oe_mask = torch.zeros(half, dtype=torch.bool)
        if half < s.batch_size:
            xo = x_oe[torch.randint(0, len(x_oe), (s.batch_size - half,), generator=g)]
            xb = torch.cat([xb, xo])
            oe_mask = torch.cat([oe_mask, torch.ones(len(xo), dtype=torch.bool)])
        out = model.loss(_shift(xb, g), oe_mask)
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
        loss = out.item()
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss:.4g}")
    model.eval()
    if kind == "dsvdd":
        with torch.no_grad():
            d = torch.cat([model.distance(x_norm[i: i + 512]) for i in range(0, len(x_norm), 512)])
        model.config = dataclasses.replace(model.config, dsvdd_scale=dsvdd_scale_for(float(d.median())))
    return {"steps_done": s.steps, "train_seconds": round(time.time() - start, 1), "final_loss": loss}


def evaluate(model: Detector, data: semantic.SemanticData) -> dict:
    """Test AUROC (normal vs the ground-truth anomalies) and mean scores."""
    sc = score_images(model, data.x_test)
    out = {"test_auroc": round(float(roc_auc_score(data.anomalous_test, sc)), 4),
           "mean_score_normal": round(float(sc[~data.anomalous_test].mean()), 4),
           "mean_score_anomalous": round(float(sc[data.anomalous_test].mean()), 4)}
    if data.setup.startswith("cmnist:"):  # normal vs the anomalies of one colour (the Fig. 10 bias)
        normal = ~data.anomalous_test
        for colour, mask in semantic.anomalies_by_colour(data).items():
            keep = normal | mask
            out[f"test_auroc_{colour}"] = round(float(roc_auc_score(mask[keep], sc[keep])), 4)
    return out


def run(setup: str, out: Path, settings: DetectorSettings, data_path: str | None = None,
        preset: str = "cpu", command: str = "") -> Path:
    """Train a detector for ``setup``, evaluate it, write weights + card."""
    data = semantic.load_setup(setup, data_path)
    torch.manual_seed(settings.seed)
    model = Detector(dataclasses.replace(PRESETS[preset], kind=settings.kind))
    n_oe = min(settings.oe_pool, settings.steps * settings.batch_size // 2)  # never more than drawn
    oe_kind = settings.oe or data.oe_kind
    if oe_kind == "blue-anomalies":  # the supervised classifier of the paper's Fig. 10
        if not setup.startswith("cmnist:") or settings.kind == "dsvdd":
            raise DataError("--oe blue-anomalies: coloured MNIST (cmnist:one+red) with a bce or hsc detector only")
        oe = semantic.blue_training_anomalies(data_path)[:n_oe]
    else:
        oe = None if settings.kind == "dsvdd" else semantic.outliers(oe_kind, n_oe, settings.seed + 1)
    log = train(model, data.normal_train, oe, settings)
    metrics = evaluate(model, data)
    meta = {"setup": setup, "setup_description": data.description, "image_size": 32,
            "training_data": f"{len(data.normal_train)} normal training images of {setup}"
                             + ("" if oe is None else f" + {len(oe)} OE images ({oe_kind})"),
            "data_path": portable(data_path) if data_path else "embedded MNIST",
            "seed": settings.seed, "train_settings": asdict(settings), **log,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "command": command, "bounding": bounding_note(settings.kind),
            "oe_description": None if oe is None else semantic.OE_KINDS[oe_kind]}
    folder = save_model(model, out, family="detector", card="", preset=preset, meta=meta,
                        metrics=metrics)
    write_card(folder)
    return folder
