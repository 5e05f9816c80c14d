"""Detectors, the counterfactual GAN and its metrics: bounded scores, the objective, hand-checkable
metrics, the commands and the bundle the page uses."""

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xad.counterfactual import bundle as cfb
from xad.counterfactual import explanation as cfe
from xad.cli import main
from xad.data import digits, semantic
from xad.data.transforms import DataError
from xad.metrics import counterfactual as cm
from xad.models.cegan import CEGAN
from xad.models.cegan import PRESETS as GP
from xad.models.detectors import PRESETS as DP
from xad.models.detectors import Detector, DetectorConfig, dsvdd_scale_for
from xad.train.cegan import CEGANSettings, losses, sample_alpha
from xad.train.cegan import train as train_cegan


@pytest.mark.parametrize("kind", ["bce", "hsc", "dsvdd"])
def test_detector_scores_are_bounded_and_the_loss_is_finite(kind: str) -> None:
    torch.manual_seed(0)
    det = Detector(DetectorConfig(kind=kind, channels=(4, 8), feature_dim=8)).eval()
    x = torch.rand(6, 3, 32, 32)
    s = det(x)
    assert s.shape == (6,) and (s >= 0).all() and (s <= 1).all()
    loss = det.train().loss(x, torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool))
    assert torch.isfinite(loss)
    if kind == "dsvdd":
        assert all(m.bias is None for m in det.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_hsc_and_dsvdd_bounding_by_hand() -> None:
    det = Detector(DetectorConfig(kind="hsc", channels=(4,), feature_dim=2)).eval()
    det.features = lambda x: torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # ||f|| = 0 and 5
    d = torch.sqrt(torch.tensor([0.0, 25.0]) + 1) - 1
    torch.testing.assert_close(det(torch.zeros(2, 3, 32, 32)), 1 - torch.exp(-d))
    # the scale puts a normal image at the median training distance at score 0.1 (by hand:
    # s = 2 / -ln 0.9 = 18.98), and that is what the detector then gives such an image
    assert dsvdd_scale_for(2.0) == pytest.approx(18.9824, abs=1e-4)
    dsvdd = Detector(DetectorConfig(kind="dsvdd", channels=(4,), feature_dim=2,
                                    dsvdd_scale=dsvdd_scale_for(25.0))).eval()  # median ||f - c||^2 = 25
    dsvdd.features = lambda x: torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # centre c = 0
    torch.testing.assert_close(dsvdd(torch.zeros(2, 3, 32, 32)), torch.tensor([0.0, 0.1]))


def test_generator_starts_near_the_identity_and_takes_alpha_and_k() -> None:
    torch.manual_seed(0)
    g = CEGAN(GP["tiny"]).eval()
    x = torch.rand(4, 3, 32, 32)
    y = g(x, torch.tensor([0.0, 1.0, 0.5, 0.0]), torch.tensor([0, 1, 0, 1]))
    assert y.shape == x.shape and (y >= 0).all() and (y <= 1).all()
    assert (y - x).abs().mean() < 0.05  # m is about sigmoid(-3) at init
    assert g.concept_logits(x, y).shape == (4, 2)


def test_colour_mixing_recolours_the_whole_image_by_hand() -> None:
    from dataclasses import replace

    torch.manual_seed(0)
    g = CEGAN(replace(GP["tiny"], colour_mixing=True)).eval()
    x = torch.rand(2, 3, 32, 32)
    a, k = torch.zeros(2), torch.tensor([0, 1])
    gen = g.generator
    with torch.no_grad():
        gen.out.bias[3] = -60.0  # paint nothing: the output is the recoloured input
        np.testing.assert_allclose(g(x, a, k).numpy(), x.numpy(), atol=1e-6)  # identity at init
        gen.mixing.bias.copy_(torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0.5]]).flatten())  # swap R, G; halve B
        y = g(x, a, k)
    np.testing.assert_allclose(y[:, 0].numpy(), x[:, 1].numpy(), atol=1e-6)
    np.testing.assert_allclose(y[:, 1].numpy(), x[:, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(y[:, 2].numpy(), 0.5 * x[:, 2].numpy(), atol=1e-6)
    assert g(torch.zeros(1, 3, 32, 32), a[:1], k[:1]).abs().max() < 1e-3  # no offset: black stays black
    with pytest.raises(ValueError, match="colour_mixing"):
        replace(GP["tiny"], colour_mixing=True, space="latent", code_channels=4)


def test_intensity_cycle_ignores_a_recolouring_by_hand() -> None:
    from dataclasses import replace

    from xad.train.cegan import cycle_loss

    x = torch.zeros(1, 3, 4, 4)
    x[0, 1, 1:3, 1:3] = 1.0  # a green square: 4 of 16 pixels
    back = x[:, [1, 0, 2]]  # the same square in red
    assert cycle_loss(x, back, "intensity").item() == 0.0
    assert cycle_loss(x, back, "full").item() == pytest.approx(2 * 4 / 48)  # two channels differ on 4 pixels
    assert cycle_loss(x, 0.5 * back, "intensity").item() == pytest.approx(0.5 * 4 / 16)  # dimming still costs
    with pytest.raises(ValueError, match="cycle"):
        replace(GP["tiny"], cycle="intensity", space="latent", code_channels=4)
    with pytest.raises(ValueError, match="cycle"):
        replace(GP["tiny"], cycle="luma")


def test_alpha_sampling() -> None:
    g = torch.Generator().manual_seed(0)
    a = sample_alpha(4000, "extremes", g)
    assert ((a == 0) | (a == 1)).float().mean() == pytest.approx(0.5, abs=0.05)
    u = sample_alpha(4000, "uniform", g)
    assert ((u == 0) | (u == 1)).sum() == 0  # no extremes drawn
    from scipy.stats import kstest

    assert kstest(u.numpy(), "uniform").pvalue > 0.01  # U[0, 1]: a skewed or shifted draw fails
    assert kstest((u ** 2).numpy(), "uniform").pvalue < 1e-6  # and the test can tell a wrong one


@pytest.mark.parametrize("kind", ["bce", "hsc", "dsvdd"])
def test_log_scores_are_the_logs_of_forward(kind: str) -> None:
    """log_scores(x) = (log phi(x), log(1 - phi(x))) where phi is not saturated, for every kind."""
    torch.manual_seed(0)
    phi = Detector(dataclasses.replace(DP["tiny"], kind=kind, dsvdd_scale=3.0)).eval()
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        s = phi(x).double()
        log_s, log_1ms = (t.double() for t in phi.log_scores(x))
    assert ((s > 1e-4) & (s < 1 - 1e-4)).all(), s  # away from saturation, the logs are comparable
    torch.testing.assert_close(log_s, torch.log(s), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(log_1ms, torch.log1p(-s), atol=1e-5, rtol=1e-4)


def test_objective_has_every_term_and_training_is_seeded() -> None:
    phi = Detector(DP["tiny"]).eval()
    normal = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), np.uint8)
    torch.manual_seed(0)
    model = CEGAN(GP["tiny"])
    d, total, logs = losses(model, phi, torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32),
                            torch.Generator().manual_seed(0))
    assert set(logs) == {"d", "g", "phi", "rec", "cyc", "con"} and torch.isfinite(total)
    # one initialisation, copied; the global RNG is not re-seeded between runs, so only the seed
    # in the settings can make two runs agree
    init = CEGAN(GP["tiny"])
    states = []
    for seed in (3, 3, 4):
        m = copy.deepcopy(init)
        train_cegan(m, phi, normal, None, CEGANSettings(steps=2, batch_size=4, seed=seed), progress=False)
        states.append(m.state_dict())
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k])
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_auroc_and_concept_accuracy_by_hand() -> None:
    assert cm.auroc_normal_vs_ce(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert cm.auroc_normal_vs_ce(np.array([0.1, 0.3]), np.array([0.1, 0.3])) == 0.5
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert cm.concept_accuracy(logits, np.array([0, 1, 1, 1])) == 0.75


def test_target_error_and_route_shares_by_hand() -> None:
    assert cm.target_error(np.array([0.1, 0.5, 0.3]), 0.3) == pytest.approx((0.2 + 0.2 + 0.0) / 3)
    assert cm.target_error(np.array([0.0, 1.0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    red, one = np.array([True, True, False, False, False]), np.array([False, True, True, False, False])
    shares = cm.route_shares({"red": red, "digit 1": one})
    assert shares == {"red only": 0.2, "digit 1 only": 0.2, "both": 0.2, "neither": 0.4}
    assert cm.route_shares({"digit 7": np.array([True, False, False, False])}) == {"digit 7": 0.25, "neither": 0.75}
    with pytest.raises(ValueError):
        cm.route_shares({})


def test_generator_loss_is_the_papers_hinge_by_default() -> None:
    from xad.train.cegan import generator_loss

    d = torch.tensor([2.0, 0.5, -1.0])  # D calls the first image real beyond the margin
    assert generator_loss(d).item() == pytest.approx((0.0 + 0.5 + 2.0) / 3)  # mean max(0, 1 - D)
    assert generator_loss(d, "linear").item() == pytest.approx(-(2.0 + 0.5 - 1.0) / 3)
    assert GP["cpu"].generator_loss == "hinge" and GP["cpu"].alpha_sampling == "uniform"
    assert not GP["cpu"].colour_mixing and GP["cpu"].cycle == "full" and GP["cpu"].lambda_gan == 1.0
    with pytest.raises(ValueError, match="generator_loss"):
        dataclasses.replace(GP["tiny"], generator_loss="wasserstein")


def test_cards_label_every_departure_from_the_papers_objective() -> None:
    from xad.cards_cegan import objective_extensions

    assert objective_extensions(dataclasses.asdict(GP["cpu"])) == []
    old = {"lambda_gan": 5.0, "alpha_sampling": "extremes", "cycle": "intensity", "colour_mixing": True}
    # a config from before generator_loss existed was trained with L_G = -D
    assert objective_extensions(old) == ["alpha sampling `extremes`", "L_G `linear`", "L_cyc `intensity`",
                                         "colour mixing `True`", "lambda_gan `5.0`"]


def test_normal_routes_by_hand() -> None:
    routes = semantic.normal_routes("mnist:7", [np.array([7, 3])])
    np.testing.assert_array_equal(routes["digit 7"], [True, False])
    red = list(digits.COLOURS).index("red")
    colours = np.array([(red + 1) % 3, red, (red + 2) % 3])
    routes = semantic.normal_routes("cmnist:one+red", [np.array([1, 3, 3]), colours])
    np.testing.assert_array_equal(routes["digit 1"], [True, False, False])
    np.testing.assert_array_equal(routes["red"], [False, True, False])
    with pytest.raises(DataError):
        semantic.normal_routes("cifar10:cat", [np.array([3])])


def test_fid_by_hand() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 2))
    assert cm.fid(a, a) == pytest.approx(0, abs=1e-6)
    # shifted by (3, 4): FID = |mu_a - mu_b|^2 = 25 (same covariance)
    assert cm.fid(a, a + [3.0, 4.0]) == pytest.approx(25, abs=1e-6)
    # N(0, I) vs N(0, 4I) in 2-D: tr(I + 4I - 2 * 2I) = 2
    b = rng.normal(size=(200000, 2))
    assert cm.fid(b, 2 * b) == pytest.approx(2, abs=0.02)
    # CEs 3 away from normal, anomalies 6 away: 9 / 36 = 25 %
    assert cm.fid_normalised(a + [3.0, 0.0], a, a + [6.0, 0.0]) == pytest.approx(25.0, abs=1e-6)


def test_minimality_by_hand() -> None:
    x = np.zeros((2, 8, 8, 3))
    y = x.copy()
    y[1] = 0.5
    np.testing.assert_allclose(cm.mse(x, y), [0.0, 0.25])
    assert cm.ssim(x[:1] + 0.2, y[:1] + 0.2)[0] == pytest.approx(1.0)


def _check_metrics_against_sklearn(b: cfb.Bundle, m: dict) -> None:
    """The stored AuROC normal vs CE (all concepts pooled, alpha = 0) and R's concept accuracy,
    recomputed here from the same test images with sklearn and plain torch."""
    from sklearn.metrics import roc_auc_score

    data = semantic.load_setup(b.setup)
    rng = np.random.default_rng(0)  # evaluate()'s seed: the same anomalies and normal images
    anomalies = data.anomalies_test[rng.permutation(len(data.anomalies_test))[:m["n_anomalies"]]]
    normal = data.normal_test[rng.permutation(len(data.normal_test))[:m["n_normal"]]]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32) / (255 if a.dtype == np.uint8 else 1)
                                   ).permute(0, 3, 1, 2)  # noqa: E731
    with torch.no_grad():
        s_normal = b.detector(t(normal)).double().numpy()
        ces = [cfb.generate(b, anomalies, 0.0, k) for k in range(b.concepts)]
        s_ce = np.concatenate([b.detector(t(c)).double().numpy() for c in ces])
        hits = [(b.generator.concept_logits(t(anomalies), t(c)).argmax(1).numpy() == k) for k, c in enumerate(ces)]
    y = np.r_[np.zeros(len(s_normal)), np.ones(len(s_ce))]
    assert m["auroc_normal_vs_ce"] == pytest.approx(roc_auc_score(y, np.r_[s_normal, s_ce]), abs=1e-4)
    assert m["concept_accuracy"] == pytest.approx(np.concatenate(hits).mean(), abs=1e-4)


