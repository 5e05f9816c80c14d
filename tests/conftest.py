"""Shared fixtures: the repository on sys.path, tiny MVTec-layout folders written per test."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "datasets"
# Tests never read or write the user's result cache (the browser test's server inherits this too).
os.environ["XAD_CACHE"] = tempfile.mkdtemp(prefix="xad-test-cache-")


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def allowed_test_roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dashboard opens folders only under its allowed roots: allow this session's temp folders
    (before any page or browser-test server starts, so they inherit it)."""
    base = tmp_path_factory.getbasetemp()
    os.environ["XAD_ALLOWED_ROOTS"] = str(base)
    return base


@pytest.fixture
def tiny_mvtec(tmp_path: Path) -> Path:
    """A valid MVTec-layout root with category "part": 3 train, 2 test good, 2 "scratch" with masks."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mvtec"
    cat = root / "part"
    for i in range(3):
        write_png(cat / "train" / "good" / f"{i:03d}.png", rng.integers(0, 255, (40, 40, 3), np.uint8))
    for i in range(2):
        write_png(cat / "test" / "good" / f"{i:03d}.png", rng.integers(0, 255, (40, 40, 3), np.uint8))
        write_png(cat / "test" / "scratch" / f"{i:03d}.png", rng.integers(0, 255, (40, 40, 3), np.uint8))
        mask = np.zeros((40, 40), np.uint8)
        mask[10:20, 5 + i: 15 + i] = 255
        write_png(cat / "ground_truth" / "scratch" / f"{i:03d}_mask.png", mask)
    return root


@pytest.fixture
def shared_data() -> Path:
    """The real datasets beside the project; skips cleanly where they are absent (a user's clone)."""
    if not (SHARED_DATA / "mvtec").is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_industrial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic generator's brick category, small: 4 train, 2 good + 1 per defect in test."""
    from xad.data import synthetic

    root = tmp_path_factory.mktemp("industrial")
    return synthetic.generate(root, ("brick",), n_train=4, n_test_good=2, n_per_defect=1)


@pytest.fixture(scope="session")
def tiny_vaegan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained VAE-GAN of the ``tiny`` preset (32 px) saved as a weights folder."""
    import torch

    from xad.models.vaegan import PRESETS, VAEGAN
    from xad.weights import save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights") / "vaegan" / "tiny"
    return save_model(VAEGAN(PRESETS["tiny"]), folder, family="vaegan", preset="tiny",
                      card="# tiny test model", meta={"category": "brick"})


@pytest.fixture(scope="session")
def tiny_ldm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny latent-diffusion model (3-4 steps per stage) trained on MNIST (0 anomalous) through
    the command, evaluated on 8 + 8 test images (sweep on 4 + 4)."""
    from xad.cli import main

    out = tmp_path_factory.mktemp("ldm-weights") / "ldm" / "tiny"
    assert main(["train", "ldm", "--setting", "mnist-anomalous:0", "--preset", "tiny", "--vq-steps", "3",
                 "--unet-steps", "3", "--clf-steps", "4", "--clf-pool", "16", "--negatives", "8",
                 "--holdout", "20", "--holdout-pairs", "8", "--batch-size", "8", "--eval-limit", "8",
                 "--sweep-limit", "4", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_cf_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny detector (HSC, 5 steps, two-colour OE) and a tiny counterfactual generator (3 steps,
    colour mixing, intensity cycle) trained on coloured MNIST through the commands, with a tiny FID extractor beside them."""
    from xad.cli import main

    root = tmp_path_factory.mktemp("cf-weights")
    assert main(["train", "detector", "--setup", "cmnist:one+red", "--kind", "hsc", "--preset", "tiny",
                 "--steps", "5", "--batch-size", "16", "--oe", "letters-two-colour",
                 "--out", str(root / "detector" / "tiny")]) == 0
    assert "in a second colour" in (root / "detector" / "tiny" / "card.md").read_text()  # the OE chosen
    assert main(["train", "features", "--dataset", "cmnist", "--steps", "3",
                 "--out", str(root / "features" / "cmnist-tiny")]) == 0
    assert main(["train", "cegan", "--setup", "cmnist:one+red", "--detector", str(root / "detector" / "tiny"),
                 "--preset", "tiny", "--steps", "3", "--batch-size", "8", "--lr", "3e-4", "--d-lr", "6e-4",
                 "--colour-mixing", "--cycle", "intensity", "--out", str(root / "cegan" / "tiny")]) == 0
    record = json.loads((root / "cegan" / "tiny" / "config.json").read_text())
    assert (record["train_settings"]["lr"], record["train_settings"]["d_lr"]) == (3e-4, 6e-4)  # TTUR recorded
    card = (root / "cegan" / "tiny" / "card.md").read_text()
    assert record["config"]["colour_mixing"] and "3x3 colour matrix" in card
    assert record["config"]["cycle"] == "intensity" and "`--cycle intensity`" in card
    return root / "cegan" / "tiny"


@pytest.fixture(scope="session")
def tiny_diffedit_cf_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DiffEdit version, tiny: a detector for mnist:7 (HSC, 5 steps), a text-conditional latent
    diffusion model (2 + 2 steps) and G' (3 steps on 8 psi-edited inputs), through the commands."""
    from xad.cli import main

    root = tmp_path_factory.mktemp("cf-diffedit-weights")
    assert main(["train", "detector", "--setup", "mnist:7", "--kind", "hsc", "--preset", "tiny",
                 "--steps", "5", "--batch-size", "16", "--out", str(root / "detector" / "tiny")]) == 0
    assert main(["train", "diffedit", "--dataset", "mnist", "--preset", "tiny", "--vae-steps", "2",
                 "--unet-steps", "2", "--batch-size", "8", "--eval-limit", "2",
                 "--out", str(root / "diffedit" / "tiny")]) == 0
    assert main(["train", "cegan", "--setup", "mnist:7", "--detector", str(root / "detector" / "tiny"),
                 "--diffedit", str(root / "diffedit" / "tiny"), "--edit-images", "8", "--edit-steps", "4",
                 "--eval-limit", "12", "--preset", "tiny", "--steps", "3", "--batch-size", "4",
                 "--out", str(root / "cegan" / "tiny-diffedit")]) == 0
    return root / "cegan" / "tiny-diffedit"
