"""Training and evaluation commands on tiny configs: weights folder, card, metrics, determinism."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xad.cli import main
from xad.models.vaegan import PRESETS, VAEGAN
from xad.train.augment import PROFILES, augment
from xad.train.vaegan import TrainSettings, train
from xad.weights import load_model


def test_train_vaegan_command_writes_weights_and_card(tiny_industrial: Path, tmp_path: Path) -> None:
    out = tmp_path / "w"
    args = ["train", "vaegan", "--data", str(tiny_industrial), "--category", "brick", "--preset",
            "tiny", "--steps", "3", "--batch-size", "2", "--seed", "5", "--out", str(out)]
    assert main(args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["class"] == "VAEGAN" and cfg["category"] == "brick"
    assert cfg["steps_done"] == 3 and cfg["seed"] == 5 and "--preset tiny" in cfg["command"]
    assert set(cfg["metrics"]["auroc_by_defect"]) == {"crack", "hole", "scratch", "stain"}
    assert cfg["resize"] == "stretch" and cfg["kept_step"] in cfg["learning_curve"]["step"]
    assert cfg["learning_curve"]["step"] == [3] and len(cfg["heldout_ids"]) == 1  # 4 train images: 3 + 1
    card = (out / "card.md").read_text()
    assert "image AUROC" in card and "--preset tiny" in card and "AUROC per defect type" in card
    assert "## Learning curve" in card and "| 3 **kept** |" in card
    model, _ = load_model(out, expect="VAEGAN")
    assert model.config == PRESETS["tiny"]
    # the stored AUROC, recomputed with sklearn from plain numpy maps (alpha = max |gs(x) - gs(x')|)
    from sklearn.metrics import roc_auc_score

    from xad.data.catalog import resolve_mvtec
    from xad.explain.reconstruction import reconstruct

    ds = resolve_mvtec(str(tiny_industrial), "brick")
    samples = [ds.load(r, model.config.image_size, "nearest") for r in ds.refs("test")]
    x = np.stack([s.image for s in samples])
    rec = reconstruct(model, x, bf16=False)
    alpha = np.abs((x / 255.0).max(-1) - rec.max(-1)).reshape(len(x), -1).max(1)
    want = roc_auc_score([s.is_anomalous for s in samples], alpha)
    assert cfg["metrics"]["test_auroc"] == pytest.approx(want, abs=1e-4)
    assert main(["evaluate", "vaegan", "--weights", str(out), "--data", str(tiny_industrial)]) == 0


def test_training_is_seeded() -> None:
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), np.uint8)
    init = VAEGAN(PRESETS["tiny"])  # one initialisation, copied: no re-seeding between runs
    states = []
    for seed in (9, 9, 10):
        model = copy.deepcopy(init)
        train(model, images, TrainSettings(steps=2, batch_size=3, seed=seed, compile=False), progress=False)
        states.append(model.state_dict())
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k])
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_augment_keeps_range_and_is_seeded() -> None:
    x = torch.rand(4, 3, 16, 16)
    a = augment(x, PROFILES["object"], torch.Generator().manual_seed(1))
    b = augment(x, PROFILES["object"], torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(augment(x, PROFILES["none"], torch.Generator()), x, atol=1e-5, rtol=0)


def test_split_holdout_sizes_disjoint_and_seeded() -> None:
    from xad.train.vaegan import split_holdout

    fit, held = split_holdout(200, 0.1, seed=3)
    assert len(fit) == 180 and len(held) == 20 and not set(fit) & set(held)
    assert sorted([*fit, *held]) == list(range(200))
    assert [len(a) for a in split_holdout(10, 0.1, 0)] == [9, 1]
    assert [len(a) for a in split_holdout(1, 0.1, 0)] == [1, 0]  # one image: nothing to hold out
    assert [len(a) for a in split_holdout(10, 0.0, 0)] == [10, 0]
    np.testing.assert_array_equal(split_holdout(200, 0.1, 3)[1], held)


def test_bernoulli_entropy_is_the_bce_floor() -> None:
    from xad.train.vaegan import bernoulli_entropy

    half = torch.full((1, 1, 2, 2), 0.5)
    assert abs(bernoulli_entropy(half).item() - 4 * np.log(2)) < 1e-5  # 2.7726 nats
    assert bernoulli_entropy(torch.tensor([[[[0.0, 1.0]]]])).item() < 1e-4
    bce = torch.nn.functional.binary_cross_entropy(half, half, reduction="sum")
    assert abs(bce.item() - bernoulli_entropy(half).item()) < 1e-5


def test_test_checkpoints_spread_over_the_planned_steps() -> None:
    from xad.train.vaegan import _test_steps

    assert _test_steps(TrainSettings(steps=1000, eval_every=100, test_checkpoints=5)) == {200, 400, 600, 800, 1000}
    assert _test_steps(TrainSettings(steps=300, eval_every=100, test_checkpoints=5)) == {100, 200, 300}
    assert _test_steps(TrainSettings(steps=10, eval_every=100, test_checkpoints=2)) == {10}


def _tiny_run(**kw) -> tuple:  # noqa: ANN003
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), np.uint8)
    torch.manual_seed(0)
    model = VAEGAN(PRESETS["tiny"])
    s = TrainSettings(**{"batch_size": 4, "seed": 1, "eval_every": 2, "compile": False, "gan_weight": 1.0, **kw})
    log = train(model, images[:6], s, progress=False, heldout=images[6:], test=lambda m: 0.5)
    return model, log, images


def test_learning_curve_and_the_kept_checkpoint_is_the_best_heldout() -> None:
    from xad.train.vaegan import heldout_losses

    model, log, images = _tiny_run(steps=8)
    c = log.curve
    assert c["step"] == [2, 4, 6, 8] and len(c["heldout"]["bce"]) == 4 and len(c["train"]["kl"]) == 4
    best = int(np.argmin(c["heldout"]["bce"]))
    assert log.kept_step == c["step"][best] and log.steps_done == 8
    held = torch.from_numpy(images[6:]).permute(0, 3, 1, 2).float() / 255
    # the model returned carries the kept weights: its held-out loss is the curve's minimum
    assert abs(heldout_losses(model, held, False)["bce"] - c["heldout"]["bce"][best]) < 0.01
    assert c["test_auroc"] == {"step": [2, 4, 6, 8], "auroc": [0.5, 0.5, 0.5, 0.5]}
    assert all(v is not None for v in c["train"]["d"])


def test_vae_only_and_warmup_leave_the_discriminator_alone() -> None:
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in VAEGAN(PRESETS["tiny"]).discriminator.state_dict().items()}
    model, log, _ = _tiny_run(steps=4, gan_weight=0.0)
    assert log.curve["train"]["g"] == [None, None] and log.curve["train"]["d"] == [None, None]
    for k, v in model.discriminator.state_dict().items():
        torch.testing.assert_close(v, before[k])
    _, log, _ = _tiny_run(steps=4, gan_warmup=2)
    assert log.curve["train"]["d"][0] is None and log.curve["train"]["d"][1] is not None


def test_square_geometry_stretch_pad_crop() -> None:
    from xad.data.transforms import square_geometry

    a = np.arange(8).reshape(2, 4)
    np.testing.assert_array_equal(square_geometry(a, "stretch"), a)
    np.testing.assert_array_equal(square_geometry(a, "crop"), [[1, 2], [5, 6]])
    padded = square_geometry(a, "pad")
    assert padded.shape == (4, 4)
    np.testing.assert_array_equal(padded[1:3], a)
    assert padded[0].sum() == 0 and padded[3].sum() == 0
    assert square_geometry(np.ones((4, 2, 3), np.uint8), "pad")[:, 0].sum() == 0


def test_resize_option_moves_masks_with_images(tmp_path: Path) -> None:
    from PIL import Image

    from xad.data.mvtec import MVTecDataset

    root = tmp_path / "odd"
    for sub in ("train/good", "test/good", "test/dent", "ground_truth/dent"):
        (root / "part" / sub).mkdir(parents=True)
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 30:34] = 255  # a bright bar at columns 30-33 of a 40-wide image
    mask = np.zeros((20, 40), np.uint8)
    mask[:, 30:34] = 255
    Image.fromarray(img).save(root / "part/test/dent/000.png")
    Image.fromarray(mask).save(root / "part/ground_truth/dent/000_mask.png")
    ds = MVTecDataset(root, "part")
    ref = ds.refs("test")[0]
    for geometry, cols in (("stretch", [15, 16]), ("pad", [15, 16]), ("crop", [])):
        s = ds.load(ref, 20, "nearest", geometry)
        assert s.image.shape == (20, 20, 3) and s.mask.shape == (20, 20)
        assert sorted(set(np.nonzero(s.mask)[1])) == cols, geometry
        np.testing.assert_array_equal(s.image[..., 0] > 127, s.mask)
    pad = ds.load(ref, 20, "nearest", "pad")
    assert pad.mask[:5].sum() == 0 and pad.mask[5:15].all(axis=0).sum() == 2  # rows 5-14 hold the image


def test_learning_curve_figure_marks_the_kept_step() -> None:
    from xad.plots.training import learning_curve_figure

    curve = {"every": 2, "step": [2, 4], "minutes": [0.1, 0.2],
             "train": {"bce": [10.0, 9.0], "kl": [1.0, 2.0], "g": [None, None], "d": [None, None]},
             "heldout": {"bce": [5.0, 4.0], "bce_excess": [1.0, 0.5], "mse": [0.1, 0.05]},
             "test_auroc": {"step": [4], "auroc": [0.7]}}
    fig = learning_curve_figure(curve, kept_step=4)
    names = [t.name for t in fig.data]
    assert names == ["held-out BCE - floor", "test AUROC", "KL (train)"]  # G and D off: not drawn
    assert list(fig.data[0].y) == [1.0, 0.5] and list(fig.data[1].x) == [4]
    assert [s.x0 for s in fig.layout.shapes] == [4, 4, 4]


def test_cli_defaults_are_the_training_defaults() -> None:
    import argparse

    from xad.cli.train import add_parsers

    p = argparse.ArgumentParser()
    add_parsers(p.add_subparsers())
    args = p.parse_args(["train", "vaegan", "--category", "c", "--out", "/tmp/xad-unused"])
    s = TrainSettings()
    assert (args.steps, args.batch_size, args.augment, args.gan_weight, args.gan_warmup, args.eval_every,
            args.resize) == (s.steps, s.batch_size, s.augment, s.gan_weight, s.gan_warmup, s.eval_every, "stretch")
    assert args.lr == s.lr


def test_train_vaegan_init_continues_from_a_folder(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "cont"
    base = ["train", "vaegan", "--data", str(tiny_industrial), "--category", "brick", "--preset", "tiny",
            "--batch-size", "2", "--out", str(out)]
    assert main([*base, "--steps", "1", "--init", str(tiny_vaegan), "--gan-weight", "0"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["initialised_from"]["weights"].endswith(tiny_vaegan.name)
    assert "Continued training:" in (out / "card.md").read_text()
    # with the GAN term off the discriminator is never updated: it is the init's, exactly
    a, b = load_file(str(tiny_vaegan / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for k in (k for k in a if k.startswith("discriminator.")):
        torch.testing.assert_close(a[k].half().float() if a[k].is_floating_point() else a[k], b[k].float()
                                   if b[k].is_floating_point() else b[k])
    assert main([*base, "--steps", "1", "--init", str(tiny_vaegan), "--preset", "cpu", "--overwrite"]) == 2


def test_dihedral_augmentation_only_turns_and_flips_pixels() -> None:
    """The lossless profile: every output is one of the eight exact symmetries of its input
    (90-degree turns, mirror images), never an interpolated (blurred) image."""
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = augment(x, PROFILES["dihedral"], torch.Generator().manual_seed(3))
    symmetries = [torch.rot90(v, k, dims=(-2, -1)) for v in (x, x.flip(-1)) for k in range(4)]
    for i in range(8):
        errors = [float((out[i] - s[i]).abs().max()) for s in symmetries]
        assert min(errors) < 1e-5, errors
    assert len({min(range(8), key=lambda j: float((out[i] - symmetries[j][i]).abs().max()))
                for i in range(8)}) > 1  # not always the same symmetry
