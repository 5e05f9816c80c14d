"""The audit page's external detector: an ONNX / OpenVINO IR file on disk (under the allowed roots)
or an uploaded ONNX file, opened through xad.detectors. UI only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from pages.common import own_folder
from xad.data.transforms import DataError
from xad.detectors import ExternalDetector, open_detector
from xad.runs import AUDIT_CACHE

DETECTOR_FILE = "An ONNX / OpenVINO detector …"
BACKGROUND_HELP = {"blur": "a blurred copy", "mean": "the image's mean colour",
                   "inpaint": "inpainted from the surroundings (skimage, biharmonic)"}


@dataclass(frozen=True)
class DetectorRecord:
    """What the page shows of an external detector where it shows a weights folder's record."""

    path: ExternalDetector
    name: str
    meta: dict = field(default_factory=dict)
    cls: str = "external detector"


@st.cache_resource(show_spinner="Opening the detector …", max_entries=4)
def _open(path: str, background: str, mtime: float) -> ExternalDetector:  # noqa: ARG001 - mtime: reload on change
    return open_detector(path, background_name=background)


def _uploaded(data: bytes, name: str) -> str:
    """An uploaded ONNX file kept under the cache by its hash (the runtimes open files, not bytes)."""
    folder = AUDIT_CACHE.parent / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}-{Path(name).stem[:40]}.onnx"
    if not path.exists():
        path.write_bytes(data)
    return str(path)


def pick_detector() -> ExternalDetector:
    """The file (typed path or upload) and the background; DataError until one is given."""
    up = st.file_uploader("Upload an ONNX detector (e.g. anomalib's export)", type=["onnx"], key="audit_detector_upload")
    typed = own_folder(st.text_input("… or a file on this machine (.onnx, or .xml beside its .bin)",
                                     key="audit_detector_path"), "detector file")
    background = st.selectbox("Hidden segments show", list(BACKGROUND_HELP), format_func=BACKGROUND_HELP.get,
                              key="audit_detector_background",
                              help="The explained function is the detector's score; a VAE-GAN's audit hides "
                                   "segments with its reconstruction, an external detector has none.")
    path = _uploaded(up.getvalue(), up.name) if up is not None else typed
    if not path:
        raise DataError("Upload an ONNX detector or give a file: input float32 (N, 3, H, W) in [0, 1], "
                        "outputs pred_score and anomaly_map (anomalib's names).")
    return _open(path, background, Path(path).stat().st_mtime)


def record_for(detector: ExternalDetector) -> DetectorRecord:
    return DetectorRecord(detector, Path(detector.source).name)
