"""The synthetic industrial generator: deterministic, exact masks, subtle defects, shipped copy."""

from pathlib import Path

import numpy as np
import pytest

from xad.data import synthetic
from xad.data.embedded import DATA_DIR
from xad.data.mvtec import MVTecDataset
from xad.data.transforms import read_image, read_mask


def test_render_is_deterministic_and_order_free() -> None:
    a1, m1 = synthetic.render("hexnut", "test", "crack", 3, seed=0)
    synthetic.render("brick", "test", "stain", 0, seed=0)  # another image in between
    a2, m2 = synthetic.render("hexnut", "test", "crack", 3, seed=0)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(m1, m2)
    b, _ = synthetic.render("hexnut", "test", "crack", 3, seed=1)
    assert np.abs(a1.astype(int) - b).mean() > 5


@pytest.mark.parametrize("category", list(synthetic.CATEGORIES))
def test_every_defect_has_a_subtle_exact_mask(category: str) -> None:
    for defect in synthetic.CATEGORIES[category].defects:
        for i in range(3):
            image, mask = synthetic.render(category, "test", defect, i)
            assert image.shape == (128, 128, 3) and mask.shape == (128, 128)
            area = mask.mean()
            assert 0.0005 < area < 0.05, (defect, i, area)  # neither a dot nor a big blob
            clean = _same_scene_without_defect(category, defect, i)
            diff = np.abs(image.astype(int) - clean).max(axis=2)
            # the defect changes its masked pixels, and (almost) nothing outside the mask
            assert diff[mask].mean() > 12, (defect, i)
            assert (diff[~mask] > 40).mean() < 0.002, (defect, i)
            assert diff[mask].mean() < 160, (defect, i)  # not a black square


def _same_scene_without_defect(category: str, defect: str, i: int) -> np.ndarray:
    spec = synthetic.CATEGORIES[category]
    rng = synthetic.image_seed(0, category, "test", defect, i)
    scene = spec.scene(rng)
    small = synthetic._downsample(scene.image, 128)
    return np.clip(np.rint(small * 255), 0, 255).astype(int)


def test_generate_writes_mvtec_layout(tmp_path: Path) -> None:
    synthetic.generate(tmp_path, ("brick",), n_train=2, n_test_good=1, n_per_defect=1)
    ds = MVTecDataset(tmp_path, "brick")
    assert ds.defects("test") == ["good", "crack", "hole", "scratch", "stain"]
    assert len(ds.refs("train")) == 2 and ds.validate() == []
    img, mask = synthetic.render("brick", "test", "hole", 0)
    np.testing.assert_array_equal(read_image(tmp_path / "brick/test/hole/000.png"), img)
    np.testing.assert_array_equal(read_mask(tmp_path / "brick/ground_truth/hole/000_mask.png"), mask)


def test_shipped_copy_matches_the_generator() -> None:
    root = DATA_DIR / "xad_industrial"
    if not root.is_dir():
        pytest.skip("embedded data not present")
    for cat, spec in synthetic.CATEGORIES.items():
        ds = MVTecDataset(root, cat)
        assert len(ds.refs("train")) >= 200 and len(ds.refs("test")) >= 60
        for defect in ("good", *spec.defects):
            img, mask = synthetic.render(cat, "test", defect, 1)
            shipped = read_image(root / cat / "test" / defect / "001.png")
            assert np.abs(shipped.astype(int) - img).max() <= 1  # rounding across CPUs at most
            if mask is not None:
                m = read_mask(root / cat / "ground_truth" / defect / "001_mask.png")
                assert (m != mask).mean() < 0.001


def test_washer_is_a_ring_with_defects_on_its_face() -> None:
    rng = np.random.default_rng(np.random.SeedSequence([0, 1]))
    scene = synthetic.washer_scene(rng)
    h = scene.image.shape[0]
    centre = scene.outline[:, :2].mean(axis=0)  # the outline points lie on the outer circle
    cy, cx = np.round(centre).astype(int)
    assert scene.image.shape == (256, 256, 3) and scene.outline.shape == (42, 4)
    assert scene.support[cy, cx] == 0 and scene.support.max() == 1  # the hole is no support
    np.testing.assert_allclose(np.hypot(*scene.outline[:, 2:].T), 1.0, atol=1e-5)  # unit inward normals
    assert scene.image[cy, cx].mean() < scene.image[scene.support > 0.99].mean() - 0.15  # belt shows in the hole
    for defect in synthetic.CATEGORIES["washer"].defects:
        img, mask = synthetic.render("washer", "test", defect, 0)
        assert img.shape == (128, 128, 3) and mask.any(), defect
        np.testing.assert_array_equal(synthetic.render("washer", "test", defect, 0)[0], img)
    assert h == synthetic.WORK


def _round_scene(make, key: int, n_outline: int):  # noqa: ANN001, ANN202
    """A round fixture part's scene, its centre, radius and rounded centre pixel, shape-checked."""
    scene = make(np.random.default_rng(np.random.SeedSequence([0, key])))
    centre = scene.outline[:, :2].mean(axis=0)
    radius = np.hypot(*(scene.outline[:, :2] - centre).T).mean()
    assert scene.image.shape == (256, 256, 3) and scene.outline.shape == (n_outline, 4)
    np.testing.assert_allclose(np.hypot(*scene.outline[:, 2:].T), 1.0, atol=1e-5)  # unit inward normals
    return scene, centre, radius, np.round(centre).astype(int)


