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
