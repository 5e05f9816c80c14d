"""The latent-diffusion detector on a tiny config (diffusers + transformers), its evaluation, the
setting syntax, Table 1, and (slow) a shipped digit re-evaluated against its card."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xad.data import settings
from xad.data.multiclass import holdout_split, load_setting
from xad.data.transforms import DataError
from xad.models.ldm import PRESETS, LatentDiffusionAD

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model() -> LatentDiffusionAD:
    torch.manual_seed(0)
    return LatentDiffusionAD(PRESETS["tiny"]).eval()


def test_shapes_latent_size_and_logit_score(model: LatentDiffusionAD) -> None:
    x = torch.rand(3, 3, 32, 32)
    assert model.encode(x).shape == (3, 3, 8, 8)  # 32x32 -> 8x8x3, as the paper
    assert model.config.latent_scale == 1.0  # the paper's unscaled latents
    r = model.reconstruct(x, 10, "ddpm", generator=torch.Generator().manual_seed(0))
    assert r.shape == x.shape and 0 <= r.min() and r.max() <= 1
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 32, 32)
    logits = model.pair_logits(x, r)
    torch.testing.assert_close(model.score(x, r), logits[:, 1] - logits[:, 0])
    torch.testing.assert_close(model.p_different(x, r), torch.softmax(logits, 1)[:, 1])
    assert model.classifier.config.num_channels == 6 and model.classifier.config.depths == [2, 2, 2, 2]


def test_reconstruction_is_seeded_and_t0_is_the_autoencoder(model: LatentDiffusionAD) -> None:
    x = torch.rand(2, 3, 32, 32)
    a = model.reconstruct(x, 20, "ddpm", generator=torch.Generator().manual_seed(4))
    b = model.reconstruct(x, 20, "ddpm", generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(model.reconstruct(x, 0), model.autoencode(x))


def test_ddim_starts_at_the_schedule_step_below_t(model: LatentDiffusionAD) -> None:
    assert model.first_timestep(20, "ddpm") == 20
    t0 = model.first_timestep(20, "ddim", 10)  # T = 50, 10 steps: 45, 40, ..., 0
    assert t0 <= 20 and t0 % 5 == 0


def test_setting_syntax_says_which_classes_are_normal(capsys: pytest.CaptureFixture) -> None:
    s = settings.parse("mnist-anomalous:0")
    assert (s.anomalous, s.normal, s.name) == ((0,), tuple(range(1, 10)), "mnist-anomalous:0")
    s = settings.parse("mnist-normal:7")
    assert (s.normal, s.anomalous[:2]) == ((7,), (0, 1))
    assert settings.parse("cifar10-normal:43210").name == "cifar10-normal:01234"
    assert settings.parse("cifar10-anomalous:cat").anomalous == (3,)
    assert settings.parse("cmnist-normal:one+red").legacy == "cmnist:one+red"
    assert capsys.readouterr().err == ""
    assert settings.parse("mnist:3", legacy="anomalous").name == "mnist-anomalous:3"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'mnist:3' is deprecated, write 'mnist-anomalous:3'" in err
    assert settings.parse("mnist:3", legacy="normal").name == "mnist-normal:3"  # the counterfactual reading
    assert settings.canonical("mnist:4", legacy="normal") == "mnist-normal:4" and capsys.readouterr().err == ""
    for bad, legacy in (("mnist:3", None), ("mnist-anomalous:x", None), ("mnist-sideways:1", None),
                        ("svhn-normal:1", None), ("mnist", None), ("cifar10-normal:11", None),
                        ("cmnist-anomalous:one+red", None)):
        with pytest.raises(DataError):
            settings.parse(bad, legacy)


def test_multiclass_data_and_holdout_split(capsys: pytest.CaptureFixture) -> None:
    d = load_setting("mnist-anomalous:0")
    assert d.anomalous_test.sum() == 980 and len(d.normal_train) == 60000 - 5923
    assert d.normal_train.shape[1:] == (32, 32, 3) and d.digit == 0
    assert np.isin(d.y_test[~d.anomalous_test], np.arange(1, 10)).all() and (d.y_train != 0).all()
    assert load_setting("mnist:0").setting == "mnist-anomalous:0" and "deprecated" in capsys.readouterr().err
    for bad in ("mnist-anomalous:x", "cifar10-normal:01234", "svhn-normal:1", "mnist-normal:7x"):
        with pytest.raises(DataError):
            load_setting(bad)
    fit, held = holdout_split(10, 3, seed=1)
    assert len(held) == 3 and len(fit) == 7 and not set(fit) & set(held)
    np.testing.assert_array_equal(held, holdout_split(10, 3, seed=1)[1])
    with pytest.raises(DataError):
        holdout_split(10, 10)


def test_scaling_negative_sampler_and_shipped_t(tmp_path: Path) -> None:
    """Latents scaled to a target std, DDIM negatives and a shipped t other than the preset's: the
    settings check them, the folder records them, the card says which sampler made the negatives."""
    from xad import ldm
    from xad.ldm_report import evaluate_folder
    from xad.train.ldm import LDMSettings, run

    for bad in ({"latent_scaling": "half"}, {"negative_sampler": "euler"}, {"latent_target_std": 0.0}, {"t": 0}):
        with pytest.raises(DataError):
            LDMSettings(**bad)
    s = LDMSettings(vq_steps=2, unet_steps=2, clf_steps=2, batch_size=8, vq_batch_size=8, clf_batch_size=8,
                    clf_pool=8, negatives=4, holdout=10, holdout_pairs=4, eval_every=1,
                    latent_scaling="std", latent_target_std=0.7, negative_sampler="ddim", ddim_steps=5, t=20)
    with pytest.raises(DataError):
        run("mnist-anomalous:0", tmp_path / "bad", dataclasses.replace(s, t=50), preset="tiny")
    folder = run("mnist-anomalous:0", tmp_path / "ldm", s, preset="tiny")
    model, r = ldm.load(folder)
    assert model.config.t_default == 20 and r.meta["train_settings"]["negative_sampler"] == "ddim"
    assert model.config.latent_scale == pytest.approx(0.7 / r.meta["latent_std"], rel=0.01)
    x = torch.from_numpy(load_setting("mnist-anomalous:0").normal_train[:64]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        assert float(model.encode(x).std()) == pytest.approx(0.7, rel=0.25)  # the fp16 copy, other images
    text = (evaluate_folder(folder, limit=4, sweep_limit=0) / "card.md").read_text()
    assert "by DDIM (5 steps; the paper's are DDPM)" in text and "to std 0.7" in text
    assert "from t = 20" in text and ldm.load(folder)[1].metrics["t"] == 20


def test_ink_control_and_drift_by_hand() -> None:
    from xad import ldm

    images = np.zeros((4, 2, 2, 3), np.uint8)
    images[1, 0, 0] = 255  # 3 units of ink
    images[2] = 255  # 12 units
    np.testing.assert_allclose(ldm.ink(images), [0, 3, 12, 0])
    assert ldm.auroc(np.array([False, True, True, False]), ldm.ink(images)) == 1.0

    class Fixed(torch.nn.Module):  # reads every image as digit 5
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [torch.nn.functional.one_hot(torch.full((len(x),), 5), 10).float()]

    rec = ldm.Reconstruction(np.zeros((4, 32, 32, 3)), *(np.zeros(4),) * 3, torch.zeros(4, 3, 32, 32))
    y, anomalous = np.array([5, 1, 5, 0]), np.array([False, False, True, True])
    assert ldm._drift(Fixed(), rec, y, anomalous) == {"drift_normal": 0.5, "drift_anomalous": 0.5}
    assert ldm._drift(None, rec, y, anomalous) == {"drift_normal": None, "drift_anomalous": None}


def test_class_change_reference_and_rank_correlation_by_hand() -> None:
    import math

    from scipy.stats import spearmanr

    from xad import ldm
    from xad import ldm_report as rep

    class FirstPixel(torch.nn.Module):  # logits of 3 classes: ln 2 x the first pixel's channels
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [math.log(2) * x[:, :, 0, 0]]

    x = torch.zeros(2, 3, 32, 32)
    x[0, 0, 0, 0] = 1.0  # class 0 (logits ln2, 0, 0)
    x[1, 2, 0, 0] = 1.0  # class 2
    rec = torch.zeros(2, 3, 32, 32)
    rec[0] = x[0]  # kept: P(class 0) = 2 / (2 + 1 + 1) = 0.5
    # rec[1] all zero: uniform, P(class 2) = 1/3
    np.testing.assert_allclose(ldm.class_change_scores(FirstPixel(), x, rec), [0.5, 2 / 3])
    assert ldm.rank_correlation(np.array([1, 2, 3, 4.0]), np.array([10, 20, 40, 30.0])) == 0.8  # 1 - 6*2/60
    a, b = np.array([3, 1, 1, 2, 5, 4.0]), np.array([1, 1, 2, 3, 2, 0.5])  # ties: average ranks
    assert ldm.rank_correlation(a, b) == round(float(spearmanr(a, b).statistic), 4)
    m = {"auroc_method": 0.6, "auroc_ddpm": 0.7, "auroc_latent": 0.8, "auroc_ae": 0.5, "auroc_ink": 0.55,
         "auroc_class_change": 0.66, "rank_corr_method_latent": 0.913}
    why = rep.diagnosis(m)
    assert "AUROC 66.0 %" in why and "would not beat latent error" in why and "(80.0 %)" in why and "0.91" in why
    assert "could beat every baseline" in rep.diagnosis(m | {"auroc_class_change": 0.85})
    assert rep.diagnosis({k: v for k, v in m.items() if k != "auroc_class_change"}) == ""


def test_class_partners_by_hand() -> None:
    from xad.train.ldm import class_partners

    y = np.array([3, 5, 3, 5, 5, 7])
    same, other = class_partners(y, np.array([0, 1, 5, 3]), np.array([True, False, False, False]),
                                 np.array([0.9, 0.5, 0.0, 0.99]))
    # 0 kept itself; 1 (class 5): mates [1, 3, 4], 0.5 -> 3; 5 (class 7): mates [5] -> 5; 3: mates -> 4
    assert same.tolist() == [0, 3, 5, 4]
    # others: 0 -> [1, 3, 4, 5] at 0.9 -> 5; 1 -> [0, 2, 5] at 0.5 -> 2; 5 -> [0..4] at 0 -> 0; 3 -> [0, 2, 5] -> 5
    assert other.tolist() == [5, 2, 0, 5]


def test_pair_jitter_shifts_each_partner_within_its_bound() -> None:
    from xad.train.ldm import LDMSettings, jitter

    x = torch.zeros(64, 3, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel in the centre of every image
    y = jitter(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.sum().item() == 64 * 3  # a shift by <= 2 keeps the pixel inside
    where = [tuple(int(v) - 4 for v in torch.nonzero(y[i, 0])[0]) for i in range(64)]
    assert all(max(abs(dy), abs(dx)) <= 2 for dy, dx in where) and len(set(where)) > 12  # all 25 shifts likely
    assert torch.equal(y[:, 0], y[:, 2])  # every channel moves together
    again = jitter(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(y, again) and jitter(x, 0, torch.Generator()) is x
    edge = torch.zeros(1, 1, 5, 5)
    edge[0, 0, 0, 0] = 1.0
    moved = jitter(edge.expand(40, 1, 5, 5).contiguous(), 1, torch.Generator().manual_seed(1))
    assert sorted({m.sum().item() for m in moved}) == [0.0, 1.0]  # shifted off the border: gone, not wrapped
    with pytest.raises(DataError, match="jitter"):
        LDMSettings(pair_jitter=8)
    from xad import ldm_report as rep
    from xad.train.ldm import augment_partners

    digit = torch.zeros(4, 3, 32, 32)
    digit[:, :, 8:24, 14:18] = 1.0  # a vertical bar
    assert augment_partners(digit, LDMSettings(), torch.Generator()) is digit
    turned = augment_partners(digit, LDMSettings(pair_affine=True), torch.Generator().manual_seed(0))
    assert torch.equal(turned, augment_partners(digit, LDMSettings(pair_affine=True), torch.Generator().manual_seed(0)))
    assert (turned - digit).abs().amax(dim=(1, 2, 3)).min().item() > 0.5  # every partner moved
    assert rep.pair_augmentation({}) == "" and rep.pair_augmentation({"pair_jitter": 0, "pair_affine": False}) == ""
    words = rep.pair_augmentation({"pair_jitter": 3, "pair_affine": True})
    assert "up to 15 degrees" in words and "by up to 3 pixels" in words and "not the paper's" in words


def test_classifier_alone_on_class_pairs_from_a_trained_folder(tiny_ldm: Path, tmp_path: Path) -> None:
    """--from-weights keeps the VQ + UNet bit for bit and trains only the classifier, on class pairs."""
    from safetensors.torch import load_file

    from xad import ldm_report
    from xad.cli import main
    from xad.weights import read_record

    out = tmp_path / "ldm" / "classes"
    args = ["train", "ldm", "--setting", "mnist-anomalous:0", "--from-weights", str(tiny_ldm), "--negative-kind",
            "classes", "--clf-steps", "4", "--clf-pool", "16", "--holdout-pairs", "8", "--batch-size", "8",
            "--eval-limit", "8", "--sweep-limit", "4", "--out", str(out)]
    assert main(args) == 0
    a, b = load_file(tiny_ldm / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    changed = {k.split(".")[0] for k in a if not torch.equal(a[k], b[k])}
    assert changed == {"classifier"}
    # it continues from the folder's classifier (4 Adam steps at lr 1e-3 move a weight by about 4e-3;
    # a fresh initialisation would differ by tenths), as the card says
    convs = [k for k in a if k.startswith("classifier") and a[k].ndim == 4]
    assert convs and max((a[k].float() - b[k].float()).abs().max().item() for k in convs) < 0.01
    assert "starting from that folder's trained classifier" in (out / "card.md").read_text()
    r = read_record(out)
    assert r.meta["reused_from"]["folder"].endswith("tiny") and r.meta["train_settings"]["holdout"] == 20
    assert ldm_report.extension(r) and not ldm_report.extension(read_record(tiny_ldm))
    card = (out / "card.md").read_text()
    assert "another normal class" in card and ldm_report.EXTENSION_METHOD in card and "only the classifier" in card
    assert card.splitlines()[0] == "# Latent-diffusion detector (tiny preset, class-labelled pairs (extension)) — " \
                                   "mnist-anomalous:0"  # the title says it is an extension, as the page's picker
    assert ldm_report.pairs_label(r) == "class-labelled pairs (extension)"
    assert ldm_report.pairs_label(read_record(tiny_ldm)) == "the paper's pairs"
    lines = card.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("- **CPU wall time:**"))
    times = " ".join(lines[at:at + 2])
    assert "(pairs" in times and "VQ" not in times  # only the classifier's stages were timed here
    import dataclasses

    base = dataclasses.replace(read_record(tiny_ldm), preset="cpu")  # Table 1 lists cpu-preset models
    t = ldm_report.table1([dataclasses.replace(r, preset="cpu"), base])
    assert t["model"].iloc[0] == base.name  # the paper's recipe stays the row
    assert t["class pairs (ext.)"].iloc[0] == round(100 * r.metrics["auroc_method"], 1)
    assert main(["train", "ldm", "--setting", "mnist-anomalous:1", "--from-weights", str(tiny_ldm),
                 "--out", str(tmp_path / "x")]) == 2  # another setting: one line, no traceback


def test_trained_folder_has_card_sweep_and_every_auroc(tiny_ldm: Path) -> None:
    from xad import ldm
    from xad.weights import read_record

    r = read_record(tiny_ldm)
    m = r.metrics
    assert r.meta["setting"] == "mnist-anomalous:0" and r.meta["train_settings"]["sampler"] == "ddpm"
    assert m["n_normal"] == 8 and m["n_anomalous"] == 8 and m["sampler"] == "ddpm"
    assert {f"auroc_{k}" for k in ldm.SCORES} <= set(m) and m["drift_normal"] is not None
    clf = r.meta["classifier"]
    best = min(clf["history"], key=lambda h: h["heldout_loss"])
    assert clf["best_step"] == best["step"] and clf["heldout_loss"] == best["heldout_loss"]
    # the card's numbers are the metrics' numbers
    card = (tiny_ldm / "card.md").read_text()
    assert f"| {100 * m['auroc_ink']:.1f} |" in card and f"| {100 * m['auroc_method']:.1f} |" in card
    assert "python -m xad train ldm --setting mnist-anomalous:0" in card and "garbled" in card
    from xad import ldm_report

    assert ldm_report.diagnosis(m).startswith("Class-change reference") and ldm_report.diagnosis(m) in card
    for bf16, words in ((True, "thread(s), bf16 autocast"), (False, "thread(s), fp32")):  # the precision it ran in
        meta = r.meta | {"train_settings": r.meta["train_settings"] | {"bf16": bf16}}
        assert words in ldm_report.card(dataclasses.replace(r, meta=meta), pd.DataFrame())
    table = ldm.load_sweep(tiny_ldm, ldm.sweep_params(limit=4))
    assert list(table["t"]) == list(ldm.sweep_ts(ldm.load(tiny_ldm)[0], 100)) and len(table) == 11
    assert {"drift_normal", "drift_anomalous", "auroc_latent"} <= set(table.columns)
    assert ldm.load_sweep(tiny_ldm, ldm.SHIPPED_SWEEP) is None  # made with another limit


def test_evaluate_is_seeded_and_the_sweep_is_cached(tiny_ldm: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from xad import ldm

    monkeypatch.setattr(ldm, "CACHE_DIR", tmp_path)
    model, record = ldm.load(tiny_ldm)
    data = load_setting(record.meta["setting"])
    a = ldm.evaluate(model, data, limit=5, seed=3)
    assert a == ldm.evaluate(model, data, limit=5, seed=3) and a["n_normal"] == 5
    again = ldm.evaluate(model, data, limit=8)  # how the card was made
    assert {k: again[k] for k in again} == {k: record.metrics[k] for k in again}
    params = ldm.sweep_params(limit=3, seed=3)
    assert ldm.find_sweep(tiny_ldm, data, params) is None
    calls = []
    s1 = ldm.cached_sweep(tiny_ldm, data, params, model, progress=lambda i, n: calls.append((i, n)))
    assert calls[-1] == (11, 11) and len(list(tmp_path.glob("*.json"))) == 1
    np.testing.assert_allclose(s1.to_numpy(float), ldm.find_sweep(tiny_ldm, data, params).to_numpy(float))
    assert ldm.find_sweep(tiny_ldm, data, ldm.sweep_params(limit=3, seed=4)) is None  # another key
    np.testing.assert_allclose(s1.to_numpy(float), ldm.run_sweep(model, data, params).to_numpy(float))


def test_sample_view_and_figures(tiny_ldm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xad import ldm

    monkeypatch.setattr(ldm, "CACHE_DIR", tmp_path)
    from xad.plots import ldm as pl

    model, record = ldm.load(tiny_ldm)
    data = load_setting(record.meta["setting"])
    v = ldm.sample_view(model, data, 10, n=2, seed=1)
    assert v.images.shape == (4, 32, 32, 3) and v.reconstructions.shape == (4, 32, 32, 3)
    assert list(v.anomalous) == [False, False, True, True] and (v.labels[2:] == 0).all()
    assert v.sampler == "ddpm" and v.start_t == 10 and v.predicted.shape == (4,)
    w = ldm.sample_view(model, data, 10, n=2, seed=1)
    np.testing.assert_array_equal(v.reconstructions, w.reconstructions)
    with pytest.raises(ValueError):
        ldm.sample_view(model, data, model.config.timesteps)
    grid = ldm.timestep_grid(model, v.images, None, "ddim", 10)
    assert grid.shape == (4, 11, 32, 32, 3)
    np.testing.assert_allclose(grid[:, 0], ldm.reconstruct(model, v.images, 0).images)  # t = 0: the autoencoder
    seen = []
    v2, cached = ldm.cached_grid(tiny_ldm, data, "ddim", 2, 1, 10, model, progress=lambda i, n: seen.append((i, n)))
    np.testing.assert_array_equal(cached, ldm.timestep_grid(model, v.images, None, "ddim", 10, seed=1))
    np.testing.assert_array_equal(v2.images, v.images)
    assert seen == [(i, 11) for i in range(1, 12)]
    again = ldm.find_grid(tiny_ldm, data, "ddim", 2, 1, 10)  # read back, not recomputed
    assert again is not None and (again[1] == cached).all() and ldm.find_grid(tiny_ldm, data, "ddim", 2, 2, 10) is None
    schedule = [int(s) for s in model.scheduler("ddim", 10).timesteps]
    assert ldm.grid_cost(model, "ddim", 10) == sum(sum(1 for s in schedule if s <= t) for t in ldm.sweep_ts(model)[1:])
    assert ldm.grid_cost(model, "ddpm") == sum(t + 1 for t in ldm.sweep_ts(model)[1:])  # DDPM: t ... 0
    assert "t = 10" in pl.reconstructions_figure(v).layout.title.text
    assert f"reads {v.predicted[0]}" in pl.reconstructions_figure(v).layout.annotations[4].text
    fig = pl.timestep_grid_figure(v.images, v.labels, v.anomalous, grid, ldm.sweep_ts(model))
    assert [a.text for a in fig.layout.annotations][:3] == [f"normal {v.labels[0]}", "t = 0", "t = 2"]
    table = ldm.load_sweep(tiny_ldm)
    fig = pl.auroc_curve_figure(table, 10)
    assert len(fig.data) == 2 and fig.layout.shapes[-1].x0 == 10
    fig = pl.drift_curve_figure(table, 10)
    np.testing.assert_allclose(fig.data[0].y, 100 * table["drift_anomalous"].to_numpy(float))


def test_table1_and_paper_reading(tiny_ldm: Path, tmp_path: Path) -> None:
    from xad import ldm_report as rep
    from xad.weights import ModelRecord

    assert rep.PAPER_MNIST["method"][0] is None and rep.PAPER_MNIST["method"][1] == 64.9
    assert rep.PAPER_MNIST["method"][9] == 56.3 < rep.PAPER_MNIST["ddpm"][9] == 72.6
    reported = [v for v in rep.PAPER_MNIST["method"].values() if v is not None]
    assert round(sum(reported) / len(reported), 1) == 68.3
    m0 = {"auroc_method": 0.8, "auroc_ddpm": 0.7, "auroc_latent": 0.6, "auroc_ae": 0.5, "auroc_ink": 0.75}
    m1 = {**m0, "auroc_method": 0.6, "auroc_ink": 0.1}
    recs = [ModelRecord(tmp_path / f"mnist-{d}-cpu", "LatentDiffusionAD", "ldm", "cpu", {},
                        {"setting": f"mnist-anomalous:{d}"}, m) for d, m in ((1, m1), (0, m0))]
    t = rep.table1(recs)
    assert list(t["digit"]) == ["0", "1", "mean"] and list(t["ours beats all"]) == ["yes", "no", "1 of 2"]
    import pyarrow as pa

    pa.Table.from_pandas(t)  # one type per column: the page's st.dataframe shows it without a fallback
    assert list(t["ours method"]) == [80.0, 60.0, 70.0] and list(t["paper method"].fillna(-1)[:2]) == [-1, 64.9]
    assert t["paper method"].iloc[2] == 64.9  # the mean over the digits the paper reports
    rows = rep.auroc_table(m0 | {"sampler": "ddpm", "t": 200}, 1)
    assert rows["paper AUROC %"].fillna(-1).tolist() == [64.9, 61.4, -1, 60.2, -1, 54.6]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{rep.TABLE_BEGIN}\nold\n{rep.TABLE_END}\nend\n")
    rep.write_readme(readme, recs)
    text = readme.read_text()
    assert "old" not in text and "| 0 |" in text and text.startswith("intro") and text.endswith("end\n")
    readme.write_text("no markers")
    with pytest.raises(DataError):
        rep.write_readme(readme, recs)


def test_evaluate_command_writes_every_auroc_and_drift(tiny_ldm: Path, tmp_path: Path) -> None:
    from xad.cli import main

    out = tmp_path / "r.json"
    assert main(["evaluate", "ldm", "--weights", str(tiny_ldm), "--limit", "6", "--sweep-limit", "4",
                 "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert {"auroc_method", "auroc_ae", "auroc_ddpm", "auroc_latent", "auroc_ink"} <= set(r)
    assert r["n_normal"] == 6 and set(r["drift"]) == {str(t) for t in r["sweep"]["table"]["t"]}
    assert set(r["drift"]["0"]) == {"normal", "anomalous"}
    assert main(["evaluate", "ldm", "--weights", str(tiny_ldm), "--t", "5000", "--out", str(out)]) == 2
    assert main(["evaluate", "ldm", "--out", str(out)]) == 2
    assert main(["train", "ldm", "--setting", "mnist-sideways:0", "--out", str(tmp_path / "x")]) == 2


def test_ldm_command_writes_the_page_figures(tiny_ldm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xad import ldm
    from xad.cli import main

    monkeypatch.setattr(ldm, "CACHE_DIR", tmp_path / "cache")
    out = tmp_path / "out"
    assert main(["ldm", "--weights", str(tiny_ldm), "--t", "10", "--samples", "2", "--format", "html",
                 "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["tiny_auroc_table.csv", "tiny_auroc_vs_t_ddpm.csv", "tiny_auroc_vs_t_ddpm.html",
                     "tiny_drift_vs_t_ddpm.html", "tiny_reconstructions_t10.html", "tiny_samples_t10.csv",
                     "tiny_timestep_grid.html"]
    assert main(["ldm", "--weights", str(tiny_ldm), "--t", "5000", "--out", str(out)]) == 2
    assert main(["ldm", "--weights", "ldm/no-such-model", "--out", str(out)]) == 2


def test_inference_never_imports_training() -> None:
    code = ("import sys, xad.ldm, xad.ldm_report, xad.plots.ldm, xad.data.multiclass; "
            "bad = [m for m in sys.modules if m.startswith('xad.train') or m == 'streamlit']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    page = (ROOT / "pages" / "latent_diffusion.py").read_text()
    assert "xad.train" not in page


@pytest.mark.slow
def test_shipped_digit_reaches_its_card() -> None:
    """Re-evaluate one shipped digit (the first) exactly as its card was made; the numbers must match."""
    from xad import ldm

    shipped = sorted((ROOT / "weights" / "ldm").glob("mnist-*-cpu/config.json"))
    if not shipped:
        pytest.skip("no latent-diffusion digit shipped")
    folder = shipped[0].parent
    model, record = ldm.load(folder)
    m = record.metrics
    got = ldm.evaluate(model, load_setting(record.meta["setting"]), m["t"], m["sampler"], limit=m["n_normal"],
                       seed=m["seed"])
    for key in [f"auroc_{k}" for k in ldm.SCORES] + ["drift_normal", "drift_anomalous"]:
        assert abs(got[key] - m[key]) <= 0.005, (key, got[key], m[key])
    assert got["auroc_ink"] == m["auroc_ink"]  # no model: exactly


def test_readme_ldm_blocks_are_generated() -> None:
    """Table 1 and the ink table in the README are what the commands compute now."""
    from xad import ldm_report as rep
    from xad import readme

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()

    def block(tag: str) -> str:
        begin, end = readme.markers(tag)
        return text[text.index(begin) + len(begin): text.index(end)].strip()

    assert block(rep.README_TAG) == rep.table1_markdown().strip()
    assert block(rep.INK_TAG) == rep.markdown(rep.ink_controls()).strip()
