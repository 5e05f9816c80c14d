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
    from xad.weights import load_model

    model, record = load_model(args.weights, expect="VAEGAN")
    params = AuditParams(setups=tuple(s.strip().upper() for s in args.setups.split(",")),
                         segments=args.segments, samples=args.samples, seed=args.seed,
                         error_variant=args.variant, calibration=args.calibration, limit=args.limit,
                         bf16=args.precision == "bf16", engine=args.engine)
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


def _evaluate_vaegan(args: argparse.Namespace) -> int:
    from xad.train.vaegan_run import evaluate_folder

    print(evaluate_folder(args.weights, args.data))
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    au.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                    help="the model's precision for the explainers' perturbed images (x' is always fp32)")
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
    ev = sub.add_parser("evaluate", help="measure a model on its test split").add_subparsers(
        dest="family", required=True)
    evg = ev.add_parser("vaegan", help="AUROC, tau*, accuracy; rewrites the card's metrics")
    evg.add_argument("--weights", type=Path, required=True)
    evg.add_argument("--data", default="embedded")
    evg.set_defaults(func=_evaluate_vaegan)
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
