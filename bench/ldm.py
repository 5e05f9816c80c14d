"""Benchmark: reconstruction from t with the full DDPM reverse process against DDIM, in one run.

Prints seconds per reconstruction batch (64 images, t = 200 by default) for DDPM (every step from t)
and DDIM (the 50-step schedule: the steps of it below t), each in fp32 and under bf16 autocast,
and the AUROC of the method with each sampler on the same evaluation subset and seed.

    .venv/bin/python bench/ldm.py [--weights ldm/mnist-0-cpu] [--t 200] [--limit 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xad import ldm  # noqa: E402
from xad.tensors import to_tensor  # noqa: E402
from xad.train.ldm import load_setting  # noqa: E402


def seconds(fn, repeat: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="ldm/mnist-0-cpu", help="shipped name or folder")
    ap.add_argument("--t", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=300, help="test images per class for the AUROC")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    model, record = ldm.load(ldm.find(args.weights))
    data = load_setting(record.meta["setting"])
    x = to_tensor(data.x_test[: args.batch])
    print(f"{record.name}: {args.batch} images, t = {args.t}, torch threads {torch.get_num_threads()}")
    from xad.precision import bf16_is_fast, describe

    print(f"  xad's precision here: {describe()}")
    rows = {}
    for sampler in ("ddpm", "ddim"):
        for bf16 in (False, True) if bf16_is_fast() else (False,):
            def run() -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model.reconstruct(x, args.t, sampler, 50, torch.Generator().manual_seed(0))
            rows[(sampler, bf16)] = seconds(run, args.repeat)
            print(f"  {sampler.upper():4s} {'bf16' if bf16 else 'fp32'}: {rows[(sampler, bf16)]:.3f} s per batch")
    print(f"  DDIM vs DDPM (fp32): {rows[('ddpm', False)] / rows[('ddim', False)]:.1f}x faster")
    if ("ddpm", True) in rows:
        print(f"  bf16 vs fp32 (DDPM): {rows[('ddpm', False)] / rows[('ddpm', True)]:.1f}x faster")
    auroc = {}
    for sampler in ("ddpm", "ddim"):
        t0 = time.perf_counter()
        auroc[sampler] = ldm.evaluate(model, data, args.t, sampler, 50, args.limit)["auroc_method"]
        print(f"  AUROC ({sampler.upper()}, {args.limit} + {args.limit} test images): "
              f"{100 * auroc[sampler]:.1f} % in {time.perf_counter() - t0:.1f} s")
    print(f"  AUROC difference DDIM - DDPM: {100 * (auroc['ddim'] - auroc['ddpm']):+.1f} points")


if __name__ == "__main__":
    main()
