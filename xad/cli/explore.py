"""``counterfactual``, ``diffedit`` and ``ldm``: one image's explanation, or a page's figures, headless."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xad.cli.checks import IMAGE_OUTPUTS, UsageError, existing_file, integer, number, output_file, output_folder


def _counterfactual(args: argparse.Namespace) -> int:
    from PIL import Image

    from xad.tensors import to_uint8

    from xad.counterfactual.bundle import find_generator, load_bundle
    from xad.counterfactual.explanation import explain
    from xad.data.transforms import read_image

    b = load_bundle(find_generator(args.setup))
    if args.concept > b.concepts:
        raise UsageError(f"--concept {args.concept}: this generator has concepts 1..{b.concepts}")
    e = explain(b, read_image(args.image), args.alpha, match=args.match_alpha)
    k = args.concept - 1
    Image.fromarray(to_uint8(e.counterfactuals[k])).save(args.out)
    matched = {} if e.alpha_inputs is None else {"alpha_input": round(float(e.alpha_inputs[k]), 4)}
    print(json.dumps({"out": str(args.out), "score": round(e.score, 4), "alpha": args.alpha,
                      "concept": args.concept, "counterfactual_score": round(float(e.ce_scores[k]), 4), **matched}))
    return 0


def _diffedit(args: argparse.Namespace) -> int:
    """DiffEdit one image from the source prompt to the target prompt (the psi of the paper)."""
    from PIL import Image

    from xad.tensors import to_uint8

    from xad.data.transforms import read_image
    from xad.models import diffedit as de
    from xad.weights import load_model

    if int(args.steps * args.strength) < 1:
        raise UsageError(f"--steps {args.steps} x --strength {args.strength} runs no step; it must be at least 1")
    if args.weights is not None:
        pipe = de.pipeline(load_model(args.weights, expect="TextLDM")[0])
    else:
        pipe = de.load_stable_diffusion(args.sd_model)
    image = de.fit_image(pipe, read_image(args.image))  # the model's own size (32 px; SD 512 px)
    r = de.diffedit(pipe, image, args.source, args.target, strength=args.strength, steps=args.steps,
                    guidance=args.guidance, seed=args.seed)
    Image.fromarray(to_uint8(r.edited[0])).save(args.out)
    print(json.dumps({"out": str(args.out), "mask_mean": round(float(r.masks[0].mean()), 4),
                      "source": args.source, "target": args.target, "strength": args.strength,
                      "steps": args.steps, "seed": args.seed}))
    return 0


def _ldm(args: argparse.Namespace) -> int:
    """The latent-diffusion page's figures and tables, headless."""
    import pandas as pd
    from tqdm import tqdm

    from xad import ldm
    from xad.plots import ldm as pl
    from xad.data.multiclass import load_setting
    from xad.export import write_figure
    from xad.ldm_report import auroc_table

    folder = ldm.find(args.weights)
    model, record = ldm.load(folder)
    if not 0 <= args.t < model.config.timesteps:
        raise UsageError(f"--t {args.t}: this model has timesteps 0..{model.config.timesteps - 1}")
    data = load_setting(record.meta["setting"], args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    name, fmt, written = record.path.name, args.format, []
    v = ldm.sample_view(model, data, args.t, args.sampler, n=args.samples, seed=args.seed)
    written.append(write_figure(pl.reconstructions_figure(v), args.out / f"{name}_reconstructions_t{args.t}.{fmt}"))
    per_sample = pd.DataFrame({"class": v.labels, "anomalous": v.anomalous, "logit_different": v.scores,
                               "latent_error": v.latent_errors, "pixel_mse": v.errors})
    (p := args.out / f"{name}_samples_t{args.t}.csv").write_text(per_sample.to_csv(index=False))
    written.append(p)
    grid = ldm.timestep_grid(model, v.images, None, args.sampler, seed=args.seed)
    written.append(write_figure(pl.timestep_grid_figure(v.images, v.labels, v.anomalous, grid, ldm.sweep_ts(model)),
                                args.out / f"{name}_timestep_grid.{fmt}"))
    bar = tqdm(total=len(ldm.sweep_ts(model, ldm.SHIPPED_SWEEP["step"])), desc="AUROC and drift vs t")
    table = ldm.cached_sweep(folder, data, ldm.sweep_params(args.sampler, seed=args.seed), model,
                             progress=lambda i, n: bar.update(i - bar.n))
    bar.close()
    (p := args.out / f"{name}_auroc_vs_t_{args.sampler}.csv").write_text(table.to_csv(index=False))
    written.append(p)
    written.append(write_figure(pl.auroc_curve_figure(table, args.t), args.out / f"{name}_auroc_vs_t_{args.sampler}.{fmt}"))
    if "drift_normal" in table and table["drift_normal"].notna().any():
        written.append(write_figure(pl.drift_curve_figure(table, args.t), args.out / f"{name}_drift_vs_t_{args.sampler}.{fmt}"))
    if record.metrics:
        (p := args.out / f"{name}_auroc_table.csv").write_text(auroc_table(record.metrics).to_csv(index=False))
        written.append(p)
    print("\n".join(map(str, written)))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    lp = sub.add_parser("ldm", help="reconstructions from t, the Fig. 3 grid and AUROC vs t of a "
                                    "latent-diffusion model (the page's figures and tables)")
    lp.add_argument("--weights", required=True,
                    help="a shipped model (name from `python -m xad list`, e.g. ldm/mnist-0-cpu) or a folder")
    lp.add_argument("--t", type=integer(0), default=200)
    lp.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddpm")
    lp.add_argument("--samples", type=integer(1), default=4, help="normal and as many anomalous test images")
    lp.add_argument("--seed", type=integer(0), default=0)
    lp.add_argument("--data", default=None)
    lp.add_argument("--format", choices=["png", "svg", "pdf", "html"], default="png")
    lp.add_argument("--out", type=output_folder, required=True, help="folder for the figures and CSV tables")
    lp.set_defaults(func=_ldm)
    cf = sub.add_parser("counterfactual", help="one image's counterfactual for alpha and concept k")
    cf.add_argument("--setup", required=True,
                    help="a shipped generator (name from `python -m xad list`, e.g. "
                         "cegan/cmnist-one-red-bce) or a cegan weights folder")
    cf.add_argument("--image", type=existing_file, required=True)
    cf.add_argument("--alpha", type=number(0, 1), default=0.0)
    cf.add_argument("--match-alpha", action="store_true",
                    help="xad's extension: search G's alpha input until the detector scores the CE at "
                         "--alpha (the paper's G takes --alpha as given); prints the input used")
    cf.add_argument("--concept", type=integer(1), default=1, help="k in 1..K")
    cf.add_argument("--out", type=output_file(IMAGE_OUTPUTS), required=True)
    cf.set_defaults(func=_counterfactual)
    de = sub.add_parser("diffedit", help="DiffEdit one image from a source to a target prompt")
    de.add_argument("--image", type=existing_file, required=True)
    de.add_argument("--source", required=True, help='the prompt that describes the image, e.g. "digit three"')
    de.add_argument("--target", required=True, help='the prompt to edit towards, e.g. "digit seven"')
    model = de.add_mutually_exclusive_group(required=True)
    model.add_argument("--weights", type=Path,
                       help="a diffedit weights folder (from python -m xad train diffedit)")
    model.add_argument("--sd-model", type=Path,
                       help="a local diffusers-format Stable Diffusion folder (never downloaded)")
    de.add_argument("--strength", type=number(0, 1, low_open=True), default=0.5, help="mask encode and inpaint strength")
    de.add_argument("--steps", type=integer(1), default=20, help="DDIM steps (x strength are run)")
    de.add_argument("--guidance", type=number(1), default=7.5, help="classifier-free guidance scale")
    de.add_argument("--seed", type=integer(0), default=0)
    de.add_argument("--out", type=output_file(IMAGE_OUTPUTS), required=True, help="the edited image (PNG)")
    de.set_defaults(func=_diffedit)
