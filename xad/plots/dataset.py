"""Plotly figures as pure functions of data and results; the caller decides where they go."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from xad.data.mvtec import Sample
from xad.data.transforms import overlay_contour, resize_image, resize_mask

CONTOUR = (255, 40, 40)


def upscale(image: np.ndarray, mask: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Image (H, W, 3) and mask (H, W) at ``size`` px: nearest for tiny images, else Lanczos."""
    if image.shape[0] >= size:
        return image, mask
    if image.shape[0] <= 64:  # digits: keep the pixels crisp
        reps = size // image.shape[0]
        big = np.kron(image, np.ones((reps, reps, 1), dtype=np.uint8))
    else:
        big = resize_image(image, size)
    return big, None if mask is None else resize_mask(mask, big.shape[:2])


def with_contour(sample: Sample, size: int = 0, thickness: int = 1) -> np.ndarray:
    """The sample's image (optionally upscaled to ``size``) with its GT-mask contour drawn in red."""
    image, mask = upscale(sample.image, sample.mask, size) if size else (sample.image, sample.mask)
    return overlay_contour(image, mask, CONTOUR, thickness)


def sample_figure(sample: Sample, size: int = 512) -> go.Figure:
    """A large view of one sample with its GT contour; title: id, label and mask area."""
    image = with_contour(sample, size, thickness=2)
    area = "" if sample.mask is None else f" · defect covers {100 * sample.mask.mean():.2f} %"
    fig = go.Figure(go.Image(z=image, hovertemplate="x %{x}, y %{y}<extra></extra>"))
    h, w = sample.image.shape[:2]
    fig.update_layout(title=dict(text=f"{sample.id}<br><sup>{sample.label} · {w}x{h} px{area}</sup>",
                                 font=dict(size=15)),
                      width=size + 20, height=size + 80, margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def counts_figure(summary: pd.DataFrame, category: str) -> go.Figure:
    """Bar chart of sample counts per split and group for one category of a dataset summary."""
    part = summary[summary["category"] == category]
    fig = px.bar(part, x="group", y="count", color="split", barmode="group", text="count",
                 title=f"{category}: samples per split and group")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10))
    return fig
