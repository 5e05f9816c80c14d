"""Argument checks at the command line's edge: each returns the parsed value or raises
``argparse.ArgumentTypeError`` with the one-line reason, so nothing runs on a bad argument."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from xad.data.transforms import DataError

IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class UsageError(DataError):
    """A bad command-line argument (exit status 2, like every DataError)."""


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An int in [low, high] (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {_range(low, high)}, got {value}")
        return value

    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    """A float in [low, high] ((low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != value or (low is not None and (value < low or (low_open and value == low))) \
                or (high is not None and value > high):
            lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
            raise argparse.ArgumentTypeError(f"must be in {lo}, {'' if high is None else f'{high:g}'}], got {text}")
        return value

    return parse


def _range(low: int | None, high: int | None) -> str:
    if high is None:
        return f">= {low}"
    if low is None:
        return f"<= {high}"
    return f"in {low}..{high}"


def choices_list(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated, non-empty subset of ``allowed`` (case-insensitive), in the given order."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(s.strip().upper() for s in text.split(",") if s.strip()))
        unknown = [s for s in items if s not in allowed]
        if not items or unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or 'empty list'} (choose from {', '.join(allowed)})")
        return items

    return parse


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}")
    return path


def existing_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {'is a file' if path.exists() else 'no such folder'}")
    return path


def output_file(suffixes: tuple[str, ...]) -> Callable[[str], Path]:
    """A file to write: its folder exists, it is not a folder, its extension is one of ``suffixes``."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{path}: is a folder; give a file name ending in {suffixes[0]}")
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{path}: the file name must end in {' or '.join(suffixes)} (it says which format to write)")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"{path}: folder {path.parent} does not exist")
        return path

    return parse


def output_folder(text: str) -> Path:
    """A folder to write into (made if missing): it must not be an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: is a file, not a folder")
    return path


def new_weights_folder(out: Path, overwrite: bool) -> None:
    """Refuse to replace an existing model (config.json or model.safetensors) without --overwrite."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if not overwrite and any((out / n).exists() for n in ("config.json", "model.safetensors", "card.md")):
        raise UsageError(f"--out {out}: already holds a model; pass --overwrite to replace it, or choose "
                         "another folder")
