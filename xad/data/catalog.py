"""Finding datasets (embedded and the user's configured roots) and browsing them uniformly.

A :class:`Collection` is any dataset seen as categories x splits x groups of samples; for
MVTec-layout folders a group is a defect type ("good" included), for digit data a category is a
class and a group is a colour (coloured MNIST) or "all". Configured roots come from the
``XAD_DATA`` environment variable (paths separated by ``os.pathsep``) or from the caller.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from xad.data import digits
from xad.data.embedded import DatasetInfo, embedded_datasets
from xad.data.mvtec import MVTecDataset, Sample, list_categories
from xad.data.transforms import DataError

ENV_VAR = "XAD_DATA"


def configured_roots() -> list[Path]:
    """Paths listed in ``$XAD_DATA`` (os.pathsep-separated); empty entries ignored."""
    raw = os.environ.get(ENV_VAR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def detect(path: str | Path) -> DatasetInfo:
    """What dataset lies at ``path``: an MVTec root or category folder, MNIST, or CIFAR-10."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    name = path.name or str(path)
    if path.is_file() and path.suffix == ".npz":
        return DatasetInfo(f"user:{path}", f"MNIST ({name})", "mnist", path, False)
    if not path.is_dir():
        raise DataError(f"{path}: expected an MVTec AD folder, an MNIST .npz/IDX folder or CIFAR-10")
    if (path / "train" / "good").is_dir():  # a single category folder
        return DatasetInfo(f"user:{path}", f"MVTec layout ({name})", "mvtec", path.parent, False,
                           notes=(f"category:{name}",))
    if list_categories(path):
        return DatasetInfo(f"user:{path}", f"MVTec layout ({name})", "mvtec", path, False)
    if any(path.glob("train-images*idx3*")):
        return DatasetInfo(f"user:{path}", f"MNIST IDX ({name})", "mnist", path, False)
    if any(path.glob("data_batch_*")) or (path / "cifar-10-batches-py").is_dir():
        return DatasetInfo(f"user:{path}", f"CIFAR-10 ({name})", "cifar10", path, False)
    raise DataError(
        f"{path}: no dataset recognised (expected <category>/train/good/ folders of MVTec AD, "
        "mnist.npz, MNIST IDX files or CIFAR-10 data_batch_* files)"
    )


def find_datasets(extra_roots: list[str | Path] | None = None) -> tuple[list[DatasetInfo], list[str]]:
    """Embedded datasets plus those at configured and extra roots; returns (found, problems)."""
    found, problems = list(embedded_datasets()), []
    for root in [*configured_roots(), *(extra_roots or [])]:
        try:
            found.append(detect(root))
        except DataError as exc:
            problems.append(str(exc))
    return found, problems


class Collection(ABC):
    """Uniform browsing: categories -> splits -> groups -> sample ids -> :class:`Sample`."""

    splits = ("train", "test")

    def __init__(self, info: DatasetInfo) -> None:
        self.info = info

    @abstractmethod
    def categories(self) -> list[str]:
        ...

    @abstractmethod
    def groups(self, category: str, split: str) -> list[str]:
        ...

    @abstractmethod
    def ids(self, category: str, split: str, group: str | None = None) -> list[str]:
        ...

    @abstractmethod
    def load(self, sample_id: str) -> Sample:
        ...

    def summary(self) -> pd.DataFrame:
        """Counts: columns category, split, group, count."""
        rows = [
            {"category": c, "split": s, "group": g, "count": len(self.ids(c, s, g))}
            for c in self.categories() for s in self.splits for g in self.groups(c, s)
        ]
        return pd.DataFrame(rows, columns=["category", "split", "group", "count"])


class MVTecCollection(Collection):
    def categories(self) -> list[str]:
        only = [n.split(":", 1)[1] for n in self.info.notes if n.startswith("category:")]
        return only or list_categories(self.info.path)

    def dataset(self, category: str) -> MVTecDataset:
        return _mvtec(str(self.info.path), category)

    def groups(self, category: str, split: str) -> list[str]:
        return self.dataset(category).defects(split)

    def ids(self, category: str, split: str, group: str | None = None) -> list[str]:
        return [r.id for r in self.dataset(category).refs(split, group)]

    def load(self, sample_id: str) -> Sample:
        category, split, defect, stem = sample_id.split("/")
        ds = self.dataset(category)
        ref = next((r for r in ds.refs(split, defect) if r.image_path.stem == stem), None)
        if ref is None:
            raise DataError(f"{self.info.path}: no sample {sample_id}")
        return ds.load(ref)


@lru_cache(maxsize=32)
def _mvtec(root: str, category: str) -> MVTecDataset:
    return MVTecDataset(root, category)


class DigitCollection(Collection):
    """MNIST, coloured MNIST or CIFAR-10: categories are classes; groups colours or "all"."""

    def __init__(self, info: DatasetInfo) -> None:
        super().__init__(info)
        self.data, self.colours = _digit_arrays(info.kind, str(info.path))

    def categories(self) -> list[str]:
        return list(self.data.class_names)

    def groups(self, category: str, split: str) -> list[str]:
        return list(digits.COLOURS) if self.colours is not None else ["all"]

    def _index(self, category: str, split: str, group: str | None) -> np.ndarray:
        y = self.data.y_train if split == "train" else self.data.y_test
        keep = y == self.data.class_names.index(category)
        if self.colours is not None and group not in (None, "all"):
            keep &= self.colours[split] == list(digits.COLOURS).index(group)
        return np.flatnonzero(keep)

    def ids(self, category: str, split: str, group: str | None = None) -> list[str]:
        g = group or "all"
        return [f"{category}/{split}/{g}/{i:05d}" for i in self._index(category, split, group)]

    def load(self, sample_id: str) -> Sample:
        category, split, group, index = sample_id.split("/")
        x = self.data.x_train if split == "train" else self.data.x_test
        image = x[int(index)]
        image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        return Sample(sample_id, image, None, category)


@lru_cache(maxsize=4)
def _digit_arrays(kind: str, path: str) -> tuple[digits.ImageSplits, dict | None]:
    if kind == "cifar10":
        return digits.load_cifar10(path), None
    mnist = digits.load_mnist(path)
    if kind == "coloured-mnist":
        data, c_train, c_test = digits.coloured_mnist(mnist, seed=0)
        return data, {"train": c_train, "test": c_test}
    return mnist, None


def open_collection(info: DatasetInfo) -> Collection:
    """The browsing view of a dataset; DataError if its files are unusable."""
    if info.kind == "mvtec":
        return MVTecCollection(info)
    if info.kind in ("mnist", "coloured-mnist", "cifar10"):
        return DigitCollection(info)
    raise DataError(f"{info.path}: unknown dataset kind {info.kind!r}")



def resolve_mvtec(data: str | Path, category: str) -> MVTecDataset:
    """An MVTec-layout category: ``data`` is a folder, or "embedded" (the shipped sets)."""
    if str(data) != "embedded":
        info = detect(data)
        if info.kind != "mvtec":
            raise DataError(f"{data}: not an MVTec AD layout folder")
        return MVTecDataset(info.path, category)
    for info in embedded_datasets():
        if info.kind == "mvtec" and category in list_categories(info.path):
            return MVTecDataset(info.path, category)
    cats = [c for i in embedded_datasets() if i.kind == "mvtec" for c in list_categories(i.path)]
    raise DataError(f"no embedded category {category!r} (embedded: {', '.join(cats)})")
