"""The latent-diffusion detector's building blocks on a tiny config (diffusers + transformers)."""

import numpy as np
import pytest
import torch

from xad.data.transforms import DataError
from xad.models.ldm import PRESETS, LatentDiffusionAD
from xad.train.ldm import load_setting


@pytest.fixture(scope="module")
def model() -> LatentDiffusionAD:
    torch.manual_seed(0)
    return LatentDiffusionAD(PRESETS["tiny"]).eval()


def test_shapes_and_latent_size(model: LatentDiffusionAD) -> None:
    x = torch.rand(3, 3, 32, 32)
    assert model.encode(x).shape == (3, 3, 8, 8)  # 32x32 -> 8x8x3, as the paper
    r = model.reconstruct(x, 10, "ddim", 10, torch.Generator().manual_seed(0))
    assert r.shape == x.shape and 0 <= r.min() and r.max() <= 1
    assert model.sample(2, "ddim", 5, torch.Generator().manual_seed(0)).shape == (2, 3, 32, 32)
    s = model.score(x, r)
    assert s.shape == (3,) and ((s >= 0) & (s <= 1)).all()
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


def test_settings() -> None:
    d = load_setting("mnist:0")
    assert d.anomalous_test.sum() == 980 and len(d.normal_train) == 60000 - 5923
    assert d.normal_train.shape[1:] == (32, 32, 3)
    for bad in ("mnist:x", "cifar10:01234", "svhn:1"):
        with pytest.raises(DataError):
            load_setting(bad)
    assert np.isin(d.y_test[~d.anomalous_test], np.arange(1, 10)).all()


def test_trained_folder_has_card_sweep_and_metrics(tiny_ldm) -> None:  # noqa: ANN001
    from xad import ldm
    from xad.weights import read_record

    r = read_record(tiny_ldm)
    m = r.metrics
    assert m["ddim"]["n_normal"] == 20 and m["ddim"]["n_anomalous"] == 20
    assert 0 <= m["ddim"]["auroc_method"] <= 1 and 0 <= m["ddpm"]["auroc_autoencoder"] <= 1
    params = {**ldm.SHIPPED_SWEEP, "limit": 20}
    table = ldm.load_sweep(tiny_ldm, params)
    assert list(table["t"]) == list(ldm.sweep_ts(ldm.load(tiny_ldm)[0])) and len(table) == 11
    assert ldm.load_sweep(tiny_ldm, ldm.SHIPPED_SWEEP) is None  # made with another limit
    card = (tiny_ldm / "card.md").read_text()
    assert "python -m xad train ldm" in card and "baseline" in card


def test_sweep_is_cached_on_disk_and_keyed_by_parameters(tiny_ldm, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from xad import ldm

    monkeypatch.setattr(ldm, "CACHE_DIR", tmp_path)
    model, record = ldm.load(tiny_ldm)
    data = load_setting(record.meta["setting"])
    assert ldm.find_sweep(tiny_ldm, data, "ddim", 10, 8, 3) is None
    calls = []
    a = ldm.cached_sweep(tiny_ldm, data, "ddim", 10, 8, 3, model, progress=lambda i, n: calls.append((i, n)))
    assert calls[-1] == (11, 11) and len(list(tmp_path.glob("*.json"))) == 1
    b = ldm.find_sweep(tiny_ldm, data, "ddim", 10, 8, 3)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy())
    assert ldm.find_sweep(tiny_ldm, data, "ddim", 10, 8, 4) is None  # another seed, another key
    again = ldm.sweep(model, data, None, "ddim", 10, 8, 3)  # same seed, same numbers
    np.testing.assert_allclose(a.to_numpy(), again.to_numpy())


def test_sample_view_and_figures(tiny_ldm) -> None:  # noqa: ANN001
    from xad import ldm
    from xad.plots import ldm as pl

    model, record = ldm.load(tiny_ldm)
    data = load_setting(record.meta["setting"])
    v = ldm.sample_view(model, data, 10, "ddim", 10, n=2, seed=1)
    assert v.images.shape == (4, 32, 32, 3) and v.reconstructions.shape == (4, 32, 32, 3)
    assert list(v.anomalous) == [False, False, True, True] and (v.labels[2:] == 0).all()
    assert v.start_t <= 10
    w = ldm.sample_view(model, data, 10, "ddim", 10, n=2, seed=1)
    np.testing.assert_array_equal(v.reconstructions, w.reconstructions)
    with pytest.raises(ValueError):
        ldm.sample_view(model, data, model.config.timesteps, "ddim")
    grid = ldm.timestep_grid(model, v.images, None, "ddim", 10)
    assert grid.shape == (4, 11, 32, 32, 3)
    np.testing.assert_allclose(grid[:, 0], ldm.reconstruct(model, v.images, 0).images)  # t = 0: the autoencoder
    assert "t = 10" in pl.reconstructions_figure(v).layout.title.text
    fig = pl.timestep_grid_figure(v.images, v.labels, v.anomalous, grid, ldm.sweep_ts(model))
    assert [a.text for a in fig.layout.annotations][:3] == ["normal 0".replace("0", str(v.labels[0])), "t = 0", "t = 2"]
    table = ldm.load_sweep(tiny_ldm)
    fig = pl.auroc_curve_figure(table, 10)
    assert len(fig.data) == 2 and fig.layout.shapes[-1].x0 == 10


def test_ldm_command_writes_the_page_figures(tiny_ldm, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from xad import ldm
    from xad.cli import main

    monkeypatch.setattr(ldm, "CACHE_DIR", tmp_path / "cache")
    out = tmp_path / "out"
    assert main(["ldm", "--weights", str(tiny_ldm), "--t", "10", "--samples", "2", "--format", "html",
                 "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["tiny_auroc_table.csv", "tiny_auroc_vs_t_ddim.csv", "tiny_auroc_vs_t_ddim.html",
                     "tiny_reconstructions_t10.html", "tiny_samples_t10.csv", "tiny_timestep_grid.html"]
    assert main(["ldm", "--weights", str(tiny_ldm), "--t", "5000", "--out", str(out)]) == 2
    assert main(["ldm", "--weights", "ldm/no-such-model", "--out", str(out)]) == 2
