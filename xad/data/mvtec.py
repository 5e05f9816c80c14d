"""The MVTec AD folder layout, for any root and category.

``<root>/<category>/train/good/*.png``, ``<root>/<category>/test/<good|defect>/*.png`` and
``<root>/<category>/ground_truth/<defect>/<stem>_mask.png``. Masks pair with images by stem.
Every problem is a :class:`~xad.data.transforms.DataError` naming the file or folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xad.data.transforms import DataError, read_image, read_mask, resize_image, resize_mask, square_geometry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_IGNORED = {"thumbs.db", "desktop.ini"}
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SampleRef:
    """Where one sample lives on disk; cheap to list, loaded with :meth:`MVTecDataset.load`."""

    id: str  # <category>/<split>/<defect>/<stem>
    category: str
    split: str
    defect: str  # "good" or the defect type
    image_path: Path
    mask_path: Path | None

    @property
    def label(self) -> str:
        return self.defect

    @property
    def is_anomalous(self) -> bool:
        return self.defect != "good"


@dataclass(frozen=True)
class Sample:
    """A loaded sample. image: (H, W, 3) uint8 RGB; mask: (H, W) bool, None for good images."""

    id: str
    image: np.ndarray
    mask: np.ndarray | None
    label: str

    @property
    def is_anomalous(self) -> bool:
        return self.label != "good"


def _visible_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower() not in _IGNORED
    )


def list_categories(root: str | Path) -> list[str]:
    """Categories under ``root``: sub-folders that contain ``train/good`` or ``test``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    return sorted(
        d.name for d in root.iterdir()
        if d.is_dir() and ((d / "train" / "good").is_dir() or (d / "test").is_dir())
    )


class MVTecDataset:
    """One category of an MVTec-AD-layout folder. Listing checks the layout and mask pairing."""

    def __init__(self, root: str | Path, category: str) -> None:
        self.root = Path(root)
        self.category = category
        self.folder = self.root / category
        if not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder")
        if not self.folder.is_dir():
            found = ", ".join(list_categories(self.root)) or "none"
            raise DataError(f"{self.folder}: no category '{category}' (categories found: {found})")
        if not (self.folder / "train" / "good").is_dir() and not (self.folder / "test").is_dir():
            raise DataError(
                f"{self.folder}: not an MVTec AD category (expected train/good/ and test/ inside)"
            )

    def defects(self, split: str = "test") -> list[str]:
        """Defect types (folder names) in ``split``, "good" first when present."""
        folder = self.folder / split
        if not folder.is_dir():
            return []
        names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        return sorted(names, key=lambda n: (n != "good", n))

    def refs(self, split: str = "test", defect: str | None = None) -> list[SampleRef]:
        """Samples of ``split`` (all defect types, or one); raises DataError for a missing mask."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        out: list[SampleRef] = []
        for name in self.defects(split) if defect is None else [defect]:
            folder = self.folder / split / name
            if not folder.is_dir():
                raise DataError(f"{folder}: no such folder")
            out.extend(self._ref(split, name, path) for path in _visible_files(folder))
        return out

    def _ref(self, split: str, defect: str, path: Path) -> SampleRef:
        mask_path = None
        if defect != "good":
            mask_path = self.mask_path_for(defect, path.stem)
            if mask_path is None:
                expected = self.folder / "ground_truth" / defect / f"{path.stem}_mask.png"
                raise DataError(f"{path}: defect image without a mask (expected {expected})")
        sid = f"{self.category}/{split}/{defect}/{path.stem}"
        return SampleRef(sid, self.category, split, defect, path, mask_path)

    def mask_path_for(self, defect: str, stem: str) -> Path | None:
        """The mask paired with an image by stem: ``<stem>_mask.*`` (or ``<stem>.*``); suffixes are
        matched case-insensitively, as for images (``000_mask.PNG`` pairs with ``000.PNG``)."""
        folder = self.folder / "ground_truth" / defect
        if not folder.is_dir():
            return None
        files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        for name in (f"{stem}_mask", stem):
            for suffix in IMAGE_SUFFIXES:
                if (found := files.get(f"{name}{suffix}".lower())) is not None:
                    return found
        return None

    def load(self, ref: SampleRef, size: int | None = None, resample: str = "lanczos",
             geometry: str = "stretch") -> Sample:
        """Load a sample, optionally resized to ``size`` x ``size`` (masks with nearest neighbour).

        resample: "lanczos" (antialiased, for display and the default models) or "nearest" (what
        the VAE-GAN reference code does). geometry: how a non-square image is made square first
        (:data:`xad.data.transforms.GEOMETRIES`: stretch, pad, crop; the mask follows).
        """
        image = read_image(ref.image_path)
        mask = None
        if ref.mask_path is not None:
            mask = read_mask(ref.mask_path)
            if mask.shape != image.shape[:2]:
                raise DataError(
                    f"{ref.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                    f"{ref.image_path.name} is {image.shape[1]}x{image.shape[0]}"
                )
        if size is not None:
            image = _resize(square_geometry(image, geometry), size, resample)
            mask = None if mask is None else resize_mask(square_geometry(mask, geometry), size)
        return Sample(ref.id, image, mask, ref.defect)

    def load_all(
        self, split: str = "test", size: int | None = None, defect: str | None = None
    ) -> list[Sample]:
        return [self.load(r, size) for r in self.refs(split, defect)]

    def validate(self) -> list[str]:
        """Read every file once; return one message per problem (empty list: all good)."""
        problems: list[str] = []
        if not (self.folder / "train" / "good").is_dir():
            problems.append(f"{self.folder / 'train' / 'good'}: missing (training needs normal images there)")
        for split in SPLITS:
            for name in self.defects(split):
                folder = self.folder / split / name
                for path in _visible_files(folder):
                    problems.extend(self._check(split, name, path))
        return problems

    def _check(self, split: str, defect: str, path: Path) -> list[str]:
        try:
            sample = self.load(self._ref(split, defect, path))
        except DataError as exc:
            return [str(exc)]
        if sample.is_anomalous and sample.mask is not None and not sample.mask.any():
            return [f"{self.mask_path_for(defect, path.stem)}: mask is empty (IoU not defined)"]
        return []


def _resize(image: np.ndarray, size: int, resample: str) -> np.ndarray:
    if resample == "nearest":
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST))
    return resize_image(image, size)
