"""A run folder while it is written: one writer at a time (a lock file holding its PID), files
replaced atomically, no empty folders left behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xad.data.transforms import DataError


def remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only if empty
    except OSError:
        pass


@contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold ``<run>/.lock`` (holding the PID) while writing a run folder; a second writer gets a
    DataError naming the PID. A lock left by a process that no longer runs is taken over."""
    run.mkdir(parents=True, exist_ok=True)
    lock = run / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = _lock_pid(lock)
            if pid is not None and _alive(pid):
                raise DataError(f"{run}: run folder in use by PID {pid}; wait for it or choose another --out") \
                    from None
            lock.unlink(missing_ok=True)  # stale: its writer is gone
    else:
        raise DataError(f"{run}: could not take the run folder's lock {lock}")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: Path, write: Callable) -> None:
    """Write ``path`` through a temporary file and a rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)
