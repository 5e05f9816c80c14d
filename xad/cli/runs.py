"""``runs list`` (every finished audit) and ``runs compare A B`` (paired test over common samples)."""

from __future__ import annotations

import argparse
import json

from xad.cli.checks import existing_folder


def _runs_list(args: argparse.Namespace) -> int:
    from xad.runs import list_runs

    table, problems = list_runs(args.folder or [])
    if args.json:
        print(json.dumps({"runs": table.to_dict("records"), "problems": problems}, indent=2, default=str))
        return 0
    print(table.drop(columns=["path"], errors="ignore").to_string(index=False) if len(table) else "No audit runs found.")
    for p in problems:
        print(f"  problem: {p}")
    return 0


def _runs_compare(args: argparse.Namespace) -> int:
    from xad.runs import compare

    c = compare(args.a, args.b)
    if args.json:
        print(json.dumps(c.to_json(), indent=2, default=str))
        return 0
    print(f"A: {c.a}\nB: {c.b}\n")
    print(c.setups.to_string(index=False))
    print(f"\n{len(c.verdicts)} verdicts changed; {len(c.iou_changes)} max-IoU moves over 0.2")
    if len(c.verdicts):
        print(c.verdicts.to_string(index=False))
    if len(c.iou_changes):
        print(c.iou_changes.to_string(index=False))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="finished audits: list them, compare two").add_subparsers(
        dest="action", required=True)
    ls = runs.add_parser("list", help="every audit in the cache, beside the shipped weights and in --folder")
    ls.add_argument("--folder", action="append", type=existing_folder,
                    help="a run folder or a folder of run folders (repeatable)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_runs_list)
    cp = runs.add_parser("compare", help="run B against run A: per-setup mean max-IoU, Wilcoxon test, "
                                         "changed verdicts")
    cp.add_argument("a", type=existing_folder)
    cp.add_argument("b", type=existing_folder)
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=_runs_compare)
