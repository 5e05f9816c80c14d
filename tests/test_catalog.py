"""Dataset discovery and the uniform browsing view."""

import os
from pathlib import Path

import numpy as np
import pytest

from xad.data import catalog
from xad.data.transforms import DataError


def test_detects_mvtec_root_category_and_mnist(tiny_mvtec: Path, tmp_path: Path) -> None:
    assert catalog.detect(tiny_mvtec).kind == "mvtec"
    one = catalog.detect(tiny_mvtec / "part")
    assert one.kind == "mvtec" and catalog.open_collection(one).categories() == ["part"]
    a = {k: np.zeros((2, 28, 28) if k[0] == "x" else 2, np.uint8) for k in
         ("x_train", "y_train", "x_test", "y_test")}
    np.savez(tmp_path / "m.npz", **a)
    assert catalog.detect(tmp_path / "m.npz").kind == "mnist"
    (tmp_path / "junk").mkdir()
    with pytest.raises(DataError, match="junk: no dataset recognised"):
        catalog.detect(tmp_path / "junk")


def test_configured_roots_from_environment(tiny_mvtec: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(catalog.ENV_VAR, os.pathsep.join([str(tiny_mvtec), str(tmp_path / "gone")]))
    found, problems = catalog.find_datasets()
    assert any(d.path == tiny_mvtec for d in found)
    assert len(problems) == 1 and "gone: no such file or folder" in problems[0]


def test_mvtec_collection_summary_and_load(tiny_mvtec: Path) -> None:
    coll = catalog.open_collection(catalog.detect(tiny_mvtec))
    s = coll.summary()
    assert s.set_index(["split", "group"])["count"].to_dict() == {
        ("train", "good"): 3, ("test", "good"): 2, ("test", "scratch"): 2}
    sample = coll.load("part/test/scratch/001")
    assert sample.mask.sum() == 100 and sample.label == "scratch"


def test_embedded_mnist_and_coloured_views() -> None:
    found = {d.key: d for d in catalog.embedded_datasets()}
    if "coloured-mnist" not in found:
        pytest.skip("embedded MNIST not present")
    coll = catalog.open_collection(found["coloured-mnist"])
    red = coll.ids("7", "test", "red")
    blue = coll.ids("7", "test", "blue")
    assert red and blue and not set(red) & set(blue)
    assert len(coll.ids("7", "test")) == 1028  # all sevens of the MNIST test split
    img = coll.load(red[0]).image
    assert img.shape == (28, 28, 3) and img[..., 0].sum() > img[..., 2].sum()
