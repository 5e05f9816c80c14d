"""Benchmark: xad's explanation engine on each inference backend against the reference libraries,
measured in one run, on one test image of the shipped model.

Reference = what the paper's notebooks do: skimage quickshift re-run at every bisection step,
``lime.lime_image``, ``shap.PartitionExplainer`` and (S4) ``shap_bpt.Explainer`` handed perturbed
images built in numpy, the model in torch fp32, contiguous, batches of 64.
xad = the quickshift forest cut once per step, vectorised LIME, masks instead of images for shap and
shap_bpt, perturbed images composed chunk by chunk right before the model, on each backend of
:mod:`xad.backends` (torch channels-last, OpenVINO, ONNX Runtime: exported once, cached).

Per setup: reference_seconds, fast_seconds, ratio, model_seconds (the fast run's time inside the
model calls alone: the floor on this CPU) and attribution_correlation (fast vs reference, Pearson).
Also the CPU, its flags, torch threads and the load average before and after (another busy
process on the machine slows torch far more than the other backends).

    .venv/bin/python bench/explain.py [--n 5000] [--json] [--backends torch,openvino,onnxruntime]
                                      [--setups S1,S2,S3,S4] [--weights weights/vaegan/xad-tablet-cpu]
                                      [--probe 512]  (ms per image of every installed backend)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xad import backends  # noqa: E402
from xad.data.catalog import resolve_mvtec  # noqa: E402
from xad.explain import bpt as xbpt  # noqa: E402
from xad.explain import lime as xlime  # noqa: E402
from xad.explain import shap as xshap  # noqa: E402
from xad.explain.reconstruction import error_function, reconstruct  # noqa: E402
from xad.explain.segmentation import quickshift_k, quickshift_k_reference, s1_image, s2_image  # noqa: E402
from xad.models.vaegan import PRESETS, VAEGAN  # noqa: E402
from xad.weights import load_model  # noqa: E402


def cpu() -> dict:
    """The CPU's name, the flags that decide the fast path, and the core count."""
    name, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    keep = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"name": name, "flags": [f for f in keep if f in flags], "cores": os.cpu_count()}


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.array_equal(a, b))


README_TAG = "bench-explain"


