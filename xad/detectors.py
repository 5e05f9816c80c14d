"""The detector contract: a detector maps images (N, H, W, 3) in [0, 1] to anomaly scores (N,) and,
where it has one, anomaly maps (N, H, W); its input size and value range are part of it.

Implementations: xad's VAE-GAN (score alpha = max(m), map m; audited through its reconstruction
error as the paper does, :mod:`xad.audit`), an ONNX model or an OpenVINO IR file
(:class:`FileDetector`, anomalib's export naming recognised: input ``input`` float32 (N, 3, H, W)
in [0, 1], outputs ``pred_score`` and ``anomaly_map``), and a Python callable
(:class:`CallableDetector`). An external detector is explained through its own score: the
explained function is the score of the perturbed image, and hidden segments take their values
from a *background* (:mod:`xad.explain.backgrounds`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xad.data.transforms import DataError
from xad.explain.backgrounds import BACKGROUNDS, background

SCORE_NAMES = ("pred_score", "score", "anomaly_score")
MAP_NAMES = ("anomaly_map", "map")


@dataclass
class ExternalDetector:
    """A detector that is not a VAE-GAN: ``predict(x)`` -> (scores (N,), maps (N, H, W) or None)
    for float32 images (N, size, size, 3) in [0, 1]; ``background`` names the values hidden
    segments take (``reference``: a normal image of the user's, (size, size, 3) in [0, 1])."""

    kind: str
    source: str
    size: int
    predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    background: str = "blur"
    reference: np.ndarray | None = None
    batch_size: int = 32
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS or self.background == "reconstruction":
            raise DataError(f"background {self.background!r}: choose one of "
                            f"{', '.join(b for b in BACKGROUNDS if b != 'reconstruction')} for an external detector")
        if self.background == "reference" and self.reference is None:
            raise DataError("background 'reference' needs a reference image of a normal part")

    def scores_and_maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """images (N, H, W, 3) uint8 or float in [0, 1] -> scores (N,) float64, maps (N, H, W) float32."""
        x = np.asarray(images, np.float32) / (255.0 if np.asarray(images).dtype == np.uint8 else 1.0)
        scores, maps = [], []
        for i in range(0, len(x), self.batch_size):
            s, m = self.predict(x[i: i + self.batch_size])
            scores.append(np.asarray(s, np.float64).reshape(-1))
            maps.append(None if m is None else np.asarray(m, np.float32).reshape(len(s), *x.shape[1:3]))
        if not scores:
            return np.zeros(0), None
        return np.concatenate(scores), None if maps[0] is None else np.concatenate(maps)

    def explained(self, x: np.ndarray) -> np.ndarray:
        """The explained function f(x~): the detector's score of each perturbed image (N, H, W, 3)."""
        return self.scores_and_maps(x)[0]

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """The values hidden segments of image x (H, W, 3) float take (:mod:`xad.explain.backgrounds`)."""
        return background(self.background, x, self.reference)

    def fingerprint(self) -> str:
        """What makes this detector's numbers: its file bytes (or callable's name), options, background."""
        h = hashlib.sha256(f"{self.kind}|{self.size}|{self.background}|{sorted(self.details.items())}".encode())
        for p in self.details.get("files", []):
            h.update(Path(p).read_bytes())
        if self.reference is not None:
            h.update(np.ascontiguousarray(self.reference, np.float32).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """A card-like summary for run.json: file, hash, input size, outputs used, background."""
        return {"kind": self.kind, "source": self.source, "input_size": self.size, "value_range": [0, 1],
                "background": self.background, "fingerprint": self.fingerprint(),
                **{k: v for k, v in self.details.items() if k != "files"}}


def _pick(names: tuple[str, ...], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path,
          required: bool) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise DataError(f"{path}: no output named {wanted!r} (the file has {', '.join(names)})")
        return wanted
    found = next((n for n in candidates if n in names), None)
    if found is None and required:
        raise DataError(f"{path}: no {what} output (looked for {', '.join(candidates)}; the file has "
                        f"{', '.join(names)}); name it with --score-output")
    return found


def _static_size(shape: tuple, path: Path, input_size: int | None) -> int:
    dims = [str(d) for d in shape]
    if len(dims) != 4:
        raise DataError(f"{path}: input has rank {len(dims)} ({'x'.join(dims)}); a detector takes images "
                        "(N, 3, H, W)")
    if dims[1] not in ("3", "?", "-1") and not dims[1].startswith(("?", "-")):
        raise DataError(f"{path}: input has {dims[1]} channels; a detector takes RGB images (N, 3, H, W)")
    h, w = dims[2], dims[3]
    if h.isdigit() and w.isdigit():
        if h != w:
            raise DataError(f"{path}: input is {w} x {h}; xad audits square inputs")
        if input_size is not None and input_size != int(h):
            raise DataError(f"{path}: the file's input is {h} x {w} px, not --input-size {input_size}")
        return int(h)
    if input_size is None:
        raise DataError(f"{path}: the input size is not fixed in the file ({'x'.join(dims)}); pass --input-size")
    return input_size


def _check_format(path: Path) -> None:
    """Refuse a file that is not what its suffix says before a runtime sees it (their messages are
    long C++ traces)."""
    if path.suffix == ".onnx":
        import onnx
        from google.protobuf.message import DecodeError

        try:
            onnx.load(str(path), load_external_data=False)
        except (DecodeError, OSError, ValueError, RuntimeError) as exc:
            raise DataError(f"{path}: not an ONNX model (it does not parse: {type(exc).__name__})") from None
    elif path.suffix == ".xml":
        import xml.etree.ElementTree as ET

        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            raise DataError(f"{path}: not an OpenVINO IR (not XML)") from None
        if root.tag != "net":
            raise DataError(f"{path}: not an OpenVINO IR (its root element is <{root.tag}>, not <net>)")
        if not path.with_suffix(".bin").is_file():
            raise DataError(f"{path}: its weights {path.with_suffix('.bin').name} are missing beside it")


def open_detector(path: str | Path, score_output: str | None = None, map_output: str | None = None,
                  backend: str = "auto", background_name: str = "blur", reference: np.ndarray | None = None,
                  input_size: int | None = None) -> ExternalDetector:
    """An ONNX file or an OpenVINO IR (``.xml`` + ``.bin``) as a detector; input and output names and
    shapes are read from the file (anomalib's ``pred_score`` / ``anomaly_map`` found by themselves)."""
    from xad.backends import BackendError, open_file

    path = Path(path)
    _check_format(path)
    try:
        runner = open_file(path, backend)
    except BackendError as exc:
        raise DataError(str(exc)) from None
    size = _static_size(tuple(getattr(runner, "input_shape", ())), path, input_size)
    names = tuple(runner.output_names)
    score_name = _pick(names, score_output, SCORE_NAMES, "score", path, required=True)
    map_name = _pick(names, map_output, MAP_NAMES, "anomaly map", path, required=False)
    order = {n: i for i, n in enumerate(names)}

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32))
        s = np.asarray(out[order[score_name]]).reshape(len(x), -1)
        if s.shape[1] != 1:
            raise DataError(f"{path}: output {score_name!r} has {s.shape[1]} values per image; a score is one")
        m = None if map_name is None else np.asarray(out[order[map_name]]).reshape(len(x), size, size)
        return s[:, 0], m

    files = [str(path)] + ([str(path.with_suffix(".bin"))] if path.suffix == ".xml" else [])
    return ExternalDetector("onnx" if path.suffix == ".onnx" else "openvino", str(path), size, predict,
                            background_name, reference,
                            details={"files": files, "backend": runner.backend, "input": runner.input_name,
                                     "score_output": score_name, "map_output": map_name})


