"""bench/real_surface.py: the Magnetic-tile layout and the diagnosis, on a tiny set written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench import real_surface
from xad.data.mvtec import MVTecDataset


def _magnetic_tile(root: Path) -> Path:
    """5 free tiles (flat, dark) and one image per defect type (brighter, one bright spot, its mask)."""
    rng = np.random.default_rng(0)
    for i in range(5):
        folder = root / "MT_Free" / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 50), 40 + i, np.uint8)).save(folder / f"exp0_num_{i}.jpg", quality=100)
        Image.fromarray(np.zeros((30, 50), np.uint8)).save(folder / f"exp0_num_{i}.png")
    for kind in real_surface.TYPES:
        folder = root / f"MT_{kind}" / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        image = np.full((30, 50), 150, np.uint8)
        image[13:17, 23:27] = 255
        Image.fromarray(image).save(folder / "exp1_num_7.jpg", quality=100)
        mask = np.zeros((30, 50), np.uint8)
        mask[13:17, 23:27] = rng.integers(200, 256)  # masks are 8-bit; anything above 127 is defect
        Image.fromarray(mask).save(folder / "exp1_num_7.png")
    return root


def test_layout_writes_the_mvtec_layout_with_a_fifth_of_the_free_tiles_tested(tmp_path: Path) -> None:
    counts = real_surface.layout(_magnetic_tile(tmp_path / "mt"), tmp_path / "out")
    assert counts == {"train/good": 4, "test/good": 1, "test/blowhole": 1, "test/break": 1,
                      "test/crack": 1, "test/fray": 1, "test/uneven": 1}
    ds = MVTecDataset(tmp_path / "out", "mtile")
    assert ds.validate() == []
    mask = np.asarray(Image.open(tmp_path / "out/mtile/ground_truth/crack/exp1_num_7_mask.png"))
    assert set(np.unique(mask)) == {0, 255} and (mask == 255).sum() == 16


def test_diagnose_measures_the_controls_by_hand(tmp_path: Path, tiny_vaegan: Path) -> None:
    real_surface.layout(_magnetic_tile(tmp_path / "mt"), tmp_path / "out")
    got = real_surface.diagnose(tiny_vaegan, str(tmp_path / "out"), "mtile", border=4)
    assert (got["test_images"], got["anomalous"]) == (6, 5)
    # every defect image is brighter than the free tile and has a spot that its 9 x 9 median lacks
    assert got["control_mean_brightness"] == 100.0
    assert got["control_local_deviation_max"] == 100.0
    assert set(got["auroc_per_defect"]) == {"blowhole", "break", "crack", "fray", "uneven"}
