"""The weights registry: save, load and list models as a folder of

- ``config.json``: architecture class, its config (the constructor's arguments), preset, image
  size, training data, seed, xad version, measured metrics;
- ``model.safetensors``: the state dict (fp16 allowed; loaded back as fp32);
- ``card.md``: the exact command, data, steps, wall time and measured metrics, for people.

Architectures register themselves with :func:`register`; their constructor takes one frozen
dataclass config. Loading never unpickles: safetensors only, and the config is checked against
the architecture before any tensor is touched.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from xad import REPO_ROOT, __version__

WEIGHTS_DIR = REPO_ROOT / "weights"
_ARCHITECTURES: dict[str, type[torch.nn.Module]] = {}


class WeightsError(ValueError):
    """A weights folder that cannot be used; the message names the folder or file."""


def register(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
    """Class decorator: make an architecture loadable. ``cls.Config`` must be a dataclass."""
    if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
        raise TypeError(f"{cls.__name__}.Config must be a dataclass")
    _ARCHITECTURES[cls.__name__] = cls
    return cls


def architectures() -> dict[str, type[torch.nn.Module]]:
    """All registered architectures (imports every module of ``xad.models`` once)."""
    import xad.models

    for mod in pkgutil.iter_modules(xad.models.__path__):
        importlib.import_module(f"xad.models.{mod.name}")
    return dict(_ARCHITECTURES)


@dataclass(frozen=True)
class ModelRecord:
    """What a weights folder says about its model (read without loading tensors)."""

    path: Path
    cls: str
    family: str
    preset: str
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    card: str = ""

    @property
    def name(self) -> str:
        return f"{self.family}/{self.path.name}"


def save_model(model: torch.nn.Module, folder: str | Path, *, family: str, card: str,
               preset: str = "custom", metrics: dict[str, Any] | None = None,
               meta: dict[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Write ``config.json``, ``model.safetensors`` (floats cast to ``dtype``) and ``card.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.asdict(model.config)
    record = {"class": type(model).__name__, "family": family, "preset": preset, "config": cfg,
              "dtype": str(dtype).removeprefix("torch."), "xad_version": __version__,
              **(meta or {}), "metrics": metrics or {}}
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    (folder / "card.md").write_text(card.rstrip() + "\n")
    return folder


def write_metrics(folder: str | Path, metrics: dict[str, Any]) -> None:
    """Replace the measured metrics in a weights folder's config.json (the tensors are untouched)."""
    write_entry(folder, "metrics", metrics)


def write_entry(folder: str | Path, key: str, value: Any) -> None:
    """Set one top-level entry of a weights folder's config.json (a measurement kept beside the
    metrics, e.g. ``bf16_agreement``: re-evaluating the metrics leaves it alone)."""
    path = Path(folder) / "config.json"
    raw = json.loads(path.read_text())
    raw[key] = value
    path.write_text(json.dumps(raw, indent=2) + "\n")


def read_record(folder: str | Path) -> ModelRecord:
    """Read ``config.json`` and ``card.md`` of a weights folder; WeightsError if unusable."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise WeightsError(f"{folder}: not a weights folder (no config.json)")
    try:
        raw = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{cfg_path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict) or "class" not in raw:
        raise WeightsError(f"{cfg_path}: needs a 'class' name and a 'config' object")
    card = (folder / "card.md").read_text() if (folder / "card.md").is_file() else ""
    meta = {k: v for k, v in raw.items() if k not in ("class", "family", "preset", "config", "metrics")}
    return ModelRecord(folder, str(raw["class"]), str(raw.get("family", "")),
                       str(raw.get("preset", "custom")), raw["config"], meta,
                       raw.get("metrics") or {}, card)


def build_config(cls: type[torch.nn.Module], values: dict[str, Any], where: Path) -> Any:
    """The architecture's config from a dict; WeightsError naming unknown or missing fields."""
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(values) - set(fields))
    required = {n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(values))
    if unknown or missing:
        raise WeightsError(f"{where}: config does not fit {cls.__name__} "
                           f"(unknown fields: {unknown or 'none'}; missing: {missing or 'none'})")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    for name, value in values.items():
        if (problem := _field_problem(fields[name], value)) is not None:
            raise WeightsError(f"{where}: invalid config for {cls.__name__}: {name} = {value!r} ({problem})")
    try:
        return cls.Config(**values)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: invalid config for {cls.__name__}: {exc}") from exc


def _field_problem(f: dataclasses.Field, value: Any) -> str | None:
    """Why ``value`` cannot be the config field ``f`` (None if it can). Types follow the field's
    default; a whole number whose default is positive is a size or a count and must be >= 1."""
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    if default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected true or false"
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected a whole number"
        return "must be >= 1" if default > 0 and value < 1 else None
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        return None if ok else "expected a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "expected a text"
    if isinstance(default, tuple) and default and all(isinstance(v, int) for v in default):
        if not isinstance(value, tuple) or not value or \
                not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
            return "expected a list of whole numbers >= 1"
    return None


def load_model(folder: str | Path, expect: str | None = None) -> tuple[torch.nn.Module, ModelRecord]:
    """Rebuild the model of a weights folder in eval mode, fp32. ``expect``: required class name."""
    record = read_record(folder)
    known = architectures()
    if record.cls not in known:
        raise WeightsError(f"{record.path}: unknown architecture {record.cls!r} "
                           f"(known: {', '.join(sorted(known))})")
    if expect is not None and record.cls != expect:
        raise WeightsError(f"{record.path}: holds a {record.cls}, but a {expect} is needed here")
    cls = known[record.cls]
    model = cls(build_config(cls, record.config, record.path / "config.json"))
    _load_state(model, record.path / "model.safetensors")
    return model.eval(), record


def _load_state(model: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise WeightsError(f"{path.parent}: no model.safetensors")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{name}: {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
                           for name, keys in (("missing", missing), ("unexpected", unexpected),
                                              ("wrong shape", wrong)) if keys)
        raise WeightsError(f"{path}: weights do not match the config's architecture ({detail})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def find_model(name: str | Path, records: list[ModelRecord], what: str) -> Path:
    """A weights folder from a shipped name ("<family>/<folder>" or "<folder>") among ``records``,
    or an existing folder path; WeightsError naming the shipped ones otherwise."""
    for m in records:
        if str(name) in (m.name, m.path.name):
            return m.path
    if Path(name).is_dir():
        return Path(name)
    known = ", ".join(m.name for m in records) or "none shipped"
    raise WeightsError(f"{name}: no such {what} (shipped: {known}) and not a folder")


def list_models(roots: list[str | Path] | None = None) -> tuple[list[ModelRecord], list[str]]:
    """Every weights folder (a ``config.json``) under ``roots`` (default: the shipped weights).

    Returns (records sorted by name, problems as messages).
    """
    records, problems = [], []
    for root in [Path(r) for r in (roots or [WEIGHTS_DIR])]:
        if not root.is_dir():
            continue
        for cfg in sorted(root.rglob("config.json")):
            try:
                records.append(read_record(cfg.parent))
            except WeightsError as exc:
                problems.append(str(exc))
    return sorted(records, key=lambda r: r.name), problems
