"""Localisation metrics on arrays small enough to check by hand."""

import numpy as np
import pytest

from xad.metrics.localisation import (aupro, localisation, mass_accuracy, pixel_auroc, pointing_game,
                                      pro_curve, rank_accuracy)

A = np.array([[4.0, 3.0], [2.0, 1.0]])
M = np.array([[1, 0], [1, 0]], bool)


def test_rank_mass_pointing_by_hand() -> None:
    assert rank_accuracy(A, M) == 0.5  # K = 2: the top two are 4 (in) and 3 (out)
    assert mass_accuracy(A, M) == pytest.approx(0.6)  # (4 + 2) / 10
    assert pointing_game(A, M) is True  # the maximum 4 lies in the mask
    assert pointing_game(A, ~M) is False
    assert rank_accuracy(-A, M) == 0.5 and rank_accuracy(A, np.eye(2, dtype=bool)) == 0.5
    assert mass_accuracy(np.array([[2.0, -5.0], [1.0, 0.0]]), np.array([[1, 0], [0, 0]], bool)) == \
        pytest.approx(2 / 3)  # negatives count as no relevance
    assert mass_accuracy(-A, M) == 0.0
    ties = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert pointing_game(ties, np.array([[0, 1], [0, 0]], bool)) is True  # any of the maxima
    assert rank_accuracy(ties, np.array([[0, 1], [0, 0]], bool)) == 0.0  # ties: raster order


def test_empty_masks_are_undefined_not_zero() -> None:
    empty = np.zeros((2, 2), bool)
    for metric in (rank_accuracy, mass_accuracy, pointing_game, pixel_auroc, aupro):
        assert metric(A, empty) is None
    assert pixel_auroc(A, np.ones((2, 2), bool)) is None and aupro(A, np.ones((2, 2), bool)) is None
    assert localisation(A, None) == {"rank": None, "mass": None, "pointing": None}
    with pytest.raises(ValueError, match="differ"):
        rank_accuracy(A, np.ones((3, 3), bool))


def test_pixel_auroc_by_hand() -> None:
    assert pixel_auroc(A, M) == 0.75  # positives {4, 2} vs negatives {3, 1}: 3 of 4 pairs
    assert pixel_auroc(np.ones((2, 2)), M) == 0.5  # all tied: half
    assert pixel_auroc(M.astype(float), M) == 1.0
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s, m = rng.integers(0, 5, (16, 16)).astype(float), rng.random((16, 16)) < 0.3
    assert pixel_auroc(s, m) == pytest.approx(roc_auc_score(m.ravel(), s.ravel()))


def test_pro_and_aupro_by_hand() -> None:
    scores = np.array([[4.0, 3.0, 2.0, 1.0]])
    mask = np.array([[1, 0, 1, 0]], bool)  # two one-pixel regions (not adjacent)
    fpr, pro = pro_curve(scores, mask)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1, 1])
    assert aupro(scores, mask) == pytest.approx(0.5)  # PRO 0.5 on FPR [0, 0.3]
    assert aupro(scores, mask, fpr_limit=1.0) == pytest.approx(0.75)  # 0.5 * 0.5 + 0.5 * 1
    assert aupro(mask.astype(float), mask) == pytest.approx(1.0)
    # regions weigh equally, whatever their size: the three-pixel one found, the one-pixel not
    fpr, pro = pro_curve(np.array([[3.0, 3, 3, 1, 0, 0]]), np.array([[1, 1, 1, 0, 1, 0]], bool))
    assert (fpr[1], pro[1]) == (0.0, 0.5)  # pixel-wise overlap would be 0.75
    # 8-connected: a diagonal pair is one region; a stack counts regions per image
    diag = np.array([[1, 0], [0, 1]], bool)
    _, pro = pro_curve(np.array([[2.0, 0], [0, 1]]), diag)
    assert pro[1] == 0.5  # one region of two pixels, half of it above the top threshold
    _, pro = pro_curve(np.stack([A, A / 2]), np.stack([M, M]))  # top threshold 4: image 1 only
    assert pro[1] == pytest.approx(0.25)  # (1/2 of region 1 + 0 of region 2) / 2
    # interpolated at the limit: FPR jumps 0 -> 1 with PRO 1 -> 1
    assert aupro(np.array([[1.0, 0.0]]), np.array([[1, 0]], bool)) == pytest.approx(1.0)


def test_localisation_of_an_anomaly_map() -> None:
    # max-IoU: {4} 1/2, {4, 3} 1/3, {4, 3, 2} 2/3, all 2/4; the mask is one region of two pixels,
    # found half at FPR 0 and wholly at FPR 0.5: AUPRO@0.3 = 0.5
    out = localisation(A, M, anomaly_map=True)
    assert out == pytest.approx({"iou": 2 / 3, "rank": 0.5, "mass": 0.6, "pointing": 1.0,
                                 "pixel_auroc": 0.75, "aupro": 0.5})
    assert localisation(A, M) == pytest.approx({"rank": 0.5, "mass": 0.6, "pointing": 1.0})


def test_audit_writes_the_localisation_columns_and_run_facts(  # noqa: ANN001 - pytest fixtures
        tiny_industrial, tiny_vaegan, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import json

    import pandas as pd

    from xad import audit, runs
    from xad.data.mvtec import MVTecDataset
    from xad.weights import load_model

    monkeypatch.setenv("XAD_CACHE", str(tmp_path / "cache"))
    model, _ = load_model(tiny_vaegan)
    assert audit.AuditParams().samples == 5000 and audit.AuditParams().backend == "auto"
    params = audit.AuditParams(setups=audit.SETUPS, segments=10, samples=40, backend="onnxruntime")
    run = audit.run_audit(MVTecDataset(tiny_industrial, "brick"), model, tiny_vaegan, params, tmp_path / "r")
    r = pd.read_csv(run / "results.csv")
    assert list(r.columns) == audit.COLUMNS
    for col in ("iou_S4", "rank_S1", "mass_S3", "pointing_S4", "iou_map", "pixel_auroc_map", "aupro_map"):
        assert col in r.columns
    bad, good = r[r["label"] == "anomalous"], r[r["label"] == "good"]
    cols = [c for c in r.columns if c.split("_")[0] in ("iou", "rank", "mass", "pointing", "aupro")
            or c == "pixel_auroc_map"]
    assert good[cols].isna().all().all() and bad[cols].notna().all().all()
    assert ((bad[cols] >= 0) & (bad[cols] <= 1)).all().all()
    assert set(bad["pointing_S1"]) <= {0.0, 1.0}
    info = json.loads((run / "run.json").read_text())
    assert info["samples"] == 40 and info["backend"] == "onnxruntime"
    assert info["segmentation"]["convert2lab"] is True and info["segmentation"]["kernel_size"] == 2
    table = runs.localisation_table(r, audit.SETUPS)
    assert list(table["map"]) == ["S1", "S2", "S3", "S4", "m"]
    assert table.loc[4, "AUPRO@0.3"] == pytest.approx(bad["aupro_map"].mean(), abs=1e-3)
    assert table.loc[0, "pixel AUROC"] is None or pd.isna(table.loc[0, "pixel AUROC"])
