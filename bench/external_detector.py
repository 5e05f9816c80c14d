"""A PatchCore-style detector (the tests' fixed random-feature one, its memory bank from the
category's train/good images) exported to ONNX with anomalib's output names, audited beside the
shipped VAE-GAN with the same parameters: image AUROC and mean max-IoU per setup, one JSON.

    .venv/bin/python bench/external_detector.py --category tablet --limit 0 --samples 1000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_detectors import PatchCoreStyle, export  # noqa: E402
from xad import audit, runs  # noqa: E402
from xad.data.mvtec import MVTecDataset  # noqa: E402
from xad.detectors import open_detector  # noqa: E402
from xad.weights import load_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--category", default="tablet")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--bank", type=int, default=8192)
    p.add_argument("--setups", default="S1,S3")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--limit", type=int, default=0, help="0: every test image")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-external")
    a = p.parse_args()
    ds = MVTecDataset(ROOT / "data" / "xad_industrial", a.category)
    train = np.stack([ds.load(r, a.size, "nearest").image for r in ds.refs("train")])
    a.out.mkdir(parents=True, exist_ok=True)
    onnx = export(PatchCoreStyle(train, bank_size=a.bank), a.size, a.out / f"{a.category}-patchcore-style.onnx")
    params = audit.AuditParams(setups=tuple(a.setups.split(",")), samples=a.samples, limit=a.limit or None)
    weights = ROOT / "weights" / "vaegan" / f"xad-{a.category}-cpu"
    model, _ = load_model(weights)
    out = {"cpu": platform.processor() or platform.machine(), "category": a.category, "params": vars(a) | {
        "out": str(a.out)}}
    for name, det, ident in (("patchcore-style (ONNX)", open_detector(onnx), None), ("VAE-GAN", model, weights)):
        t0 = time.perf_counter()
        run = runs.load_run(audit.run_audit(ds, det, ident or det, params, a.out / name.split()[0]))
        table = runs.mean_iou_table(run.results, params.setups)
        out[name] = {"auroc": round(run.info["auroc"], 4), "accuracy": round(run.info["accuracy"], 4),
                     "mean max-IoU": dict(zip(table["setup"], table["mean max-IoU (this run)"])),
                     "mean max-IoU of the map": round(float(run.results["iou_map"].dropna().mean()), 4),
                     "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
