"""Detection and localisation metrics on arrays you can check by hand."""

import numpy as np
import pytest

from xad.metrics.detection import anomaly_map, anomaly_score, evaluate, tau_star
from xad.metrics.localisation import iou_overlay, optimal_iou


def test_anomaly_map_modes() -> None:
    x = np.zeros((1, 1, 2, 3))
    x[0, 0, 0] = [0.2, 0.9, 0.1]
    r = np.zeros((1, 1, 2, 3))
    r[0, 0, 0] = [0.9, 0.2, 0.1]  # same channel max, other channel
    np.testing.assert_allclose(anomaly_map(x, r), [[[0.0, 0.0]]])  # |gs(x) - gs(x')|
    np.testing.assert_allclose(anomaly_map(x, r, "channel_max"), [[[0.7, 0.0]]])
    np.testing.assert_allclose(anomaly_score(np.array([[[0.1, 0.4]], [[0.3, 0.2]]])), [0.4, 0.3])


def test_tau_star_and_confusion_by_hand() -> None:
    scores = np.array([0.1, 0.2, 0.35, 0.3, 0.4, 0.5])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # delta = 0.2: TPR 1, FPR 1/3 -> sqrt(2/3) = 0.816; delta = 0.35: TPR 2/3, FPR 0 -> 0.816
    # ties: the first maximum (delta = 0.2) wins
    assert tau_star(scores, labels) == pytest.approx(0.2 + 1e-5)
    r = evaluate(scores, labels)
    assert (r.n_good, r.good_correct, r.n_anomalous, r.anomalous_correct) == (3, 2, 3, 3)
    assert r.accuracy == pytest.approx(5 / 6)
    assert r.auroc == pytest.approx(8 / 9)  # 8 of 9 (anomalous, good) pairs ordered right
    assert r.describe().startswith("3 good (2 correct, 1 misclassified) and 3 anomalous (3 correct")
    held_out = evaluate(scores, labels, tau=0.45)
    assert held_out.anomalous_correct == 1 and held_out.good_correct == 3
    with pytest.raises(ValueError, match="both good and anomalous"):
        tau_star(scores, np.ones(6))


def test_optimal_iou_by_hand() -> None:
    attr = np.array([[0.9, 0.8], [0.1, 0.8]])
    mask = np.array([[True, False], [False, False]])
    c = optimal_iou(attr, mask)
    # thresholds 0.9 -> {a}: J = 1; 0.8 -> 3 px: 1/3; 0.1 -> 4 px: 1/4
    np.testing.assert_allclose(c.thresholds, [0.9, 0.8, 0.1])
    np.testing.assert_allclose(c.ious, [1.0, 1 / 3, 0.25])
    assert (c.max_iou, c.theta) == (1.0, 0.9)
    mask2 = np.array([[False, True], [False, True]])
    c2 = optimal_iou(attr, mask2)
    assert c2.max_iou == pytest.approx(2 / 3) and c2.theta == 0.8  # ties in values go together


def test_optimal_iou_matches_a_brute_force_sweep() -> None:
    rng = np.random.default_rng(0)
    attr = np.round(rng.normal(size=(12, 12)), 1)  # many ties
    mask = rng.random((12, 12)) < 0.2
    c = optimal_iou(attr, mask)
    brute = [((attr >= t) & mask).sum() / ((attr >= t) | mask).sum() for t in np.unique(attr)]
    assert c.max_iou == pytest.approx(max(brute))
    assert ((attr >= c.theta) & mask).sum() / ((attr >= c.theta) | mask).sum() == pytest.approx(c.max_iou)


def test_empty_mask_is_not_defined() -> None:
    assert optimal_iou(np.ones((3, 3)), np.zeros((3, 3), bool)) is None


def test_overlay_colours() -> None:
    o = iou_overlay(np.array([[1, 0]]), np.array([[1, 1]]))
    assert o[0, 0].tolist() == [0, 0, 0] and o[0, 1].tolist() == [0, 255, 255]
