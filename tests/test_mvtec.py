"""The MVTec AD layout loader: pairing, resizing, conversions and one test per refusal."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_png
from xad.data.mvtec import MVTecDataset, list_categories
from xad.data.transforms import DataError


def test_lists_pairs_and_loads(tiny_mvtec: Path) -> None:
    ds = MVTecDataset(tiny_mvtec, "part")
    assert list_categories(tiny_mvtec) == ["part"]
    assert ds.defects("test") == ["good", "scratch"]
    refs = ds.refs("test")
    assert [r.id for r in refs] == ["part/test/good/000", "part/test/good/001",
                                    "part/test/scratch/000", "part/test/scratch/001"]
    assert refs[0].mask_path is None
    assert refs[2].mask_path.name == "000_mask.png"
    s = ds.load(refs[3])
    assert s.image.shape == (40, 40, 3) and s.image.dtype == np.uint8
    assert s.mask.dtype == bool and s.mask.sum() == 100 and s.mask[10, 6] and not s.mask[10, 5]
    assert len(ds.refs("train")) == 3
    assert ds.validate() == []


def test_resize_uses_nearest_for_masks(tiny_mvtec: Path) -> None:
    ds = MVTecDataset(tiny_mvtec, "part")
    s = ds.load(ds.refs("test", "scratch")[0], size=20)
    assert s.image.shape == (20, 20, 3)
    assert set(np.unique(s.mask)) == {False, True}
    assert s.mask.sum() == 25  # 10x10 block halves to 5x5 exactly with nearest neighbour


@pytest.mark.parametrize("mode,array", [
    ("L", np.full((40, 40), 128, np.uint8)),
    ("RGBA", np.dstack([np.full((40, 40, 3), 200, np.uint8), np.full((40, 40), 255, np.uint8)])),
    ("I;16", np.full((40, 40), 65535, np.uint16)),
])
def test_converts_gray_rgba_and_16bit(tiny_mvtec: Path, mode: str, array: np.ndarray) -> None:
    path = tiny_mvtec / "part" / "test" / "good" / "000.png"
    Image.fromarray(array).save(path)  # uint16 arrays are written as 16-bit PNG
    assert Image.open(path).mode.startswith(mode[0])
    s = MVTecDataset(tiny_mvtec, "part").load(MVTecDataset(tiny_mvtec, "part").refs("test", "good")[0])
    assert s.image.shape == (40, 40, 3) and s.image.dtype == np.uint8
    expected = {"L": 128, "RGBA": 200, "I;16": 255}[mode]
    assert int(s.image[0, 0, 0]) == expected and (s.image[..., 0] == s.image[..., 2]).all()


def test_refuses_a_file_that_is_not_an_image(tiny_mvtec: Path) -> None:
    bad = tiny_mvtec / "part" / "test" / "good" / "002.png"
    bad.write_text("this is not a png")
    ds = MVTecDataset(tiny_mvtec, "part")
    ref = [r for r in ds.refs("test", "good") if r.image_path == bad][0]
    with pytest.raises(DataError, match="002.png: not a readable image"):
        ds.load(ref)
    assert any("002.png" in p for p in ds.validate())


def test_refuses_a_defect_image_without_mask(tiny_mvtec: Path) -> None:
    (tiny_mvtec / "part" / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with pytest.raises(DataError, match=r"scratch/001.png: defect image without a mask"):
        MVTecDataset(tiny_mvtec, "part").refs("test")


def test_refuses_a_mask_of_another_size(tiny_mvtec: Path) -> None:
    write_png(tiny_mvtec / "part" / "ground_truth" / "scratch" / "000_mask.png",
              np.zeros((30, 40), np.uint8))
    ds = MVTecDataset(tiny_mvtec, "part")
    with pytest.raises(DataError, match=r"000_mask.png: mask is 40x30 but its image 000.png is 40x40"):
        ds.load(ds.refs("test", "scratch")[0])


def test_reports_an_empty_mask(tiny_mvtec: Path) -> None:
    write_png(tiny_mvtec / "part" / "ground_truth" / "scratch" / "000_mask.png",
              np.zeros((40, 40), np.uint8))
    assert any("000_mask.png: mask is empty" in p for p in MVTecDataset(tiny_mvtec, "part").validate())


def test_refuses_missing_root_and_category(tmp_path: Path, tiny_mvtec: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        MVTecDataset(tmp_path / "nowhere", "part")
    with pytest.raises(DataError, match=r"no category 'bolt' \(categories found: part\)"):
        MVTecDataset(tiny_mvtec, "bolt")
    (tiny_mvtec / "empty").mkdir()
    with pytest.raises(DataError, match="not an MVTec AD category"):
        MVTecDataset(tiny_mvtec, "empty")


def test_ignores_hidden_files(tiny_mvtec: Path) -> None:
    (tiny_mvtec / "part" / "test" / "good" / ".DS_Store").write_bytes(b"\0\1")
    assert len(MVTecDataset(tiny_mvtec, "part").refs("test", "good")) == 2


SUBSET = Path(__file__).resolve().parent.parent / "data" / "mvtec_ad_subset"


def test_shipped_mvtec_subset_loads() -> None:
    """The MVTec AD images shipped in data/mvtec_ad_subset (256 px), checked against PIL directly."""
    assert {"bottle", "hazelnut", "screw", "tile"} <= set(list_categories(SUBSET))
    ds = MVTecDataset(SUBSET, "screw")
    assert ds.defects("test") == ["good", "manipulated_front"] and ds.validate() == []
    refs = ds.refs("test")
    assert [r.id for r in refs][-1] == "screw/test/manipulated_front/003" and len(ds.refs("train")) >= 8
    s = ds.load(refs[-1], size=128)
    raw = Image.open(SUBSET / "screw/ground_truth/manipulated_front/003_mask.png")
    want = np.asarray(raw.resize((128, 128), Image.Resampling.NEAREST)) > 127
    assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.mask, want)
    assert s.mask.any() and s.is_anomalous
    full = ds.load(refs[0])
    np.testing.assert_array_equal(full.image, np.asarray(Image.open(SUBSET / "screw/test/good/000.png")))
    assert full.mask is None and full.label == "good"