def callable_detector(fn: Callable[[np.ndarray], np.ndarray], size: int,
                      map_fn: Callable[[np.ndarray], np.ndarray] | None = None, name: str = "callable",
                      background_name: str = "blur", reference: np.ndarray | None = None) -> ExternalDetector:
    """A user's Python function as a detector (the API): fn(images (N, size, size, 3) float in [0, 1])
    -> scores (N,), optionally map_fn -> maps (N, size, size)."""
    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return np.asarray(fn(x)), None if map_fn is None else np.asarray(map_fn(x))

    return ExternalDetector("callable", name, size, predict, background_name, reference,
                            details={"callable": getattr(fn, "__qualname__", name)})


def audit_card(detector: ExternalDetector, run: Path) -> str:
    """The card-like summary written next to an audit of an external model: what was audited (file,
    hash, input, outputs used, background) and the run's headline numbers, read from its files."""
    import json

    import pandas as pd

    info = json.loads((Path(run) / "run.json").read_text())
    r = pd.read_csv(Path(run) / "results.csv")
    bad = r[r["label"] == "anomalous"]
    d = detector.describe()
    ious = " · ".join(f"{s} {bad[f'iou_{s}'].mean():.3f}" for s in info["params"]["setups"])
    own = "no anomaly map output" if d.get("map_output") is None else f"{bad['iou_map'].mean():.3f}"
    return (f"# Audit of an external detector — {info['category']}\n\n"
            f"- **File:** `{d['source']}` ({d['kind']}, fingerprint `{d['fingerprint']}`)\n"
            f"- **Input:** `{d.get('input')}` float32 (N, 3, {d['input_size']}, {d['input_size']}) in [0, 1]; "
            f"run by {d.get('backend')}\n"
            f"- **Outputs used:** score `{d.get('score_output')}`, anomaly map `{d.get('map_output')}`\n"
            f"- **Background of hidden segments:** {d['background']}\n"
            f"- **Test images:** {len(r)} ({info['confusion']}); image AUROC {info['auroc']:.3f}\n"
            f"- **Mean max-IoU over {len(bad)} anomalous images:** {ious}; the detector's own map: {own}\n")