def test_tablet_is_a_bright_disc_with_a_score_line_and_defects_on_its_face() -> None:
    scene, centre, radius, (cy, cx) = _round_scene(synthetic.tablet_scene, 2, 36)
    face = scene.image[scene.support > 0.99].mean()
    assert face > scene.image[5, 5].mean() + 0.4  # a white tablet on a dark tray
    assert scene.support[cy, cx] == 1 and scene.support[cy, int(cx + radius + 3)] == 0  # the tray is no support
    # the score line through the centre is darker than the face beside it
    ring = np.hypot(*np.mgrid[0:256, 0:256] - centre[:, None, None])
    assert scene.image[cy - 1:cy + 2, cx - 1:cx + 2].mean() < np.median(scene.image[(ring > 20) & (ring < 30)]) - 0.05
    for defect in synthetic.CATEGORIES["tablet"].defects:
        img, mask = synthetic.render("tablet", "test", defect, 0)
        assert img.shape == (128, 128, 3) and mask.any(), defect
        np.testing.assert_array_equal(synthetic.render("tablet", "test", defect, 0)[0], img)


def test_capsule_has_two_colours_and_its_outline_on_the_edge() -> None:
    rng = np.random.default_rng(np.random.SeedSequence([0, 3]))
    scene = synthetic.capsule_scene(rng)
    assert scene.image.shape == (256, 256, 3) and scene.outline.shape == (40, 4)
    np.testing.assert_allclose(np.hypot(*scene.outline[:, 2:].T), 1.0, atol=1e-5)
    for y, x, iy, ix in scene.outline:  # inside a few px inward, outside a few px outward
        assert scene.support[int(round(y + 4 * iy)), int(round(x + 4 * ix))] == 1
        assert scene.support[int(round(y - 4 * iy)), int(round(x - 4 * ix))] == 0
    shell = scene.image[scene.support > 0.99]
    red_minus_blue = shell[:, 0] - shell[:, 2]
    assert (red_minus_blue > 0.45).mean() > 0.2 and (red_minus_blue < 0.2).mean() > 0.2  # orange cap, ivory body
    for defect in synthetic.CATEGORIES["capsule"].defects:
        img, mask = synthetic.render("capsule", "test", defect, 0)
        assert img.shape == (128, 128, 3) and mask.any(), defect


def test_bottle_is_glass_around_a_dark_mouth_that_takes_no_defect() -> None:
    scene, centre, radius, (cy, cx) = _round_scene(synthetic.bottle_scene, 4, 40)
    assert scene.support[cy, cx] == 0 and scene.support[cy, int(cx + 0.6 * radius)] == 1
    assert scene.support[cy, int(cx + radius + 3)] == 0  # nor the tray
    glass = scene.image[scene.support > 0.99].mean(axis=0)
    assert scene.image[cy - 5:cy + 6, cx - 5:cx + 6].mean() < glass.mean() - 0.3  # the dark mouth
    assert glass[1] > glass[0] and glass[1] > glass[2]  # green glass
    for defect in synthetic.CATEGORIES["bottle"].defects:
        img, mask = synthetic.render("bottle", "test", defect, 0)
        ring = np.hypot(*np.mgrid[0:128, 0:128] - centre[:, None, None] / 2)
        assert mask.any() and not (mask & (ring < 0.38 * radius / 2 - 2)).any(), defect
    assert synthetic.CATEGORIES["bottle"].defects == ("broken_large", "broken_small", "contamination")
    areas, edge = {}, ring >= radius / 2 - 14  # the outer rim band at 128 px
    for defect in ("broken_large", "broken_small"):  # the tray shows through where glass broke off
        areas[defect] = []
        for i in range(3):
            img, mask = synthetic.render("bottle", "test", defect, i)
            clean = _same_scene_without_defect("bottle", defect, i)
            assert img[mask].mean() < clean[mask].mean() - 40, (defect, i)
            assert mask[edge].sum() > 0.8 * mask.sum(), (defect, i)  # at the rim, not on the shoulder
            areas[defect].append(mask.sum())
    assert min(areas["broken_large"]) > 2 * max(areas["broken_small"])


def test_screwcap_is_a_yellow_disc_with_a_groove_and_a_gate() -> None:
    scene, centre, radius, (cy, cx) = _round_scene(synthetic.screwcap_scene, 5, 40)
    face = scene.image[scene.support > 0.99]
    assert (face[:, 0] > face[:, 2] + 0.3).mean() > 0.95  # yellow plastic
    ring = np.hypot(*np.mgrid[0:256, 0:256] - centre[:, None, None])
    top = np.median(scene.image[(ring > 0.55 * radius) & (ring < 0.65 * radius)][:, 0])
    groove = np.median(scene.image[np.abs(ring - 0.72 * radius) < 0.5][:, 0])
    assert groove < top - 0.05 and scene.image[cy, cx, 0] < top - 0.03  # the groove and the gate are darker
    for defect in synthetic.CATEGORIES["screwcap"].defects:
        img, mask = synthetic.render("screwcap", "test", defect, 0)
        assert img.shape == (128, 128, 3) and mask.any(), defect
