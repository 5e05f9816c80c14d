"""xad — explanation audits of image anomaly detectors.

The core package: data, models, explanations, metrics, export. It never imports streamlit; the
dashboard (``dashboard.py`` and ``pages/``) and the command line (``python -m xad``) call into it.
"""

__version__ = "0.1.0"

import os
from pathlib import Path

#: The repository root (where ``data/`` and ``weights/`` live in a checkout).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The one cache root: ``$XAD_CACHE``, default ``runs/`` in the checkout; each cache is a folder
#: below it (``audits``, ``diffedit-psi``, ``ldm``).
CACHE_ROOT = Path(os.environ.get("XAD_CACHE", REPO_ROOT / "runs"))


def portable(path: str | Path) -> str:
    """A path as files written for others record it: relative to the repository when inside it
    (so shipped runs and cards work in any clone), absolute otherwise."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def resolve(path: str | Path) -> Path:
    """The inverse of :func:`portable`: a relative path is taken from the repository root."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path
