"""Benchmark: xad's explanation engine against the reference libraries, measured in one run.

Reference = what the paper's notebooks do: skimage quickshift re-run at every bisection step,
``lime.lime_image`` with the model in fp32, ``shap.PartitionExplainer`` with the model in fp32.
xad = the quickshift forest cut once per step, vectorised LIME, the model channels-last, in bf16
where the CPU computes bf16 natively (AMX), else in fp32 on batches of 16 (xad.precision; printed
at the start).
Prints seconds per setup, the speed-up ratio and how far the attributions differ.

    .venv/bin/python bench/explain.py [--n 1000] [--weights weights/vaegan/xad-hexnut-cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xad.data.catalog import resolve_mvtec  # noqa: E402
from xad.explain import lime as xlime  # noqa: E402
from xad.explain import shap as xshap  # noqa: E402
from xad.explain.reconstruction import error_function, reconstruct  # noqa: E402
from xad.explain.segmentation import quickshift_k, quickshift_k_reference, s1_image  # noqa: E402
from xad.models.vaegan import PRESETS, VAEGAN  # noqa: E402
from xad.weights import load_model  # noqa: E402


def timed(fn):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="LIME samples / SHAP evaluations")
    ap.add_argument("--weights", default="weights/vaegan/xad-hexnut-cpu")
    ap.add_argument("--category", default="hexnut")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.weights)[0] if Path(args.weights).is_dir() else VAEGAN(PRESETS["cpu"]).eval()
    ds = resolve_mvtec("embedded", args.category)
    sample = ds.load(ds.refs("test", "crack")[0], 128, "nearest")
    x = sample.image.astype(np.float32) / 255
    x_rec = reconstruct(model, sample.image[None], bf16=False)[0]
    from xad.precision import describe

    print(f"xad's precision here: {describe()}; torch threads {torch.get_num_threads()}")
    # reference: the model as given, fp32, contiguous, batches of 64; xad: its default precision,
    # channels-last, small batches
    f32, f16 = error_function(model, bf16=False, fast=False), error_function(model)
    f16(x[None].repeat(4, 0))  # warm-up
    seg_ref, t_seg_ref = timed(lambda: quickshift_k_reference(s1_image(x, x_rec), 100, 1234).labels)
    seg, t_seg = timed(lambda: quickshift_k(s1_image(x, x_rec), 100, 1234))
    print(f"segmentation (k=100): reference {t_seg_ref:.2f} s, xad {t_seg:.3f} s, "
          f"ratio {t_seg_ref / t_seg:.1f}x, identical: {np.array_equal(seg_ref, seg.labels)}")

    def ref_lime():  # noqa: ANN202 - lime's own explain_instance, model in fp32
        return xlime.explain_reference(f32, x, x_rec, seg.labels, args.n, 1234).coefficients

    coef_ref, t_lime_ref = timed(ref_lime)
    ours, t_lime = timed(lambda: xlime.explain(f16, x, x_rec, seg.labels, args.n, 1234))
    corr = np.corrcoef(coef_ref, ours.coefficients)[0, 1]
    print(f"LIME (n={args.n}): reference {t_lime_ref:.2f} s, xad {t_lime:.2f} s, "
          f"ratio {t_lime_ref / t_lime:.1f}x, correlation of coefficients {corr:.4f}")

    def ref_shap():  # noqa: ANN202 - shap's PartitionExplainer, model in fp32
        return xshap.explain(f32, x, x_rec, args.n).attribution

    xshap.explain(f16, x, x_rec, 50)  # numba compiles on the first call: not counted
    shap_ref, t_shap_ref = timed(ref_shap)
    shap_ours, t_shap = timed(lambda: xshap.explain(f16, x, x_rec, args.n).attribution)
    corr = np.corrcoef(shap_ref.ravel(), shap_ours.ravel())[0, 1]
    print(f"SHAP (max_evals={args.n}): reference {t_shap_ref:.2f} s, xad {t_shap:.2f} s, "
          f"ratio {t_shap_ref / t_shap:.1f}x, correlation of maps {corr:.4f}")
    total_ref = t_seg_ref * 2 + t_lime_ref * 2 + t_shap_ref
    total = t_seg * 2 + t_lime * 2 + t_shap
    print(f"one sample, S1+S2+S3: reference {total_ref:.1f} s, xad {total:.1f} s, "
          f"ratio {total_ref / total:.1f}x")


if __name__ == "__main__":
    main()
