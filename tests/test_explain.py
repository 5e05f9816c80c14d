"""Explainers against the reference libraries (same seed, same segments), and their properties."""

import numpy as np
import pytest
import torch

from xad.explain import lime as xlime
from xad.explain import shap as xshap
from xad.explain.reconstruction import error_function, reconstruct
from xad.explain.segmentation import quickshift_k, s2_image, segments_for
from xad.models.vaegan import PRESETS, VAEGAN


def _images(size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((size, size, 3)).astype(np.float32)
    return x, np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype(np.float32)


def _f(batch: np.ndarray) -> np.ndarray:
    """A nonlinear stand-in for the reconstruction error."""
    w = np.linspace(0.5, 2.0, batch[0].size).reshape(batch[0].shape)
    return ((batch - 0.3) ** 2 * w).sum(axis=(1, 2, 3)) + np.sin(batch.sum(axis=(1, 2, 3)))


def test_lime_equals_the_lime_library() -> None:
    from lime.lime_image import LimeImageExplainer

    x, x_rec = _images()
    segments = (np.arange(16)[:, None] // 4 * 4 + np.arange(16)[None, :] // 4).astype(int)  # 16 tiles
    ref = LimeImageExplainer(random_state=7).explain_instance(
        x.astype(np.float64), classifier_fn=lambda b: _f(b)[:, None], labels=(0,), top_labels=None,
        hide_color=x_rec.astype(np.float64), num_features=100000, num_samples=80, batch_size=30,
        segmentation_fn=lambda _: segments)
    ref_coef = np.zeros(16)
    for seg, c in ref.local_exp[0]:
        ref_coef[seg] = c
    ours = xlime.explain(_f, x.astype(np.float64), x_rec.astype(np.float64), segments,
                         num_samples=80, seed=7, batch_size=30)
    np.testing.assert_allclose(ours.coefficients, ref_coef, rtol=1e-7, atol=1e-9)
    assert ours.intercept == pytest.approx(ref.intercept[0])
    np.testing.assert_array_equal(ours.attribution, ours.coefficients[segments].astype(np.float32))


def test_lime_perturbation_takes_reconstruction_pixels() -> None:
    x, x_rec = _images(8)
    segments = np.zeros((8, 8), int)
    segments[:, 4:] = 1
    out = xlime.perturb(x, x_rec, segments, np.array([[1, 0], [0, 1]]))
    np.testing.assert_array_equal(out[0, :, :4], x[:, :4])
    np.testing.assert_array_equal(out[0, :, 4:], x_rec[:, 4:])
    np.testing.assert_array_equal(out[1, :, :4], x_rec[:, :4])


def test_shap_is_additive_and_masks_with_the_reconstruction() -> None:
    x, x_rec = _images(8, seed=1)
    res = xshap.explain(_f, x, x_rec, max_evals=300, batch_size=50)
    assert res.values.shape == (8, 8, 3) and res.attribution.shape == (8, 8)
    np.testing.assert_allclose(res.base_value, _f(x_rec[None])[0], rtol=1e-5)
    np.testing.assert_allclose(res.base_value + res.values.sum(), _f(x[None])[0], rtol=1e-4)


def test_quickshift_hits_k_and_s2_follows_the_mask() -> None:
    import skimage.data
    import skimage.segmentation

    img = skimage.data.astronaut()[100:228:2, 150:278:2].astype(np.float32) / 255  # 64 px
    seg = quickshift_k(img, k=30, seed=1234)
    assert seg.n == 30
    # the segments are skimage's own quickshift at the bisected max_dist (same seed, same kernel)
    ref = skimage.segmentation.quickshift(img.astype(np.float64), kernel_size=2, max_dist=seg.max_dist,
                                          ratio=0.95, sigma=0.05, rng=1234)  # Lab: the default
    np.testing.assert_array_equal(seg.labels, np.unique(ref, return_inverse=True)[1].reshape(ref.shape))
    assert quickshift_k(img, k=12, seed=1234).n == 12
    mask = np.zeros((64, 64), bool)
    mask[20:34, 25:45] = True
    s2 = segments_for("S2", img, img, mask, k=30)
    for s in range(s2.n):  # every S2 segment lies (almost) wholly inside or outside the defect
        inside = mask[s2.labels == s].mean()
        assert inside < 0.05 or inside > 0.95, (s, inside)
    assert s2_image(img, img, None).max() <= 0.66 + 1e-6


def test_bf16_inference_agrees_with_fp32() -> None:
    torch.manual_seed(0)
    model = VAEGAN(PRESETS["tiny"]).eval()
    x = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), np.uint8)
    fp32 = reconstruct(model, x, bf16=False)
    bf16 = reconstruct(model, x, bf16=True)
    assert fp32.shape == (5, 32, 32, 3)
    assert np.abs(fp32 - bf16).mean() < 5e-3
    f32, f16 = error_function(model, bf16=False), error_function(model, bf16=True)
    batch = x.astype(np.float32) / 255
    np.testing.assert_allclose(f16(batch), f32(batch), rtol=2e-2)
    assert (error_function(model, "max_channel", bf16=False)(batch) < f32(batch)).all()


