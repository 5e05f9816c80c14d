"""Data: the MVTec AD layout, digit data, the shipped defaults and the synthetic generator."""

from xad.data.mvtec import MVTecDataset, Sample, SampleRef, list_categories
from xad.data.transforms import DataError

__all__ = ["DataError", "MVTecDataset", "Sample", "SampleRef", "list_categories"]
