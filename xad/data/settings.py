"""The one parser of setting (setup) names: which classes of which dataset are normal and which
anomalous, in one syntax for every page and command.

A name says the role of the classes it lists::

    mnist-anomalous:0        MNIST, digit 0 anomalous, the other nine normal (many vs one)
    mnist-normal:7           MNIST, digit 7 normal, the other nine anomalous (one vs rest)
    cifar10-normal:01234     CIFAR-10, classes 0-4 normal, the rest anomalous
    cifar10-anomalous:cat    CIFAR-10, class cat anomalous, the rest normal
    cmnist-normal:one+red    coloured MNIST, normal = the digit one or any red digit

The old forms (``mnist:0``, ``cifar10:01234``, ``cmnist:one+red``) did not say which: the
latent-diffusion side read the digit as anomalous, the counterfactual side as normal. They are
still accepted where the caller says how to read them (``legacy=``), with a one-line deprecation
message naming the new form.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from xad.data.transforms import DataError

Role = Literal["normal", "anomalous"]
DATASETS = ("mnist", "cmnist", "cifar10")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SYNTAX = ("mnist-anomalous:<digit>, mnist-normal:<digit>, cifar10-normal:<classes>, "
          "cifar10-anomalous:<classes>, cmnist-normal:one+red")
_warned: set[str] = set()


@dataclass(frozen=True)
class Setting:
    """A parsed setting. ``classes``: the listed classes (digits / CIFAR-10 ids), whose role is
    ``role``; ``normal`` / ``anomalous``: all ten split by it; ``name``: the canonical form."""

    dataset: str
    role: Role
    classes: tuple[int, ...]
    name: str
    rule: str = ""  # cmnist only: "one+red"

    @property
    def normal(self) -> tuple[int, ...]:
        return self.classes if self.role == "normal" else tuple(c for c in range(10) if c not in self.classes)

    @property
    def anomalous(self) -> tuple[int, ...]:
        return self.classes if self.role == "anomalous" else tuple(c for c in range(10) if c not in self.classes)

    @property
    def legacy(self) -> str:
        """The old ``<dataset>:<arg>`` form (what older weights folders store)."""
        return f"{self.dataset}:{self.name.partition(':')[2]}"

    def describe(self) -> str:
        """A sentence for the UI and cards."""
        if self.dataset == "cmnist":
            return ("Coloured MNIST, normal = the digit one in any colour or any red digit; "
                    "other digits in green or blue are anomalous")
        if self.dataset == "mnist":
            (d,) = self.classes
            return (f"MNIST, digit {d} anomalous, the other nine normal (many vs one)" if self.role == "anomalous"
                    else f"MNIST, digit {d} normal, the other nine digits anomalous (one vs rest)")
        names = ", ".join(CIFAR10_CLASSES[c] for c in self.classes)
        other = "anomalous" if self.role == "normal" else "normal"
        return f"CIFAR-10, {names} {self.role}, the other classes {other}"


def _classes(dataset: str, arg: str, raw: str) -> tuple[int, ...]:
    if dataset == "mnist":
        if arg not in [str(d) for d in range(10)]:
            raise DataError(f"{raw}: name one digit 0..9, e.g. mnist-anomalous:0")
        return (int(arg),)
    if arg in CIFAR10_CLASSES:
        return (CIFAR10_CLASSES.index(arg),)
    if not arg or not arg.isdigit() or len(set(arg)) != len(arg) or len(arg) > 9:
        raise DataError(f"{raw}: name CIFAR-10 classes as distinct digits (e.g. 01234) or one class name")
    return tuple(sorted(int(c) for c in arg))


def parse(name: str, legacy: Role | None = None, warn: bool = True) -> Setting:
    """Parse a setting name. ``legacy``: how to read an old ``<dataset>:<arg>`` name ("anomalous":
    the latent-diffusion reading, "normal": the counterfactual one); None refuses old names.
    ``warn``: print the one-line deprecation message for an old name (once per name)."""
    raw = str(name).strip()
    head, sep, arg = raw.partition(":")
    if not sep:
        raise DataError(f"{raw!r}: a setting is <dataset>-<normal|anomalous>:<classes> ({SYNTAX})")
    dataset, dash, role = head.partition("-")
    if dataset not in DATASETS:
        raise DataError(f"unknown setting {raw!r} (use {SYNTAX})")
    if not dash:
        if legacy is None:
            raise DataError(f"{raw!r} does not say which classes are normal: write {dataset}-normal:{arg} "
                            f"or {dataset}-anomalous:{arg}")
        role = "normal" if dataset == "cmnist" else legacy
    if role not in ("normal", "anomalous"):
        raise DataError(f"{raw!r}: the role after '{dataset}-' is 'normal' or 'anomalous' ({SYNTAX})")
    if dataset == "cmnist":
        if arg != "one+red" or role != "normal":
            raise DataError(f"{raw}: the coloured MNIST setting is cmnist-normal:one+red")
        s = Setting("cmnist", "normal", (1,), "cmnist-normal:one+red", "one+red")
    else:
        classes = _classes(dataset, arg, raw)
        text = arg if arg in CIFAR10_CLASSES else "".join(map(str, classes))
        s = Setting(dataset, role, classes, f"{dataset}-{role}:{text}")  # type: ignore[arg-type]
    if not dash and warn and raw not in _warned:
        _warned.add(raw)
        print(f"xad: setting {raw!r} is deprecated, write {s.name!r}", file=sys.stderr)
    return s


def canonical(name: str, legacy: Role | None = None) -> str:
    """The canonical form of a setting name (old forms read as ``legacy``, silently)."""
    return parse(name, legacy, warn=False).name
