"""``python -m xad <command>``: the same functions the dashboard calls, headless.

Progress goes to stderr; the result (a path or JSON) to stdout. Exit status 2 on bad input, with a
one-line message instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from xad.data.transforms import DataError
from xad.weights import WeightsError


def _list(args: argparse.Namespace) -> int:
    from xad.data.catalog import find_datasets, open_collection
    from xad.weights import WEIGHTS_DIR, list_models

    datasets, problems = find_datasets(args.data or [])
    models, model_problems = list_models([WEIGHTS_DIR, *args.weights] if args.weights else None)
    rows = []
    for info in datasets:
        try:
            counts = open_collection(info).summary()["count"].sum()
        except DataError as exc:
            problems.append(str(exc))
            counts = None
        rows.append({"key": info.key, "name": info.name, "kind": info.kind, "path": str(info.path),
                     "samples": None if counts is None else int(counts), "licence": info.licence})
    out = {"datasets": rows, "problems": problems + model_problems,
           "models": [{"name": m.name, "class": m.cls, "preset": m.preset, "path": str(m.path),
                       "metrics": m.metrics} for m in models]}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("Datasets:")
    for r in rows:
        print(f"  {r['key']:<16} {r['samples'] if r['samples'] is not None else '?':>7}  {r['name']}  [{r['path']}]")
    print("Models:" if out["models"] else "Models: none found")
    for m in out["models"]:
        print(f"  {m['name']:<30} {m['class']} ({m['preset']})  {m['metrics']}")
    for p in out["problems"]:
        print(f"  problem: {p}")
    return 0


def _data_generate(args: argparse.Namespace) -> int:
    from xad.data.synthetic import CATEGORIES, generate

    cats = tuple(args.category or CATEGORIES)
    unknown = [c for c in cats if c not in CATEGORIES]
    if unknown:
        raise DataError(f"unknown category {unknown} (available: {', '.join(CATEGORIES)})")
    root = generate(args.out, cats, args.n_train, args.n_test_good, args.n_per_defect, args.seed,
                    progress=True)
    print(root)
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from xad.data.mvtec import MVTecDataset, list_categories

    cats = args.category or list_categories(args.data)
    if not cats:
        raise DataError(f"{args.data}: no MVTec AD category found (<category>/train/good/)")
    problems = [p for c in cats for p in MVTecDataset(args.data, c).validate()]
    for p in problems:
        print(p)
    print(f"{len(cats)} categories checked, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


def _data_downscale(args: argparse.Namespace) -> int:
    from xad.data.embedded import downscale_mvtec

    print(downscale_mvtec(args.src, args.out, args.size, args.category))
    return 0


def _train_vaegan(args: argparse.Namespace) -> int:
    from xad.train.vaegan import TrainSettings
    from xad.train.vaegan_run import run

    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                             augment=args.augment, max_minutes=args.minutes)
    print(run(args.data, args.category, args.out, args.preset, settings,
              command="python -m xad " + shlex.join(args.argv)))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xad.audit import AuditParams, run_audit, test_refs
    from xad.data.catalog import resolve_mvtec
    from xad.precision import bf16_is_fast
    from xad.weights import load_model

    model, record = load_model(args.weights, expect="VAEGAN")
    params = AuditParams(setups=tuple(s.strip().upper() for s in args.setups.split(",")),
                         segments=args.segments, samples=args.samples, seed=args.seed,
                         error_variant=args.variant, calibration=args.calibration, limit=args.limit,
                         bf16=bf16_is_fast() if args.precision == "auto" else args.precision == "bf16",
                         engine=args.engine)
    ds = resolve_mvtec(args.data, args.category)
    bar = tqdm(total=len(test_refs(ds, args.limit)), desc="audit", unit="sample")

    def progress(done: int, total: int, sid: str) -> None:
        bar.n = done
        bar.set_postfix_str(sid)
        bar.refresh()

    print(run_audit(ds, model, record.path, params, args.out, args.jobs, progress))
    bar.close()
    return 0


def _report(args: argparse.Namespace) -> int:
    from xad.export import audit_report_html

    try:
        args.out.write_text(audit_report_html(args.run), encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from exc
    print(args.out)
    return 0


def _train_detector(args: argparse.Namespace) -> int:
    from xad.train.detector import DetectorSettings, run

    settings = DetectorSettings(kind=args.kind, steps=args.steps, batch_size=args.batch_size,
                                seed=args.seed, oe=args.oe or "")
    print(run(args.setup, args.out, settings, args.data, args.preset,
              command="python -m xad " + shlex.join(args.argv)))
    return 0


def _train_features(args: argparse.Namespace) -> int:
    from xad.train.features import run

    print(run(args.dataset, args.out, args.steps, args.seed, args.data,
              command="python -m xad " + shlex.join(args.argv)))
    return 0


def _train_cegan(args: argparse.Namespace) -> int:
    from xad.train.cegan import CEGANSettings, run

    settings = CEGANSettings(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                             max_minutes=args.minutes, lr=args.lr, d_lr=args.d_lr)
    overrides = {k: v for k, v in (("lambda_rec", args.lambda_rec), ("lambda_phi", args.lambda_phi),
                                   ("lambda_r", args.lambda_r), ("lambda_gan", args.lambda_gan),
                                   ("alpha_sampling", args.alpha_sampling)) if v is not None}
    if args.colour_mixing:
        if args.diffedit is not None:
            raise DataError("--colour-mixing recolours images; the DiffEdit version's G' maps latents")
        overrides["colour_mixing"] = True
    if args.cycle is not None:
        if args.diffedit is not None and args.cycle != "full":
            raise DataError("--cycle intensity compares RGB images; the DiffEdit version's G' maps latents")
        overrides["cycle"] = args.cycle
    command = "python -m xad " + shlex.join(args.argv)
    if args.diffedit is not None:
        from xad.train import cegan_diffedit as cd

        if not 0.0 < args.strength <= 1.0:
            raise DataError("--strength must be in (0, 1]")
        psi = cd.PsiSettings(target_prompt=args.target_prompt, strength=args.strength,
                             steps=args.edit_steps, guidance=args.guidance, seed=args.seed)
        print(cd.run(args.setup, args.detector, args.diffedit, args.out, settings, psi, args.concepts,
                     args.preset, args.data, args.edit_images, command, overrides, args.eval_limit))
        return 0
    print(run(args.setup, args.detector, args.out, settings, args.concepts, args.preset, args.data,
              command=command, overrides=overrides))
    return 0


def _evaluate_cegan(args: argparse.Namespace) -> int:
    from xad.counterfactual.bundle import load_bundle
    from xad.counterfactual.evaluation import evaluate, evaluate_folder

    if args.out is None:
        folder = evaluate_folder(args.weights, args.data, args.limit)
        print(json.dumps(json.loads((folder / "config.json").read_text())["metrics"], indent=2))
        return 0
    metrics = evaluate(load_bundle(args.weights), args.data, args.limit)
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(args.out)
    return 0


def _counterfactual(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from xad.counterfactual.bundle import find_generator, load_bundle
    from xad.counterfactual.explanation import explain
    from xad.data.transforms import read_image

    b = load_bundle(find_generator(args.setup))
    if not 1 <= args.concept <= b.concepts:
        raise DataError(f"--concept must be in 1..{b.concepts}")
    if not 0.0 <= args.alpha <= 1.0:
        raise DataError("--alpha must be in [0, 1]")
    e = explain(b, read_image(args.image), args.alpha)
    k = args.concept - 1
    Image.fromarray(np.rint(e.counterfactuals[k] * 255).astype(np.uint8)).save(args.out)
    print(json.dumps({"out": str(args.out), "score": round(e.score, 4), "alpha": args.alpha,
                      "concept": args.concept, "counterfactual_score": round(float(e.ce_scores[k]), 4)}))
    return 0


def _train_ldm(args: argparse.Namespace) -> int:
    from xad.train.ldm import LDMSettings, run

    settings = LDMSettings(vq_steps=args.vq_steps, unet_steps=args.unet_steps, clf_steps=args.clf_steps,
                           batch_size=args.batch_size, vq_batch_size=min(64, args.batch_size),
                           clf_pool=args.clf_pool, seed=args.seed)
    print(run(args.setting, args.out, settings, args.preset, args.data,
              command="python -m xad " + shlex.join(args.argv), eval_limit=args.eval_limit))
    return 0


def _train_diffedit(args: argparse.Namespace) -> int:
    from xad.train.diffedit import TextLDMSettings, run

    settings = TextLDMSettings(vae_steps=args.vae_steps, unet_steps=args.unet_steps,
                               batch_size=args.batch_size, seed=args.seed, eval_limit=args.eval_limit)
    print(run(args.dataset, args.out, settings, args.preset,
              command="python -m xad " + shlex.join(args.argv), data_path=args.data))
    return 0


def _diffedit(args: argparse.Namespace) -> int:
    """DiffEdit one image from the source prompt to the target prompt (the psi of the paper)."""
    import numpy as np
    from PIL import Image

    from xad.data.transforms import read_image
    from xad.models import diffedit as de
    from xad.weights import load_model

    if not 0.0 < args.strength <= 1.0:
        raise DataError("--strength must be in (0, 1]")
    if args.steps < 1 or int(args.steps * args.strength) < 1:
        raise DataError("--steps x --strength must be at least 1")
    if args.weights is not None:
        pipe = de.pipeline(load_model(args.weights, expect="TextLDM")[0])
    else:
        pipe = de.load_stable_diffusion(args.sd_model)
    image = de.fit_image(pipe, read_image(args.image))  # the model's own size (32 px; SD 512 px)
    r = de.diffedit(pipe, image, args.source, args.target, strength=args.strength, steps=args.steps,
                    guidance=args.guidance, seed=args.seed)
    Image.fromarray(np.rint(r.edited[0] * 255).astype(np.uint8)).save(args.out)
    print(json.dumps({"out": str(args.out), "mask_mean": round(float(r.masks[0].mean()), 4),
                      "source": args.source, "target": args.target, "strength": args.strength,
                      "steps": args.steps, "seed": args.seed}))
    return 0


def _evaluate_ldm(args: argparse.Namespace) -> int:
    from xad import ldm
    from xad.train.ldm import load_setting

    if args.out is None:
        folder = ldm.evaluate_folder(args.weights, args.data, args.limit)
        print(json.dumps(json.loads((folder / "config.json").read_text())["metrics"], indent=2))
        return 0
    model, record = ldm.load(args.weights)
    data = load_setting(record.meta["setting"], args.data)
    result = ldm.evaluate(model, data, args.t, args.sampler, args.ddim_steps, args.limit, args.seed)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)
    return 0


def _ldm(args: argparse.Namespace) -> int:
    """The latent-diffusion page's figures and tables, headless."""
    import pandas as pd
    from tqdm import tqdm

    from xad import ldm
    from xad.plots import ldm as pl
    from xad.export import write_figure
    from xad.train.ldm import load_setting

    folder = ldm.find(args.weights)
    model, record = ldm.load(folder)
    if not 0 <= args.t < model.config.timesteps:
        raise DataError(f"--t must be in 0..{model.config.timesteps - 1}")
    data = load_setting(record.meta["setting"], args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    name, fmt, written = record.path.name, args.format, []
    v = ldm.sample_view(model, data, args.t, args.sampler, n=args.samples, seed=args.seed)
    written.append(write_figure(pl.reconstructions_figure(v), args.out / f"{name}_reconstructions_t{args.t}.{fmt}"))
    per_sample = pd.DataFrame({"class": v.labels, "anomalous": v.anomalous, "p_different": v.scores,
                               "latent_error": v.latent_errors, "pixel_mse": v.errors})
    (p := args.out / f"{name}_samples_t{args.t}.csv").write_text(per_sample.to_csv(index=False))
    written.append(p)
    grid = ldm.timestep_grid(model, v.images, None, args.sampler, seed=args.seed)
    written.append(write_figure(pl.timestep_grid_figure(v.images, v.labels, v.anomalous, grid, ldm.sweep_ts(model)),
                                args.out / f"{name}_timestep_grid.{fmt}"))
    bar = tqdm(total=len(ldm.sweep_ts(model)), desc="AUROC vs t")
    table = ldm.cached_sweep(folder, data, args.sampler, 50, 500, args.seed, model,
                             progress=lambda i, n: bar.update(i - bar.n))
    bar.close()
    (p := args.out / f"{name}_auroc_vs_t_{args.sampler}.csv").write_text(table.to_csv(index=False))
    written.append(p)
    written.append(write_figure(pl.auroc_curve_figure(table, args.t), args.out / f"{name}_auroc_vs_t_{args.sampler}.{fmt}"))
    if record.metrics:
        (p := args.out / f"{name}_auroc_table.csv").write_text(ldm.auroc_table(record.metrics).to_csv(index=False))
        written.append(p)
    print("\n".join(map(str, written)))
    return 0


def _evaluate_vaegan(args: argparse.Namespace) -> int:
    from xad.train.vaegan_run import evaluate_folder

    print(evaluate_folder(args.weights, args.data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from xad.data.semantic import OE_KINDS

    p = argparse.ArgumentParser(prog="python -m xad", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="datasets found and weights shipped, with their cards' metrics")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--data", action="append", help="an extra dataset root (repeatable)")
    ls.add_argument("--weights", action="append", help="an extra weights root (repeatable)")
    ls.set_defaults(func=_list)
    data = sub.add_parser("data", help="generate, check or downscale datasets").add_subparsers(
        dest="action", required=True)
    gen = data.add_parser("generate", help="write the synthetic industrial set (MVTec layout)")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--category", action="append", help="hexnut, brick (default: all)")
    gen.add_argument("--n-train", type=int, default=200)
    gen.add_argument("--n-test-good", type=int, default=20)
    gen.add_argument("--n-per-defect", type=int, default=10)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_data_generate)
    chk = data.add_parser("check", help="read every file of an MVTec-layout folder, list problems")
    chk.add_argument("--data", type=Path, required=True)
    chk.add_argument("--category", action="append")
    chk.set_defaults(func=_data_check)
    down = data.add_parser("downscale", help="copy an MVTec-layout folder at a smaller size")
    down.add_argument("src", type=Path)
    down.add_argument("out", type=Path)
    down.add_argument("--size", type=int, default=256)
    down.add_argument("--category", action="append")
    down.set_defaults(func=_data_downscale)
    au = sub.add_parser("audit", help="score a test set and explain it (S1/S2/S3), with IoU")
    au.add_argument("--data", default="embedded", help="an MVTec-layout folder, or 'embedded'")
    au.add_argument("--category", required=True)
    au.add_argument("--weights", type=Path, required=True, help="a VAE-GAN weights folder")
    au.add_argument("--setups", default="S1,S2,S3")
    au.add_argument("--samples", type=int, default=1000,
                    help="LIME samples n / SHAP max_evals (the paper: 5000)")
    au.add_argument("--segments", type=int, default=100, help="LIME superpixels k")
    au.add_argument("--seed", type=int, default=1234)
    au.add_argument("--variant", choices=["sse", "max_channel"], default="sse",
                    help="explained function: sum of squared errors, or of channel-max errors")
    au.add_argument("--calibration", choices=["test", "heldout"], default="test",
                    help="fit tau* on the test labels (the paper) or on a held-out half")
    au.add_argument("--limit", type=int, default=None, help="only the first N test samples")
    au.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="the model's precision for the explainers' perturbed images (x' is always "
                         "fp32); auto: bf16 where the CPU computes it natively (AMX), else fp32")
    au.add_argument("--engine", choices=["fast", "reference"], default="fast",
                    help="xad's vectorised engine, or lime/shap/skimage called as published (fp32; slow)")
    au.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    au.add_argument("--out", type=Path, default=None, help="run folder (default: a cache folder)")
    au.set_defaults(func=_audit)
    rp = sub.add_parser("report", help="an HTML report of every sample of an audit run")
    rp.add_argument("--run", type=Path, required=True)
    rp.add_argument("--out", type=Path, required=True)
    rp.set_defaults(func=_report)
    tr = sub.add_parser("train", help="train a model").add_subparsers(dest="family", required=True)
    vg = tr.add_parser("vaegan", help="the VAE-GAN of Rashid et al. on one MVTec-layout category")
    vg.add_argument("--data", default="embedded", help="an MVTec-layout folder, or 'embedded'")
    vg.add_argument("--category", required=True)
    vg.add_argument("--out", type=Path, required=True)
    vg.add_argument("--preset", choices=["cpu", "paper", "tiny"], default="cpu")
    vg.add_argument("--steps", type=int, default=6000)
    vg.add_argument("--batch-size", type=int, default=32)
    vg.add_argument("--seed", type=int, default=0)
    vg.add_argument("--augment", choices=["object", "texture", "none"], default="object")
    vg.add_argument("--minutes", type=float, default=0.0, help="stop after this wall time")
    vg.set_defaults(func=_train_vaegan)
    dt = tr.add_parser("detector", help="a bounded semantic detector (BCE-OE, HSC-OE, DSVDD)")
    dt.add_argument("--setup", required=True, help="mnist:<digit>, cmnist:one+red or cifar10:<class>")
    dt.add_argument("--kind", choices=["bce", "hsc", "dsvdd"], default="bce")
    dt.add_argument("--data", default=None, help="MNIST npz/IDX folder or CIFAR-10 folder (default: embedded MNIST)")
    dt.add_argument("--out", type=Path, required=True)
    dt.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    dt.add_argument("--steps", type=int, default=600)
    dt.add_argument("--batch-size", type=int, default=128)
    dt.add_argument("--seed", type=int, default=0)
    dt.add_argument("--oe", choices=list(OE_KINDS), default=None,
                    help="outlier exposure (default: the setup's; letters-two-colour, for coloured MNIST: coloured OE, "
                         "half of it partly repainted in red, the normal colour, so red specks alone do not "
                         "look normal)")
    dt.set_defaults(func=_train_detector)
    ft = tr.add_parser("features", help="the FID feature extractor of a digit dataset")
    ft.add_argument("--dataset", choices=["mnist", "cmnist"], required=True)
    ft.add_argument("--data", default=None)
    ft.add_argument("--out", type=Path, required=True)
    ft.add_argument("--steps", type=int, default=800)
    ft.add_argument("--seed", type=int, default=0)
    ft.set_defaults(func=_train_features)
    cg = tr.add_parser("cegan", help="the counterfactual generator against a trained detector")
    cg.add_argument("--setup", required=True)
    cg.add_argument("--detector", type=Path, required=True, help="a detector weights folder")
    cg.add_argument("--data", default=None)
    cg.add_argument("--out", type=Path, required=True)
    cg.add_argument("--concepts", type=int, default=2, help="K")
    cg.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    cg.add_argument("--steps", type=int, default=3000)
    cg.add_argument("--batch-size", type=int, default=64)
    cg.add_argument("--seed", type=int, default=0)
    cg.add_argument("--minutes", type=float, default=0.0, help="stop after this wall time")
    cg.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate of G and R")
    cg.add_argument("--d-lr", type=float, default=None,
                    help="the discriminator's learning rate (default: --lr; larger = TTUR)")
    for name in ("lambda-rec", "lambda-phi", "lambda-r", "lambda-gan"):
        cg.add_argument(f"--{name}", type=float, default=None)
    cg.add_argument("--alpha-sampling", choices=["uniform", "extremes"], default=None)
    cg.add_argument("--colour-mixing", action="store_true",
                    help="G may also recolour the whole image (a 3x3 colour matrix per image, from the "
                         "identity); for data where colour is a concept, e.g. coloured MNIST")
    cg.add_argument("--cycle", choices=["full", "intensity"], default=None,
                    help="what L_cyc compares: every channel (full, the default) or the per-pixel max "
                         "over channels (intensity), so a CE that recolours need not keep the old colour")
    cg.add_argument("--diffedit", type=Path, default=None,
                    help="train the DiffEdit version: G' on latents edited by DiffEdit with this "
                         "diffedit weights folder (python -m xad train diffedit)")
    cg.add_argument("--edit-images", type=int, default=2000,
                    help="DiffEdit: training inputs edited once by psi (normal + OE share)")
    cg.add_argument("--target-prompt", default="",
                    help='DiffEdit: the normal class\'s prompt (default from the setup: "digit seven")')
    cg.add_argument("--strength", type=float, default=0.5, help="DiffEdit: mask and inpaint strength")
    cg.add_argument("--edit-steps", type=int, default=20, help="DiffEdit: DDIM steps")
    cg.add_argument("--guidance", type=float, default=7.5, help="DiffEdit: guidance scale")
    cg.add_argument("--eval-limit", type=int, default=500,
                    help="DiffEdit: test anomalies (and normal images) for the card's metrics")
    cg.set_defaults(func=_train_cegan)
    ld = tr.add_parser("ldm", help="latent diffusion + same-class classifier (Wang & Tavakkoli)")
    ld.add_argument("--setting", required=True,
                    help="mnist:<anomalous digit> (the other nine are normal) or cifar10:<normal classes>")
    ld.add_argument("--data", default=None, help="MNIST npz/IDX folder or CIFAR-10 folder (default: embedded MNIST)")
    ld.add_argument("--out", type=Path, required=True)
    ld.add_argument("--preset", choices=["cpu", "paper", "tiny"], default="cpu")
    ld.add_argument("--vq-steps", type=int, default=2000)
    ld.add_argument("--eval-limit", type=int, default=1000,
                    help="test images per class for the evaluation written into the card")
    ld.add_argument("--unet-steps", type=int, default=4000)
    ld.add_argument("--clf-steps", type=int, default=1500)
    ld.add_argument("--clf-pool", type=int, default=3000)
    ld.add_argument("--batch-size", type=int, default=128)
    ld.add_argument("--seed", type=int, default=0)
    ld.set_defaults(func=_train_ldm)
    dd = tr.add_parser("diffedit", help="the small text-conditional latent diffusion model for DiffEdit")
    dd.add_argument("--dataset", choices=["mnist", "cmnist"], required=True,
                    help='captions "digit <name>" (mnist) or "<colour> digit <name>" (cmnist)')
    dd.add_argument("--data", default=None, help="MNIST npz/IDX folder (default: embedded MNIST)")
    dd.add_argument("--out", type=Path, required=True)
    dd.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    dd.add_argument("--vae-steps", type=int, default=2000)
    dd.add_argument("--unet-steps", type=int, default=4000)
    dd.add_argument("--batch-size", type=int, default=64)
    dd.add_argument("--seed", type=int, default=0)
    dd.add_argument("--eval-limit", type=int, default=200,
                    help="test threes edited to sevens for the DiffEdit check on the card")
    dd.set_defaults(func=_train_diffedit)
    ev = sub.add_parser("evaluate", help="measure a model on its test split").add_subparsers(
        dest="family", required=True)
    evg = ev.add_parser("vaegan", help="AUROC, tau*, accuracy; rewrites the card's metrics")
    evg.add_argument("--weights", type=Path, required=True)
    evg.add_argument("--data", default="embedded")
    evg.set_defaults(func=_evaluate_vaegan)
    evc = ev.add_parser("cegan", help="AuROC normal vs CE, FID_N, concept accuracy, MSE/SSIM")
    evc.add_argument("--weights", type=Path, required=True, help="a cegan weights folder")
    evc.add_argument("--data", default=None)
    evc.add_argument("--limit", type=int, default=None,
                     help="test images per class (default 2000; 500 for a DiffEdit generator)")
    evc.add_argument("--out", type=Path, default=None,
                     help="write the metrics JSON here (default: rewrite the folder's card)")
    evc.set_defaults(func=_evaluate_cegan)
    evl = ev.add_parser("ldm", help="AUROC of the method and the baselines; AUROC vs t")
    evl.add_argument("--weights", type=Path, required=True, help="an ldm weights folder")
    evl.add_argument("--data", default=None)
    evl.add_argument("--limit", type=int, default=1000, help="test images per class")
    evl.add_argument("--t", type=int, default=None, help="timestep (default: the model's, 200)")
    evl.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    evl.add_argument("--ddim-steps", type=int, default=50)
    evl.add_argument("--seed", type=int, default=0)
    evl.add_argument("--out", type=Path, default=None,
                     help="write one evaluation's JSON here (default: full evaluation into the card)")
    evl.set_defaults(func=_evaluate_ldm)
    lp = sub.add_parser("ldm", help="reconstructions from t, the Fig. 3 grid and AUROC vs t of a "
                                    "latent-diffusion model (the page's figures and tables)")
    lp.add_argument("--weights", required=True,
                    help="a shipped model (name from `python -m xad list`, e.g. ldm/mnist-0-cpu) or a folder")
    lp.add_argument("--t", type=int, default=200)
    lp.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    lp.add_argument("--samples", type=int, default=4, help="normal and as many anomalous test images")
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--data", default=None)
    lp.add_argument("--format", choices=["png", "svg", "pdf", "html"], default="png")
    lp.add_argument("--out", type=Path, required=True, help="folder for the figures and CSV tables")
    lp.set_defaults(func=_ldm)
    cf = sub.add_parser("counterfactual", help="one image's counterfactual for alpha and concept k")
    cf.add_argument("--setup", required=True,
                    help="a shipped generator (name from `python -m xad list`, e.g. "
                         "cegan/cmnist-one-red-bce) or a cegan weights folder")
    cf.add_argument("--image", type=Path, required=True)
    cf.add_argument("--alpha", type=float, default=0.0)
    cf.add_argument("--concept", type=int, default=1, help="k in 1..K")
    cf.add_argument("--out", type=Path, required=True)
    cf.set_defaults(func=_counterfactual)
    de = sub.add_parser("diffedit", help="DiffEdit one image from a source to a target prompt")
    de.add_argument("--image", type=Path, required=True)
    de.add_argument("--source", required=True, help='the prompt that describes the image, e.g. "digit three"')
    de.add_argument("--target", required=True, help='the prompt to edit towards, e.g. "digit seven"')
    model = de.add_mutually_exclusive_group(required=True)
    model.add_argument("--weights", type=Path,
                       help="a diffedit weights folder (from python -m xad train diffedit)")
    model.add_argument("--sd-model", type=Path,
                       help="a local diffusers-format Stable Diffusion folder (never downloaded)")
    de.add_argument("--strength", type=float, default=0.5, help="mask encode and inpaint strength")
    de.add_argument("--steps", type=int, default=20, help="DDIM steps (x strength are run)")
    de.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")
    de.add_argument("--seed", type=int, default=0)
    de.add_argument("--out", type=Path, required=True, help="the edited image (PNG)")
    de.set_defaults(func=_diffedit)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (DataError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