def test_commands_write_cards_and_the_bundle_explains(tiny_cf_bundle: Path, tmp_path: Path) -> None:
    cfg = json.loads((tiny_cf_bundle / "config.json").read_text())
    assert cfg["class"] == "CEGAN" and cfg["setup"] == "cmnist:one+red" and cfg["detector_kind"] == "hsc"
    m = cfg["metrics"]
    card = (tiny_cf_bundle / "card.md").read_text()
    assert "AuROC normal vs CE" in card and "lambda_rec" in card
    assert set(m["judged_routes_ce"]["k1"]) == {"normal", "digit 1", "red"}  # the independent judge
    assert "judged normal by an independent classifier" in card
    b = cfb.load_bundle(tiny_cf_bundle)
    _check_metrics_against_sklearn(b, m)
    images, labels = cfe.anomaly_gallery(b, 4)
    e = cfe.explain(b, images[0], alpha=0.0)
    assert e.counterfactuals.shape == (2, 32, 32, 3) and e.ce_scores.shape == (2,)
    assert e.changes.shape == (2, 32, 32) and (e.changes >= 0).all()
    alphas, seq, reached = cfe.alpha_sequence(b, images[0], 1)
    assert alphas[0] == 1 and alphas[-1] == 0 and len(seq) == len(reached) == 6
    ce = cfb.generate(b, images, 0.3, 1)
    np.testing.assert_array_equal(ce, cfb.generate(cfb.load_bundle(tiny_cf_bundle), images, 0.3, 1))
    np.testing.assert_allclose(ce[1:2], cfb.generate(b, images[1:2], 0.3, 1), atol=1e-6)  # batch-free
    assert not np.allclose(ce, cfb.generate(b, images, 0.9, 1))  # alpha reaches G
    assert not np.allclose(ce, cfb.generate(b, images, 0.3, 0))  # and so does k
    with pytest.raises(ValueError, match=r"0\.\.1 \(0-based"):
        cfb.generate(b, images, 0.0, 2)
    # the one-image command
    png = tmp_path / "x.png"
    Image.fromarray(images[0]).save(png)
    assert main(["counterfactual", "--setup", str(tiny_cf_bundle), "--image", str(png), "--alpha", "0",
                 "--concept", "2", "--out", str(tmp_path / "ce.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "ce.png")).shape == (32, 32, 3)
    assert main(["counterfactual", "--setup", str(tiny_cf_bundle), "--image", str(png),
                 "--concept", "3", "--out", str(tmp_path / "ce.png")]) == 2
    assert main(["counterfactual", "--setup", "nowhere", "--image", str(png), "--out", str(png)]) == 2
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "cegan", "--weights", str(tiny_cf_bundle), "--limit", "50", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["n_anomalies"] == 50
    # calibration: 11 alphas x 2 concepts, each row's error recomputed from fresh scores
    rows = written["calibration"]
    assert [(r["alpha"], r["k"]) for r in rows] == [(a / 10, k) for k in (1, 2) for a in range(11)]
    data = semantic.load_setup(b.setup)
    rng = np.random.default_rng(0)
    anomalies = data.anomalies_test[rng.permutation(len(data.anomalies_test))[:50]]
    from xad.models.detectors import score_images

    s = score_images(b.detector, cfb.generate(b, anomalies, 0.7, 1))
    row = next(r for r in rows if r["alpha"] == 0.7 and r["k"] == 2)
    assert row["target_error"] == pytest.approx(np.abs(s - 0.7).mean(), abs=1e-4)
    assert row["mean_score"] == pytest.approx(s.mean(), abs=1e-4)
    assert written["target_error"] == pytest.approx(np.mean([r["target_error"] for r in rows]), abs=1e-4)
    shares = written["route_shares_ce"]["k1"]
    assert set(shares) == {"red only", "digit 1 only", "both", "neither"}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert shares["red only"] + shares["both"] == pytest.approx(written["judged_routes_ce"]["k1"]["red"], abs=1e-3)


def test_evaluation_reports_progress_per_stage(tiny_cf_bundle: Path) -> None:
    """One call per stage, counted by hand: 2 concepts at alpha = 0, then 11 alphas x 2 concepts of
    the calibration and 11 x 2 of the "alpha matched" one (no psi for the GAN version): 46 stages."""
    from xad.counterfactual.evaluation import evaluate

    calls: list[tuple[int, int]] = []
    evaluate(cfb.load_bundle(tiny_cf_bundle), limit=10, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 46) for i in range(1, 47)]


def test_tiles_figure_puts_each_tile_on_one_canvas() -> None:
    import base64
    import io

    from PIL import Image

    from xad.plots.images import INFERNO, heat_rgb, tiles_figure

    red, blue = np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    fig = tiles_figure([[red, None], [blue, red]], [["a", "b"], ["c"]], "T", gap=2, head=5)
    assert len(fig.data) == 1 and fig.layout.title.text == "T"
    assert [n.text for n in fig.layout.annotations] == ["a", "b", "c"]
    png = base64.b64decode(fig.data[0].source.split(",", 1)[1])
    canvas = np.asarray(Image.open(io.BytesIO(png)))
    assert canvas.shape == (2 * (10 + 5) + 2, 2 * (10 + 2) + 2, 3)
    assert (canvas[5:15, 2:12] == red).all() and (canvas[20:30, 2:12] == blue).all()
    assert (canvas[5:15, 14:24] == 255).all()  # the empty tile stays white
    assert (canvas[20:30, 14:24] == red).all()
    h = heat_rgb(np.array([[0.0, 1.0]]), 4)
    assert (h[0, 0] == INFERNO[0]).all() and (h[0, -1] == INFERNO[255]).all()


def test_latent_generator_maps_latents_and_the_objective_decodes() -> None:
    """G' of the DiffEdit version: latents in, latents out (unbounded), every loss term through a
    decoder; the image-space generator refuses latent channels."""
    from dataclasses import replace

    torch.manual_seed(0)
    cfg = replace(GP["tiny"], space="latent", code_channels=4)
    model = CEGAN(cfg)
    z = torch.randn(4, 4, 16, 16) * 3
    out = model(z, torch.tensor([0.0, 1.0, 0.5, 0.0]), torch.tensor([0, 1, 0, 1]))
    assert out.shape == z.shape and out.abs().max() > 1  # not squashed into [0, 1]
    up = torch.nn.Upsample(scale_factor=2)
    decode = lambda t: torch.sigmoid(up(t[:, :3]))  # noqa: E731 - a stand-in A_dec
    phi = Detector(DP["tiny"]).eval()
    d, total, logs = losses(model, phi, z, torch.rand(4, 3, 32, 32), torch.Generator().manual_seed(0),
                            decode=decode, images=torch.rand(4, 3, 32, 32))
    assert set(logs) == {"d", "g", "phi", "rec", "cyc", "con"} and torch.isfinite(total)
    total.backward()
    assert model.generator.stem.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="code_channels"):
        replace(GP["tiny"], code_channels=4)


def test_diffedit_backend_explains_with_mask_edit_and_metrics(tiny_diffedit_cf_bundle: Path) -> None:
    cfg = json.loads((tiny_diffedit_cf_bundle / "config.json").read_text())
    assert cfg["backend"] == "diffedit" and cfg["config"]["space"] == "latent"
    assert cfg["psi"]["target_prompt"] == "digit seven" and cfg["psi"]["source_prompt"] == ""
    assert cfg["psi_images"] == 8 and cfg["psi_seconds"] > 0  # timed when made, kept with the cache
    m = cfg["metrics"]
    assert m["backend"] == "diffedit" and m["n_anomalies"] == 12
    for key in ("plain_edit_auroc_normal_vs_edit", "plain_edit_mean_score", "seconds_psi_per_image",
                "auroc_normal_vs_ce", "concept_accuracy"):
        assert m[key] is not None, key
    card = (tiny_diffedit_cf_bundle / "card.md").read_text()
    assert "DiffEdit version" in card and "plain DiffEdit edit" in card
    b = cfb.load_bundle(tiny_diffedit_cf_bundle)
    assert b.backend == "diffedit" and b.ldm is not None
    images, _ = cfe.anomaly_gallery(b, 3)
    e = cfe.explain(b, images[0], alpha=0.0)
    assert e.counterfactuals.shape == (2, 32, 32, 3) and e.edit.shape == (32, 32, 3)
    assert e.edit_mask.shape == (32, 32) and set(np.unique(e.edit_mask)) <= {0.0, 1.0}
    phi = float(b.detector(torch.from_numpy(e.edit[None].copy()).permute(0, 3, 1, 2)))
    assert e.edit_score == pytest.approx(phi, abs=1e-6)  # the score of the plain edit itself
    # psi ran once for this image: a slider move only runs G' and the decoder
    cached = len(b.psi_cache)
    again = cfe.explain(b, images[0], alpha=0.7)
    assert len(b.psi_cache) == cached and not np.array_equal(again.counterfactuals, e.counterfactuals)
    assert not np.allclose(cfb.generate(b, images, 0.3, 1), cfb.generate(b, images, 0.9, 1))
    # a fresh bundle computes the same psi (seeded), so the same counterfactuals
    np.testing.assert_allclose(cfb.generate(cfb.load_bundle(tiny_diffedit_cf_bundle), images, 0.3, 1),
                               cfb.generate(b, images, 0.3, 1), atol=1e-5)


def test_bf16_default_follows_the_cpu_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    from xad import precision
    from xad.audit import AuditParams

    monkeypatch.setenv("XAD_BF16", "0")
    assert precision.bf16_is_fast() is False and AuditParams().bf16 is False
    assert CEGANSettings().bf16 is False and "fp32" in precision.describe()
    monkeypatch.setenv("XAD_BF16", "1")
    assert precision.bf16_is_fast() is True and AuditParams().bf16 is True
    monkeypatch.delenv("XAD_BF16")
    assert precision.bf16_is_fast() == precision._native_bf16()


def test_cegan_suite_trains_chains_resumes_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The ten-class protocol on one digit with tiny models: a detector, then its generator, as real
    subprocesses; a second run skips both; the summary is the generators' own metrics."""
    from xad.counterfactual import suite

    args = ["train", "cegan-suite", "--setup", "mnist", "--detectors", "hsc", "--digits", "3", "--preset", "tiny",
            "--detector-steps", "2", "--steps", "2", "--root", str(tmp_path), "--jobs", "1"]
    assert main(args) == 0
    gen = tmp_path / "cegan" / "mnist-3-hsc"
    cfg = json.loads((gen / "config.json").read_text())
    assert cfg["setup"] == "mnist:3" and cfg["detector"].endswith("detector/mnist-3-hsc")
    assert "calibration" in cfg["metrics"]
    stamp = (gen / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # resumable: nothing left to do
    out = capsys.readouterr().out
    assert "skip detector mnist-3-hsc" in out and "skip cegan mnist-3-hsc" in out and "start" not in out
    assert (gen / "model.safetensors").stat().st_mtime_ns == stamp
    means, per_class = suite.summary(tmp_path)
    assert [m["classes"] for m in means] == [1] and means[0]["paper AuROC"] == 80.8
    assert per_class[0]["AuROC normal vs CE (%)"] == round(100 * cfg["metrics"]["auroc_normal_vs_ce"], 1)
    assert main([*args[:5], "--detectors", "svm"]) == 2
    assert main([*args[:5], "--digits", "12"]) == 2
    assert main([*args, "--dry-run"]) == 0
    assert capsys.readouterr().out.count("done  python -m xad train") == 2


def test_readme_calibration_table_is_generated_from_the_shipped_cards(tmp_path: Path) -> None:
    from xad import readme
    from xad.counterfactual import suite
    from xad.weights import WEIGHTS_DIR

    root = Path(__file__).resolve().parent.parent
    begin, end = readme.markers(suite.README_TAG)
    text = (root / "README.md").read_text()
    shipped = text[text.index(begin) + len(begin): text.index(end)].strip()
    assert shipped == suite.shipped_table(WEIGHTS_DIR).strip()  # stale after a card changed: regenerate
    m = json.loads((WEIGHTS_DIR / "cegan/mnist-7-hsc/config.json").read_text())["metrics"]
    import re

    assert re.search(rf"\| cegan/mnist-7-hsc +\| {m['target_error']:.3f} ", shipped)  # the card's number
    begin_vs, end_vs = readme.markers(suite.VS_TAG)  # the GAN-vs-DiffEdit table, from the same cards
    vs = text[text.index(begin_vs) + len(begin_vs): text.index(end_vs)].strip()
    assert vs == suite.gan_vs_diffedit_markdown(WEIGHTS_DIR).strip()
    assert "GAN (`cegan/mnist-7-hsc`)" in vs and "DiffEdit (`cegan/mnist-7-hsc-diffedit`)" in vs
    own = tmp_path / "README.md"
    own.write_text(f"intro\n{begin}\nold\n{end}\noutro\n")
    readme.replace_block(own, suite.README_TAG, "new table")
    assert own.read_text() == f"intro\n{begin}\nnew table\n{end}\noutro\n"
    own.write_text("no markers")
    with pytest.raises(DataError, match="needs exactly one"):
        readme.replace_block(own, suite.README_TAG, "x")
    assert main(["evaluate", "cegan", "--readme", str(own)]) == 2
    assert main(["evaluate", "cegan"]) == 2


def test_supervised_blue_detector_option_and_the_bias_table(tmp_path: Path) -> None:
    """--oe blue-anomalies trains on the blue training anomalies (never green ones, never test
    images); the detector's metrics split the AuROC by colour; the bias table reads them."""
    from xad.counterfactual import suite

    blue = semantic.blue_training_anomalies()
    assert len(blue) and blue.shape[1:] == (32, 32, 3)
    ink = blue.max(-1) > 40  # every stroke is drawn in blue: blue the strongest channel
    assert ink.any() and (blue[..., 2][ink] > blue[..., 1][ink]).all() and (blue[..., 1][ink] >= blue[..., 0][ink]).all()
    out = tmp_path / "detector" / "cmnist-sup"
    assert main(["train", "detector", "--setup", "cmnist:one+red", "--kind", "bce", "--oe", "blue-anomalies",
                 "--preset", "tiny", "--steps", "3", "--out", str(out)]) == 0
    m = json.loads((out / "config.json").read_text())["metrics"]
    assert {"test_auroc_blue", "test_auroc_green"} <= set(m)
    assert "Supervised, not outlier exposure" in (out / "card.md").read_text()
    rows = suite.bias_table(tmp_path)
    assert rows == [{"detector": "detector/cmnist-sup", "trained as": "supervised (blue anomalies only)",
                     "AuROC all anomalies (%)": round(100 * m["test_auroc"], 1),
                     "blue only (%)": round(100 * m["test_auroc_blue"], 1),
                     "green only (%)": round(100 * m["test_auroc_green"], 1), "paper, all anomalies (%)": 75.0}]
    assert main(["train", "detector", "--setup", "mnist:7", "--kind", "bce", "--oe", "blue-anomalies",
                 "--preset", "tiny", "--steps", "3", "--out", str(tmp_path / "x")]) == 2


def test_own_ten_class_gray_set_end_to_end(tmp_path: Path) -> None:
    """A user's own 28 x 28 ten-class gray set (here: MNIST turned upside down, 3000 + 600 images,
    written by the test as an MNIST npz) through every step: detector, FID extractor, generator,
    evaluation and the page's gallery all read the user's data, not the embedded MNIST."""
    m = np.load(Path(__file__).resolve().parent.parent / "data" / "mnist" / "mnist.npz")
    own = tmp_path / "own.npz"
    np.savez(own, x_train=m["x_train"][:3000, ::-1].copy(), y_train=m["y_train"][:3000],
             x_test=m["x_test"][:600, ::-1].copy(), y_test=m["y_test"][:600])
    root = tmp_path / "w"
    assert main(["train", "detector", "--setup", "mnist:4", "--kind", "hsc", "--preset", "tiny", "--steps", "3",
                 "--data", str(own), "--out", str(root / "detector" / "own-4")]) == 0
    assert main(["train", "features", "--dataset", "mnist", "--steps", "3", "--data", str(own),
                 "--out", str(root / "features" / "own")]) == 0
    assert main(["train", "cegan", "--setup", "mnist:4", "--detector", str(root / "detector" / "own-4"),
                 "--preset", "tiny", "--steps", "2", "--data", str(own), "--out", str(root / "cegan" / "own-4")]) == 0
    b = cfb.load_bundle(root / "cegan" / "own-4")
    assert b.data_path == str(own) and b.features_record.path == root / "features" / "own"
    m4 = json.loads((root / "cegan" / "own-4" / "config.json").read_text())["metrics"]
    n_anomalies = int((m["y_test"][:600] != 4).sum())
    assert m4["n_anomalies"] == n_anomalies  # the user's 600 test images, not MNIST's 10000
    images, labels = cfe.anomaly_gallery(b, 4)
    flipped = np.stack([semantic.pad_rgb(m["x_test"][:600, ::-1][m["y_test"][:600] != 4])])[0]
    assert any(np.array_equal(images[0], f) for f in flipped[:200])  # the gallery shows the user's images
    out = tmp_path / "r.json"
    assert main(["evaluate", "cegan", "--weights", str(root / "cegan" / "own-4"), "--limit", "40",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n_anomalies"] == 40


def test_init_from_continues_a_generator_and_records_both_stages(tiny_cf_bundle: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """``train cegan --init-from W``: training starts from W's G, D and R with only the objective
    flags given changed; W is untouched; config.json and the card name W's stage and command."""
    from xad import portable
    from xad.train.cegan import continued
    from xad.weights import load_model

    w0, r0 = load_model(tiny_cf_bundle, expect="CEGAN")
    model, preset, history = continued(tiny_cf_bundle, {"lambda_phi": 7.0})
    assert preset == r0.preset and model.config == dataclasses.replace(w0.config, lambda_phi=7.0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), w0.state_dict().values()))
    assert history == [{"folder": portable(tiny_cf_bundle), "command": r0.meta["command"],
                        "steps_done": r0.meta["steps_done"], "train_seconds": r0.meta["train_seconds"],
                        "objective": {"lambda_gan": w0.config.lambda_gan, "lambda_phi": w0.config.lambda_phi,
                                      "lambda_rec": w0.config.lambda_rec, "lambda_r": w0.config.lambda_r}}]
    before = (tiny_cf_bundle / "model.safetensors").read_bytes()
    detector = str(tiny_cf_bundle.parent.parent / "detector" / "tiny")
    out = tmp_path / "continued"
    base = ["train", "cegan", "--setup", "cmnist:one+red", "--detector", detector, "--init-from", str(tiny_cf_bundle)]
    assert main([*base, "--lambda-phi", "7", "--steps", "1", "--batch-size", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    rec = json.loads((out / "config.json").read_text())
    assert rec["config"]["lambda_phi"] == 7.0 and rec["config"]["colour_mixing"] and rec["config"]["cycle"] == "intensity"
    assert rec["history"][0]["folder"] == portable(tiny_cf_bundle) and rec["steps_done"] == 1
    card = (out / "card.md").read_text()
    assert f"continued from `{portable(tiny_cf_bundle)}`: {r0.meta['steps_done']} steps" in card
    assert r0.meta["command"] in card and "all stages together" in card
    assert (tiny_cf_bundle / "model.safetensors").read_bytes() == before
    # a second continuation keeps the whole chain, oldest first
    again, _, chain = continued(out)
    assert [h["folder"] for h in chain] == [portable(tiny_cf_bundle), portable(out)]
    for extra, message in ((["--setup", "mnist:7"], "was trained for cmnist:one+red, not --setup mnist:7"),
                           (["--concepts", "3"], "has K = 2 concepts, not --concepts 3"),
                           (["--out", str(tiny_cf_bundle), "--overwrite"], "--out must be a new folder")):
        argv = [*base, "--steps", "1", "--out", str(tmp_path / "x"), *extra]
        if extra[0] == "--setup":
            argv = [a if a != "cmnist:one+red" else "mnist:7" for a in argv[:-2]]
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_alpha_matched_ces_score_alpha_where_g_reaches_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """"alpha matched" (xad's extension): per image the bisection's alpha input gives a CE the
    detector scores at the target, within the score's change over one bisection step; where it
    ends at 0 or 1, G's own end already over- or undershoots; the CE is G at that input."""
    from xad.counterfactual.bundle import generate, generate_matched
    from xad.counterfactual.evaluation import calibration
    from xad.models.detectors import score_images
    from xad.weights import WEIGHTS_DIR

    b = cfb.load_bundle(WEIGHTS_DIR / "cegan" / "mnist-0-bce")  # G misses alpha by 0.26 on average
    x = semantic.load_setup(b.setup).anomalies_test[:16]
    for alpha in (0.2, 0.5, 0.8):
        ce, a_in, s = generate_matched(b, x, alpha, 0)
        assert np.array_equal(ce, generate(b, x, a_in, 0))
        np.testing.assert_allclose(s, cm_scores := score_images(b.detector, ce))
        inside = (a_in > 0) & (a_in < 1)
        assert inside.sum() >= 8 and np.abs(cm_scores[inside] - alpha).max() < 0.02
        top = score_images(b.detector, generate(b, x[a_in == 1], 1.0, 0))
        bottom = score_images(b.detector, generate(b, x[a_in == 0], 0.0, 0))
        assert (top < alpha).all() and (bottom >= alpha).all()
    raw, matched = calibration(b, x, (0.5,)), calibration(b, x, (0.5,), matched=True)
    assert matched["target_error_matched"] < 0.5 * raw["target_error"]
    assert set(matched) == {"calibration_matched", "target_error_matched", "target_error_matched_k1",
                            "target_error_matched_k2"} and "mean_alpha_input" in matched["calibration_matched"][0]
    # the one-image command: the CE it writes is G at the input it prints, and scores alpha
    i = int(np.flatnonzero(inside)[0])
    png = tmp_path / "x.png"
    Image.fromarray(x[i]).save(png)
    capsys.readouterr()
    assert main(["counterfactual", "--setup", "cegan/mnist-0-bce", "--image", str(png), "--alpha", "0.8",
                 "--concept", "1", "--match-alpha", "--out", str(tmp_path / "ce.png")]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["alpha_input"] == pytest.approx(float(a_in[i]), abs=1e-4)
    assert said["counterfactual_score"] == pytest.approx(0.8, abs=0.02)