def test_fast_fp32_error_function_equals_the_reference_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = VAEGAN(PRESETS["tiny"]).eval()
    batch = np.random.default_rng(1).random((37, 32, 32, 3), dtype=np.float32)
    fast = error_function(model, bf16=False)  # channels-last copy, batches of 16
    reference = error_function(model, bf16=False, fast=False)
    np.testing.assert_allclose(fast(batch), reference(batch), rtol=1e-5)
    assert model.encoder.convs[0].weight.is_contiguous()  # the caller's model is not converted
    assert not np.array_equal(fast(batch[:1]), fast(batch[1:2]))


def test_images_composed_in_torch_give_the_same_explanations() -> None:
    """The fast path composes perturbed images from masks inside the error function (LIME) and
    gets masks instead of images from shap's explainer (SHAP); both equal the plain path, which
    builds every perturbed image in numpy and calls the same function on it."""
    torch.manual_seed(0)
    model = VAEGAN(PRESETS["tiny"]).eval()
    rng = np.random.default_rng(3)
    x = rng.random((32, 32, 3), dtype=np.float32)
    x_rec = reconstruct(model, x[None], bf16=False)[0]
    f = error_function(model, bf16=False)
    plain = lambda b: f(b)  # noqa: E731 - no .masked: images are composed in numpy
    keep = rng.random((9, 32, 32, 3)) < 0.5
    np.testing.assert_allclose(f.masked(x, x_rec, keep), f(np.where(keep, x, x_rec)), rtol=1e-6)
    segments = (np.arange(32)[:, None] // 8 * 4 + np.arange(32)[None, :] // 8).astype(int)
    fast = xlime.explain(f, x, x_rec, segments, num_samples=60, seed=5, batch_size=25)
    ref = xlime.explain(plain, x, x_rec, segments, num_samples=60, seed=5, batch_size=25)
    np.testing.assert_allclose(fast.scores, ref.scores, rtol=1e-6)
    np.testing.assert_allclose(fast.coefficients, ref.coefficients, rtol=1e-5, atol=1e-6)
    s_fast = xshap.explain(f, x, x_rec, max_evals=200, batch_size=40)
    s_ref = xshap.explain(plain, x, x_rec, max_evals=200, batch_size=40)
    assert s_fast.base_value == pytest.approx(s_ref.base_value, rel=1e-6)
    np.testing.assert_allclose(s_fast.values, s_ref.values, rtol=1e-4, atol=1e-6)
    assert np.abs(s_fast.values).max() > 0


def test_quickshift_tree_cut_equals_skimage() -> None:
    import skimage.data
    from skimage.segmentation import quickshift

    from xad.explain.segmentation import QuickshiftTree

    img = skimage.data.coffee()[::6, ::6].astype(np.float64) / 255
    tree = QuickshiftTree(img, seed=1234)
    counts = set()
    for max_dist in (0.5, 2.0, 4.0, 9.0, 20.0):  # the notebook's call: skimage's default convert2lab
        ref = quickshift(img, kernel_size=2, max_dist=max_dist, ratio=0.95, sigma=0.05, rng=1234)
        np.testing.assert_array_equal(tree.labels(max_dist), ref)
        counts.add(int(ref.max()) + 1)
    assert len(counts) >= 4  # the cuts differ: the test compares real segmentations
    rgb = quickshift(img, kernel_size=2, max_dist=4.0, ratio=0.95, sigma=0.05, rng=1234,
                     convert2lab=False)
    assert not np.array_equal(tree.labels(4.0), rgb)  # Lab, not RGB


def test_fast_bisection_equals_the_reference_bisection_in_lab() -> None:
    import skimage.data

    from xad.explain.segmentation import QUICKSHIFT, parameters, quickshift_k_reference

    img = skimage.data.astronaut()[100:228:4, 150:278:4].astype(np.float32) / 255  # 32 px
    fast, ref = quickshift_k(img, k=25, seed=1234), quickshift_k_reference(img, k=25, seed=1234)
    assert fast.max_dist == ref.max_dist and fast.n == ref.n
    np.testing.assert_array_equal(fast.labels, ref.labels)
    assert QUICKSHIFT["convert2lab"] is True
    assert parameters(100, 1234) == {"method": "quickshift", "kernel_size": 2, "ratio": 0.95,
                                          "sigma": 0.05, "convert2lab": True, "rng": 1234,
                                          "segments": 100, "max_dist_low": 0.0,
                                          "max_dist_high": 100.0, "max_steps": 40}


def test_fast_fp32_path_equals_the_reference_mode_on_a_model(tiny_industrial) -> None:  # noqa: ANN001
    from xad import audit
    from xad.data.mvtec import MVTecDataset

    torch.manual_seed(1)
    model = VAEGAN(PRESETS["tiny"]).eval()
    ds = MVTecDataset(tiny_industrial, "brick")
    sample = ds.load(ds.refs("test", "hole")[0], 32)
    x_rec = reconstruct(model, sample.image[None], bf16=False)[0]
    common = dict(setups=("S1", "S2", "S3", "S4"), segments=12, samples=60, bf16=False)
    fast = audit.explain_sample(sample.image, x_rec, sample.mask, model,
                                audit.AuditParams(**common, backend="torch"))
    ref = audit.explain_sample(sample.image, x_rec, sample.mask, model,
                               audit.AuditParams(**common, engine="reference"))
    for setup in ("S1", "S2", "S3", "S4"):
        np.testing.assert_allclose(fast[setup]["map"], ref[setup]["map"], rtol=1e-5, atol=1e-6)
        assert fast[setup]["iou"] == pytest.approx(ref[setup]["iou"])


def test_shapbpt_equals_shap_bpt_called_directly() -> None:
    """S4 through xad (masks to the error function, and images composed in numpy) gives what
    ``shap_bpt.Explainer`` gives when called by hand with the published recipe."""
    import shap_bpt

    from xad.explain import bpt as xbpt

    torch.manual_seed(0)
    model = VAEGAN(PRESETS["tiny"]).eval()
    rng = np.random.default_rng(4)
    x = rng.random((32, 32, 3), dtype=np.float32)
    x_rec = reconstruct(model, x[None], bf16=False)[0]
    f = error_function(model, bf16=False, backend="torch")

    def f_masked(masks: np.ndarray) -> np.ndarray:  # shap_bpt's contract: (N, H, W) bool -> (N, 1)
        return f(np.where(masks[..., None], x, x_rec).astype(np.float32))[:, None]

    image = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    direct = shap_bpt.Explainer(f_masked, image, num_explained_classes=1).explain_instance(
        150, method="BPT", batch_size=xbpt.BATCH_SIZE)[0]
    ours = xbpt.explain(f, x, x_rec, max_evals=150)
    plain = xbpt.explain(lambda b: f(b), x, x_rec, max_evals=150)  # no .masked: numpy images
    assert ours.attribution.shape == (32, 32) and 140 <= ours.evaluations <= 152
    np.testing.assert_allclose(ours.attribution, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plain.attribution, direct, rtol=1e-5, atol=1e-6)
    assert np.abs(direct).max() > 0 and len(np.unique(direct)) > 4
    # Owen values are efficient: they sum to f(x) - f(x') (all shown minus all hidden)
    total = f(x[None])[0] - f(x_rec[None])[0]
    assert ours.attribution.sum() == pytest.approx(total, rel=1e-3)
    axis = xbpt.explain(f, x, x_rec, max_evals=150, method="AA")
    assert not np.allclose(axis.attribution, ours.attribution)
    with pytest.raises(ValueError, match="method"):
        xbpt.explain(f, x, x_rec, max_evals=150, method="LIME")
