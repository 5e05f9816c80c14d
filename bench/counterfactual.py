"""Benchmark: the latency of one slider move on the counterfactual page, on CPU.

A slider move reruns the page's live panel: the generator for every concept at the new alpha, the
detector's scores, the alpha strip (six more generator calls), and the three figures serialised as
the browser receives them. Prints the median over many moves and its parts, for each shipped
generator (or the one given). Target: under 50 ms at 32 px. For a DiffEdit generator also the
one-off cost of psi (DiffEdit) when a new image is picked; slider moves then reuse it.

    .venv/bin/python bench/counterfactual.py [--setup cegan/cmnist-one-red-bce] [--moves 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xad.counterfactual import bundle as cfb  # noqa: E402
from xad.counterfactual import explanation as cfe  # noqa: E402
from xad.plots import counterfactual as pc  # noqa: E402


def median_ms(fn, moves: int) -> float:  # noqa: ANN001
    fn(0.5, 0)  # warm-up
    rng = np.random.default_rng(0)
    times = []
    for _ in range(moves):
        alpha, k = float(rng.integers(0, 21) / 20), 0
        t = time.perf_counter()
        fn(alpha, k)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--setup", default=None, help="a generator name or folder (default: every shipped one)")
    ap.add_argument("--moves", type=int, default=50)
    args = ap.parse_args()
    folders = [cfb.find_generator(args.setup)] if args.setup else [r.path for r in cfb.generators()]
    if not folders:
        sys.exit("no generator shipped: train one with `python -m xad train cegan …`")
    print(f"torch threads {torch.get_num_threads()}; median of {args.moves} slider moves")
    for folder in folders:
        b = cfb.load_bundle(folder)
        image = cfe.anomaly_gallery(b, 1)[0][0]

        def generator_only(alpha: float, k: int) -> None:
            cfb.generate(b, np.repeat(image[None], b.concepts, 0), alpha, np.arange(b.concepts))

        def explain_only(alpha: float, k: int) -> None:
            cfe.explain(b, image, alpha)

        def slider_move(alpha: float, k: int) -> None:
            e = cfe.explain(b, image, alpha)
            alphas, seq, reached = cfe.alpha_sequence(b, image, k)
            figs = [pc.single_figure(e.counterfactuals[k], "k"), pc.concepts_figure(e),
                    pc.alpha_strip_figure(alphas, seq, reached, k)]
            if e.edit is not None:
                figs.append(pc.diffedit_figure(e))
            for fig in figs:
                fig.to_json()

        parts = {"generator, K concepts": generator_only, "+ detector scores and change maps": explain_only,
                 "whole slider move (with alpha strip and figures)": slider_move}
        print(f"{Path(folder).name} ({b.backend} version, K = {b.concepts}, 32 px):")
        if b.backend == "diffedit":
            times = []
            for _ in range(3):
                b.psi_cache.clear()
                t = time.perf_counter()
                cfb.psi(b, image[None])
                times.append(time.perf_counter() - t)
            print(f"  {'DiffEdit psi for a newly picked image (once)':50s} {1000 * float(np.median(times)):7.1f} ms")
        for name, fn in parts.items():
            print(f"  {name:50s} {median_ms(fn, args.moves):7.1f} ms")


if __name__ == "__main__":
    main()
