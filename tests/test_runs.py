"""Runs over time: threshold what-if metrics by hand, the paired comparison of two real audits,
a chosen threshold written into a run, one colour scale, and a Dask audit equal to a serial one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xad import audit, runs
from xad.cli import main
from xad.data.mvtec import MVTecDataset
from xad.metrics.detection import f1_optimal_tau, threshold_stats

ROOT = Path(__file__).resolve().parent.parent
from xad.weights import load_model

SCORES = np.array([0.1, 0.4, 0.35, 0.8])
LABELS = np.array([0, 0, 1, 1])


def test_threshold_stats_by_hand() -> None:
    s = threshold_stats(SCORES, LABELS, 0.35)  # called anomalous: 0.4, 0.35, 0.8
    assert (s.tp, s.fp, s.tn, s.fn) == (2, 1, 1, 0)
    assert (s.precision, s.recall, s.f1, s.accuracy) == pytest.approx((2 / 3, 1.0, 0.8, 0.75))
    assert s.gmean == pytest.approx(np.sqrt(0.5))
    # F1 at each candidate: 0.1 -> 4/6, 0.35 -> 0.8, 0.4 -> 0.5, 0.8 -> 2/3
    assert f1_optimal_tau(SCORES, LABELS) == 0.35
    none = threshold_stats(SCORES, LABELS, 0.9)
    assert (none.tp, none.fp, none.precision, none.f1) == (0, 0, 0.0, 0.0)


def test_paired_test_effect_size_by_hand() -> None:
    p, r = runs.paired_test(np.zeros(3), np.array([0.1, 0.2, -0.3]))  # ranks 1, 2 up; 3 down
    assert r == 0.0 and p == 1.0
    p, r = runs.paired_test(np.zeros(6), np.arange(1, 7) / 10)  # every pair up
    assert r == 1.0 and p == pytest.approx(2 / 64)  # exact two-sided: only the all-up sign pattern and its mirror
    assert runs.paired_test(np.ones(4), np.ones(4)) == (1.0, 0.0)


@pytest.fixture(scope="module")
def two_runs(tiny_industrial: Path, tiny_vaegan: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    model, _ = load_model(tiny_vaegan)
    ds = MVTecDataset(tiny_industrial, "brick")
    root = tmp_path_factory.mktemp("compare")
    a = audit.run_audit(ds, model, tiny_vaegan, audit.AuditParams(setups=("S1", "S3"), segments=6, samples=20),
                        root / "A")
    b = audit.run_audit(ds, model, tiny_vaegan, audit.AuditParams(setups=("S1",), segments=12, samples=20),
                        root / "B")
    return a, b


def test_compare_two_real_runs(two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    a, b = two_runs
    assert main(["runs", "compare", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ra, rb = pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")
    [row] = out["setups"]  # only S1 is in both
    ja, jb = ra["iou_S1"].dropna(), rb["iou_S1"].dropna()
    assert row["setup"] == "S1" and row["n"] == len(ja) == 4
    assert row["mean max-IoU A"] == round(ja.mean(), 4) and row["mean max-IoU B"] == round(jb.mean(), 4)
    assert row["B - A"] == round(jb.mean() - ja.mean(), 4)
    assert out["verdicts_changed"] == []  # same model, same tau*: no verdict moves
    moved = int((np.abs(jb.to_numpy() - ja.to_numpy()) > runs.IOU_CHANGE).sum())
    assert len(out["iou_changes"]) == moved
    assert main(["runs", "list", "--folder", str(a.parent), "--json"]) == 0
    listed = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert {"A", "B"} <= set(listed) and listed["B"]["k"] == 12 and listed["A"]["setups"] == "S1,S3"


def test_a_chosen_threshold_is_written_into_the_run_and_report(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    from xad.export import audit_report_html

    run = Path(shutil.copytree(two_runs[1], tmp_path / "run"))
    before = runs.load_run(run)
    scores = before.results["score"].to_numpy()
    tau = float(np.sort(scores)[-2])  # only the two highest scores are called anomalous
    after = runs.apply_threshold(run, tau)
    assert list(after.results["predicted"]) == ["anomalous" if s >= tau else "good" for s in scores]
    assert after.info["tau"] == tau and after.info["tau_star"] == before.info["tau"]
    assert after.info["tau_history"] == [before.info["tau"]]
    flipped = int((after.results["predicted"] != before.results["predicted"]).sum())
    assert len(runs.compare(two_runs[1], run).verdicts) == flipped
    assert f"tau = {tau:.4f}</b> (the paper's tau* = {before.info['tau']:.4f})" in audit_report_html(run)


def test_one_colour_scale_for_a_whole_audit() -> None:
    maps = np.zeros((3, 2, 2), np.float16)
    maps[0] = 0.5
    maps[1, 0, 0] = 0.25
    maps[2] = 1.0
    results = pd.DataFrame({"id": ["g0", "g1", "bad"], "label": ["good", "good", "anomalous"]})
    run = runs.AuditRun(Path("x"), results, {"anomaly_map": maps, "ids": results["id"].to_numpy()}, {})
    assert runs.map_scale(run, "per image") is None and runs.map_scale(run, "audit") == 1.0
    # good pixels: four 0.5, one 0.25, three 0 -> 99th percentile between the two largest 0.5s
    assert runs.map_scale(run, "good-p99") == 0.5


def test_dask_local_cluster_equals_serial(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    model, _ = load_model(tiny_vaegan)
    ds = MVTecDataset(tiny_industrial, "brick")
    params = audit.AuditParams(setups=("S1", "S3"), segments=6, samples=20, limit=4)
    serial = audit.run_audit(ds, model, tiny_vaegan, params, tmp_path / "serial")
    dask = audit.run_audit(ds, model, tiny_vaegan, params, tmp_path / "dask", scheduler="local")
    a, b = pd.read_csv(serial / "results.csv"), pd.read_csv(dask / "results.csv")
    timing = [c for c in a.columns if c.startswith("seconds_")]
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    assert b[["seconds_S1", "seconds_S3"]].notna().all().all()


def test_scheduler_address_is_checked(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    args = ["audit", "--data", str(tiny_industrial), "--category", "brick", "--weights", str(tiny_vaegan),
            "--samples", "20", "--segments", "6", "--out", str(tmp_path / "r"), "--scheduler", "somewhere"]
    assert main(args) == 2
    assert "expected 'local' or a scheduler address like tcp://host:8786" in capsys.readouterr().err
    assert main(args[:-1] + ["local", "--jobs", "2"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_readme_vaegan_table_is_generated_from_the_shipped_cards_and_audits() -> None:
    from xad import readme, runs
    from xad.weights import WEIGHTS_DIR, read_record

    text = (ROOT / "README.md").read_text()
    begin, end = readme.markers(runs.README_TAG)
    shipped = text[text.index(begin) + len(begin): text.index(end)].strip()
    assert shipped == runs.shipped_table().strip()  # stale after a card or audit changed: regenerate
    for cfg in sorted((WEIGHTS_DIR / "vaegan").glob("*/config.json")):
        r = read_record(cfg.parent)
        assert re.search(rf"\| {re.escape(r.name)} +\| {r.meta['category']} +\| {r.metrics['test_auroc']} ", shipped)


def test_audit_command_rebuilds_the_cli_line_from_run_json(tmp_path: Path) -> None:
    """A shipped card's "Made by" line comes from the run folder, not typed in."""
    info = {"data": "data/xad_industrial/tablet", "category": "tablet", "weights": "weights/vaegan/xad-tablet-cpu",
            "params": {"setups": ["S1", "S3"], "samples": 5000, "segments": 100, "limit": 12}}
    (tmp_path / "run.json").write_text(json.dumps(info))
    assert runs.audit_command(tmp_path / "run.json") == (
        "python -m xad audit --data embedded --category tablet --weights weights/vaegan/xad-tablet-cpu "
        "--setups S1,S3 --samples 5000 --segments 100 --limit 12")
    info.update(data="/srv/mvtec/screw", params={**info["params"], "limit": None})
    (tmp_path / "run.json").write_text(json.dumps(info))
    assert runs.audit_command(tmp_path / "run.json").startswith("python -m xad audit --data /srv/mvtec --category tablet")
    assert runs.audit_command(tmp_path / "run.json").endswith("--segments 100")
