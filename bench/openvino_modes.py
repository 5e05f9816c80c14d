"""Benchmark: OpenVINO's compile modes for the shipped VAE-GAN on this CPU, in one run.

Why the runner (xad.backends.OpenVINORunner) uses the LATENCY hint without CPU pinning: this
compares, on one batch of 64 images of 128 px (what the explainers send), interleaved repetitions of
- latency: LATENCY hint, 2 threads, ENABLE_CPU_PINNING off (xad's runner),
- latency-pinned: the same with OpenVINO's default pinning,
- throughput2: THROUGHPUT hint, 2 streams, the batch split in two and run asynchronously,
- throughput2x2: the same in four quarters, two at a time.
Prints the median ms per image of each and the largest output difference between the modes.

    .venv/bin/python bench/openvino_modes.py [--weights weights/vaegan/xad-tablet-cpu] [--reps 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xad import backends  # noqa: E402
from xad.explain.reconstruction import Reconstruction  # noqa: E402
from xad.weights import load_model  # noqa: E402


def main() -> None:
    import openvino as ov

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="weights/vaegan/xad-tablet-cpu")
    ap.add_argument("--reps", type=int, default=8)
    args = ap.parse_args()
    model = load_model(args.weights)[0]
    path = backends.cached_export(Reconstruction(model), torch.zeros(1, 3, 128, 128), "vaegan",
                                  output_names=("reconstruction",))
    core = ov.Core()
    base = {"INFERENCE_NUM_THREADS": 2}
    lat = core.compile_model(str(path), "CPU", {**base, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False})
    latp = core.compile_model(str(path), "CPU", {**base, "PERFORMANCE_HINT": "LATENCY"})
    thr = core.compile_model(str(path), "CPU", {**base, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2,
                                                "ENABLE_CPU_PINNING": False})
    x = np.random.default_rng(0).random((64, 3, 128, 128), dtype=np.float32)
    rl, rlp = lat.create_infer_request(), latp.create_infer_request()
    reqs = [thr.create_infer_request() for _ in range(2)]

    def split(parts: int) -> None:
        chunks = np.array_split(x, parts)
        for k in range(0, parts, 2):
            for r, part in zip(reqs, chunks[k:k + 2]):
                r.start_async({0: part})
            for r in reqs:
                r.wait()

    modes = {"latency": lambda: rl.infer({0: x}), "latency-pinned": lambda: rlp.infer({0: x}),
             "throughput2": lambda: split(2), "throughput2x2": lambda: split(4)}
    split(2)
    streamed = np.concatenate([np.array(r.get_output_tensor(0).data) for r in reqs])
    print("streams", thr.get_property("NUM_STREAMS"), "threads", thr.get_property("INFERENCE_NUM_THREADS"),
          "max diff latency vs throughput2", float(np.abs(streamed - np.array(rl.infer({0: x})[lat.outputs[0]])).max()))
    times: dict[str, list[float]] = {k: [] for k in modes}
    for f in modes.values():  # warm-up
        f()
    for _ in range(args.reps):
        for k, f in modes.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    for k, v in times.items():
        print(k, "ms/img median", round(1000 * float(np.median(v)) / len(x), 2))


if __name__ == "__main__":
    main()
