"""Which folders the dashboard may open: the allowed roots, and confinement of a typed path to them.

A dashboard is a server: whoever reaches it may type any path into "Add a dataset folder" or
"Open a weights folder". Paths are resolved (symlinks followed) and must lie under an allowed root:
the embedded data and shipped weights, the result cache, every ``$XAD_DATA`` root, and the folders
the operator lists in ``$XAD_ALLOWED_ROOTS`` (``os.pathsep``-separated). Outside them the answer is
one message that is the same whether the path exists or not, so nothing about the rest of the file
system leaks. The command line is not confined: it runs as the user who typed it.
"""

from __future__ import annotations

import os
from pathlib import Path

from xad import REPO_ROOT
from xad.data.transforms import DataError

ENV_VAR = "XAD_ALLOWED_ROOTS"


def _env_paths(name: str) -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(name, "").split(os.pathsep) if p.strip()]


def allowed_roots() -> list[Path]:
    """The resolved folders a page may open below (see the module's docstring)."""
    cache = Path(os.environ.get("XAD_CACHE", REPO_ROOT / "runs"))
    roots = [REPO_ROOT / "data", REPO_ROOT / "weights", cache, *_env_paths("XAD_DATA"), *_env_paths(ENV_VAR)]
    # XAD_DATA may name a file (mnist.npz): its folder is not opened, the file itself is allowed
    return list(dict.fromkeys(r.resolve() for r in roots))


def is_allowed(path: str | Path, roots: list[Path] | None = None) -> bool:
    resolved = Path(path).expanduser().resolve()
    return any(resolved == r or r in resolved.parents for r in (roots or allowed_roots()))


def confine(path: str | Path, what: str = "folder") -> Path:
    """``path`` resolved, if it lies under an allowed root; else a DataError that says the same
    for a path that exists and for one that does not."""
    text = str(path).strip()
    if not text or not is_allowed(text):
        raise DataError(f"{text or '(empty)'}: this dashboard opens no {what} there; it opens only folders "
                        f"under its allowed roots (the operator adds more with {ENV_VAR})")
    return Path(text).expanduser().resolve()
