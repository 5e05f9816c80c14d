"""``list`` and ``data generate|check|downscale``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xad.cli.checks import UsageError, existing_folder, integer, output_folder
from xad.data.transforms import DataError


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
        raise UsageError(f"unknown category {', '.join(unknown)} (available: {', '.join(CATEGORIES)})")
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

    src, out = args.src.resolve(), args.out.resolve()
    if out == src or src in out.parents:
        raise UsageError(f"{args.out}: the copy must go outside the source folder {args.src} "
                         "(it would overwrite the source images)")
    print(downscale_mvtec(args.src, args.out, args.size, args.category))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ls = sub.add_parser("list", help="datasets found and weights shipped, with their cards' metrics")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--data", action="append", help="an extra dataset root (repeatable)")
    ls.add_argument("--weights", action="append", help="an extra weights root (repeatable)")
    ls.set_defaults(func=_list)
    data = sub.add_parser("data", help="generate, check or downscale datasets").add_subparsers(
        dest="action", required=True)
    gen = data.add_parser("generate", help="write the synthetic industrial set (MVTec layout)")
    gen.add_argument("--out", type=output_folder, required=True)
    gen.add_argument("--category", action="append", help="hexnut, washer, tablet, capsule, bottle, screwcap, brick (default: all)")
    gen.add_argument("--n-train", type=integer(1), default=200)
    gen.add_argument("--n-test-good", type=integer(1), default=20)
    gen.add_argument("--n-per-defect", type=integer(1), default=None,
                     help="test images per defect type (default: 10; bottle 20, as MVTec AD's bottle)")
    gen.add_argument("--seed", type=integer(0), default=0)
    gen.set_defaults(func=_data_generate)
    chk = data.add_parser("check", help="read every file of an MVTec-layout folder, list problems")
    chk.add_argument("--data", type=Path, required=True)
    chk.add_argument("--category", action="append")
    chk.set_defaults(func=_data_check)
    down = data.add_parser("downscale", help="copy an MVTec-layout folder at a smaller size")
    down.add_argument("src", type=existing_folder)
    down.add_argument("out", type=output_folder)
    down.add_argument("--size", type=integer(8), default=256)
    down.add_argument("--category", action="append")
    down.set_defaults(func=_data_downscale)