def readme_table(info: dict, source: str) -> str:
    """Markdown of one saved run: per backend and setup the reference and fast seconds, the ratio,
    the model calls' share, and the ceiling that the model calls put on the ratio."""
    from xad.cards import markdown_table

    rows = [{"backend": b, "setup": s, "reference s": r["reference_seconds"],
             "reference model s": r.get("reference_model_seconds"), "xad s": r["fast_seconds"],
             "ratio": r["ratio"], "xad model s": r["model_seconds"], "xad / model": r["fast_over_model"],
             "ratio ceiling": r.get("ratio_ceiling"), "correlation": r["attribution_correlation"]}
            for b, per in info["backends"].items() for s, r in per.items()]
    c = info["cpu"]
    return (f"`bench/explain.py --n {info['n']}` on {c['name']} ({', '.join(c['flags']) or 'no AVX2'}, "
            f"{c['cores']} cores), {info['threads']} threads, torch {info['torch']}, load average "
            f"{info['load_before'][0]} before / {info['load_after'][0]} after; ms per image "
            + ", ".join(f"{k} {v}" for k, v in info["ms_per_image"].items())
            + f"; fastest backend here: {info['fastest_backend']} (saved in `{source}`).\n\n" + markdown_table(rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="LIME samples / SHAP and ShapBPT evaluations")
    ap.add_argument("--weights", default="weights/vaegan/xad-tablet-cpu")
    ap.add_argument("--category", default="tablet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--setups", default="S1,S2,S3,S4")
    ap.add_argument("--backends", default=",".join(backends.installed()))
    ap.add_argument("--probe", type=int, default=512, help="images timed on every installed backend")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--save", default=None, help="also write the JSON object to this file")
    ap.add_argument("--readme", default=None, help="rewrite this README's bench-explain block from --from, and stop")
    ap.add_argument("--from", dest="source", default="bench/results/explain.json")
    args = ap.parse_args()
    if args.readme:
        from xad import readme

        readme.replace_block(args.readme, README_TAG, readme_table(json.loads(Path(args.source).read_text()),
                                                                   args.source))
        print(args.readme)
        return
    torch.set_num_threads(args.threads)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    setups = [s.strip().upper() for s in args.setups.split(",")]
    chosen = [backends.resolve(b.strip()) for b in args.backends.split(",")]
    model = load_model(args.weights)[0] if Path(args.weights).is_dir() else VAEGAN(PRESETS["cpu"]).eval()
    ds = resolve_mvtec("embedded", args.category)
    sample = ds.load(next(r for r in ds.refs("test") if r.mask_path), model.config.image_size, "nearest")
    x = sample.image.astype(np.float32) / 255
    x_rec = reconstruct(model, sample.image[None], bf16=False)[0]
    info = {"n": args.n, "threads": torch.get_num_threads(), "cpu": cpu(), "sample": sample.id,
            "torch": torch.__version__, "backend": backends.resolve("auto"),
            "load_before": [round(v, 2) for v in os.getloadavg()]}
    log(f"CPU {info['cpu']}, torch threads {info['threads']}, load {info['load_before']}, n = {args.n}")

    def run(setup: str, f: Callable, reference: bool) -> tuple[np.ndarray, float]:
        """One setup's attribution and wall time, segmentation included."""
        def go() -> np.ndarray:
            if setup == "S3":
                return xshap.explain(f, x, x_rec, args.n).attribution
            if setup == "S4":
                return xbpt.explain(f, x, x_rec, args.n).attribution
            image = s1_image(x, x_rec) if setup == "S1" else s2_image(x, x_rec, sample.mask)
            seg = (quickshift_k_reference if reference else quickshift_k)(image, 100, 1234).labels
            explain = xlime.explain_reference if reference else xlime.explain
            return explain(f, x, x_rec, seg, args.n, 1234).coefficients[seg]
        return timed(go)

    f32 = error_function(model, bf16=False, fast=False)
    ref_model = {"seconds": 0.0}

    def plain(b: np.ndarray) -> np.ndarray:  # a plain function: images built in numpy, model timed
        t0 = time.perf_counter()
        out = f32(b)
        ref_model["seconds"] += time.perf_counter() - t0
        return out
    xshap.explain(plain, x, x_rec, 50)  # numba compiles on the first call: not counted
    fs = {}
    for b in chosen:
        fs[b] = error_function(model, bf16=None if b == "torch" else False, backend=b)
        fs[b](x[None].repeat(20, 0))  # export, compile and warm up: not counted
    probe = {}  # every installed backend on the same perturbed images, this run: ms per image
    keep = np.random.default_rng(0).random((args.probe, *x.shape[:2])) < 0.5
    for b in backends.installed():
        f = fs.get(b) or error_function(model, bf16=None if b == "torch" else False, backend=b)
        f(x[None].repeat(20, 0))
        _, t = timed(lambda: f.masked(x, x_rec, keep))
        probe[b] = round(1000 * t / args.probe, 2)
    info["ms_per_image"] = probe
    log(f"ms per image ({args.probe} perturbed images, error included): {probe}")
    per_backend: dict[str, dict] = {b: {} for b in chosen}
    for s in setups:  # setup by setup, so that a run stopped early still reports whole setups
        ref_model["seconds"] = 0.0
        r_attr, r_seconds = run(s, plain, reference=True)
        r_model = ref_model["seconds"]
        log(f"{s} reference  : {r_seconds:6.2f} s  (load {os.getloadavg()[0]:.1f})")
        for b, f in fs.items():
            f.model_seconds, f.model_images = 0.0, 0
            attribution, seconds = run(s, f, reference=False)
            row = {"reference_seconds": round(r_seconds, 2), "reference_model_seconds": round(r_model, 2),
                   "fast_seconds": round(seconds, 2),
                   "ratio": round(r_seconds / seconds, 2), "model_seconds": round(f.model_seconds, 2),
                   "model_images": f.model_images,
                   "ms_per_image": round(1000 * f.model_seconds / max(1, f.model_images), 2),
                   "fast_over_model": round(seconds / max(f.model_seconds, 1e-9), 3),
                   # the best ratio this backend allows: the reference against the model calls alone
                   "ratio_ceiling": round(r_seconds / max(f.model_seconds, 1e-9), 2),
                   "attribution_correlation": round(corr(attribution, r_attr), 5)}
            per_backend[b][s] = row
            log(f"{s} {b:<11}: {seconds:6.2f} s (model {f.model_seconds:.2f} s, "
                f"{row['ms_per_image']} ms/img), ratio {row['ratio']}x, "
                f"corr {row['attribution_correlation']}  (load {os.getloadavg()[0]:.1f})")
    info["load_after"] = [round(v, 2) for v in os.getloadavg()]
    best = min(per_backend, key=lambda b: sum(r["fast_seconds"] for r in per_backend[b].values()))
    info |= {"fastest_backend": best, "setups": per_backend.get(info["backend"], per_backend[best]),
             "backends": per_backend}
    if args.save:
        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save).write_text(json.dumps(info, indent=1) + "\n")
    if args.json:
        print(json.dumps(info))
    else:
        log(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
