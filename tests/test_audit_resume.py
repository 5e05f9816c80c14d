"""Runs that cannot mix: real interrupted audits on a tiny model resumed with other parameters or
another --limit give a clean run's results; a second writer is refused; nothing empty is left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.test_audit import interrupt_after
from xad import audit
from xad.data.mvtec import MVTecDataset
from xad.data.transforms import DataError
from xad.weights import load_model

PARAMS = audit.AuditParams(setups=("S1", "S3"), segments=6, samples=20)
COLS = "^(id|label|score|predicted|iou|theta)"


def _run(ds, model, weights, params, out, monkeypatch=None, stop_after=None, notices=None):  # noqa: ANN001, ANN202
    if stop_after is not None:
        interrupt_after(monkeypatch, stop_after, audit.explain_sample)
        with pytest.raises(KeyboardInterrupt):
            audit.run_audit(ds, model, weights, params, out, notice=notices.append if notices is not None else None)
        monkeypatch.undo()
        return None
    return audit.run_audit(ds, model, weights, params, out, notice=notices.append if notices is not None else None)


@pytest.fixture
def setting(tiny_industrial: Path, tiny_vaegan: Path):  # noqa: ANN201
    model, _ = load_model(tiny_vaegan)
    return MVTecDataset(tiny_industrial, "brick"), model, tiny_vaegan


def _table(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "results.csv").filter(regex=COLS)


def test_resumed_with_other_parameters_equals_a_clean_run(setting, tmp_path: Path,  # noqa: ANN001
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ds, model, weights = setting
    out = tmp_path / "run"
    _run(ds, model, weights, PARAMS, out, monkeypatch, stop_after=2)
    assert len(list((out / "partial").glob("*.npz"))) == 2
    other = audit.AuditParams(setups=("S1", "S3"), segments=12, samples=20)
    notices: list[str] = []
    resumed = _run(ds, model, weights, other, out, notices=notices)
    clean = _run(ds, model, weights, other, tmp_path / "clean")
    pd.testing.assert_frame_equal(_table(resumed), _table(clean))
    assert notices == [f"2 unfinished results in {out / 'partial'} were made with other parameters or data; "
                       "discarded"]
    assert not (out / "partial").exists() and not (out / ".lock").exists()


def test_resumed_with_a_larger_limit_keeps_each_result_on_its_own_image(setting, tmp_path: Path,  # noqa: ANN001
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ds, model, weights = setting
    out = tmp_path / "run"
    small = audit.AuditParams(setups=("S1", "S3"), segments=6, samples=20, limit=2)
    _run(ds, model, weights, small, out, monkeypatch, stop_after=1)
    calls: list[int] = []
    real = audit.explain_sample
    monkeypatch.setattr(audit, "explain_sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    larger = audit.AuditParams(setups=("S1", "S3"), segments=6, samples=20, limit=4)
    resumed = _run(ds, model, weights, larger, out)
    assert len(calls) == 3  # the finished sample is kept: it is the same image with the same parameters
    monkeypatch.undo()
    clean = _run(ds, model, weights, larger, tmp_path / "clean")
    pd.testing.assert_frame_equal(_table(resumed), _table(clean))


def test_a_failed_audit_leaves_no_empty_folders(setting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    ds, model, weights = setting
    out = tmp_path / "run"
    _run(ds, model, weights, PARAMS, out, monkeypatch, stop_after=0)
    assert not out.exists()


def test_a_second_writer_is_refused_by_pid(setting, tmp_path: Path) -> None:  # noqa: ANN001
    ds, model, weights = setting
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(str(holder.pid))
        with pytest.raises(DataError, match=rf"run folder in use by PID {holder.pid}"):
            audit.run_audit(ds, model, weights, PARAMS, out)
        assert (out / ".lock").read_text() == str(holder.pid)  # the other writer's lock is untouched
    finally:
        holder.kill()
        holder.wait()
    assert audit.run_audit(ds, model, weights, PARAMS, out) == out  # a stale lock is taken over
    assert (out / "results.csv").is_file() and not (out / ".lock").exists()


def test_two_audits_into_one_folder_at_once(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> None:
    """Two real processes: the second is told the folder is in use; the first finishes intact."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "xad", "audit", "--data", str(tiny_industrial), "--category", "brick",
            "--weights", str(tiny_vaegan), "--setups", "S1,S3", "--samples", "300", "--segments", "6",
            "--out", str(out)]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / ".lock").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args[:-1] + [str(out)], cwd=ROOT, capture_output=True, text=True)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"run folder in use by PID {first.pid}" in second.stderr.strip().splitlines()[-1]
    assert len(pd.read_csv(out / "results.csv")) == 6 and not (out / ".lock").exists()
    assert os.listdir(out) and not (out / "partial").exists()
