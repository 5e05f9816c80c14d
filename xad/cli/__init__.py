"""``python -m xad <command>``: the same functions the dashboard calls, headless.

Progress goes to stderr; the result (a path or JSON) to stdout. Bad input: ``xad: <one line>`` on
stderr and exit status 2, never a traceback; Ctrl-C: exit 130, and the same command resumes.
One module per command group: ``data`` (list, data …), ``audit`` (audit, report), ``train``,
``runs`` (list, compare), ``evaluate``, ``explore`` (counterfactual, diffedit, ldm).
"""

from __future__ import annotations

import argparse
import sys

from xad.cli import audit, data, evaluate, explore, runs, train
from xad.cli.checks import UsageError
from xad.data.transforms import DataError
from xad.weights import WeightsError

GROUPS = (data, audit, runs, train, evaluate, explore)
INTERRUPTED = "interrupted; rerun the same command to resume"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument raises :class:`UsageError` (one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog.removeprefix('python -m xad ')}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m xad", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def _close_progress_bars() -> None:
    """End any tqdm bar's line so a message never lands on it."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        return args.func(args)
    except (DataError, WeightsError) as exc:
        _close_progress_bars()
        print(f"xad: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print(f"xad: {INTERRUPTED}", file=sys.stderr)
        return 130
