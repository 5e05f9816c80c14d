"""Figures of counterfactual explanations (pure functions of xad.counterfactual results)."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import sample_colorscale

from xad.plots.dataset import upscale
from xad.tensors import to_uint8

PIXELS = 160  # display size of one 32 px image


def display_rgb(image: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> uint8 upscaled (crisp pixels) for display."""
    a = to_uint8(image)
    return upscale(a, None, size)[0]


#: Inferno as a 256-entry lookup table (change maps are coloured with numpy, not a heatmap trace).
INFERNO = np.array([[int(v) for v in c[4:-1].split(",")]
                    for c in sample_colorscale("Inferno", list(np.linspace(0, 1, 256)))], np.uint8)


def heat_rgb(values: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """(H, W) values in [0, 1] -> Inferno-coloured uint8 (size, size, 3), crisp pixels."""
    idx = to_uint8(np.asarray(values, np.float64))
    return display_rgb(INFERNO[idx], size)


def _png_uri(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def tiles_figure(rows: list[list[np.ndarray | None]], titles: list[list[str]], title: str,
                 gap: int = 8, head: int = 36) -> go.Figure:
    """Equal-sized uint8 tiles (None = empty) on one canvas, each with a caption above it: one
    PNG image trace instead of a subplot per tile, so a figure builds and ships in milliseconds."""
    tile = next(t for row in rows for t in row if t is not None).shape[0]
    ncols = max(len(r) for r in rows)
    width, height = ncols * (tile + gap) + gap, len(rows) * (tile + head) + gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    notes = []
    for r, row in enumerate(rows):
        for c, t in enumerate(row):
            x0, y0 = gap + c * (tile + gap), head + r * (tile + head)
            if t is not None:
                canvas[y0: y0 + tile, x0: x0 + tile] = t
            text = titles[r][c] if r < len(titles) and c < len(titles[r]) else ""
            if text:
                notes.append(dict(x=x0 + tile / 2, y=y0 - 4, text=text, showarrow=False, xanchor="center",
                                  yanchor="bottom", font=dict(size=11), xref="x", yref="y"))
    w, h = width + 20, height + 80
    return go.Figure(go.Image(source=_png_uri(canvas), hoverinfo="skip"), layout=dict(
        annotations=notes, title=dict(text=title, font=dict(size=14)), width=w, height=h,
        margin=dict(l=10, r=10, t=70, b=10), showlegend=False, xaxis=dict(visible=False),
        yaxis=dict(visible=False)))


def concepts_figure(e, title: str = "") -> go.Figure:  # noqa: ANN001 - an Explanation
    """The anomaly beside its counterfactual for every concept (top) and the change maps
    |x - x_bar| (bottom, Inferno from 0 to 1), each titled with the detector's score."""
    k = len(e.counterfactuals)
    top = [display_rgb(e.image)] + [display_rgb(c) for c in e.counterfactuals]
    bottom = [None] + [heat_rgb(ch) for ch in e.changes]
    names = [[f"anomaly · score {e.score:.3f}"] + [f"k = {i + 1} · score {s:.3f}" for i, s in enumerate(e.ce_scores)],
             [""] + [f"change |x - x̄|, k = {i + 1}" for i in range(k)]]
    return tiles_figure([top, bottom], names, title or f"Counterfactuals at target score alpha = {e.alpha:.2f}")


def alpha_strip_figure(alphas: np.ndarray, images: np.ndarray, reached: np.ndarray, k: int,
                       title: str = "") -> go.Figure:
    """CEs of concept k for alpha from 1 to 0 (the paper's "increasing impact" sequence)."""
    return tiles_figure([[display_rgb(im, 130) for im in images]],
                        [[f"alpha {a:.2f}<br>reached {s:.3f}" for a, s in zip(alphas, reached)]],
                        title or f"Concept k = {k + 1}: alpha from 1 to 0", head=44)


def single_figure(image: np.ndarray, title: str) -> go.Figure:
    """One counterfactual, large (the live slider view)."""
    return tiles_figure([[display_rgb(image, 320)]], [[""]], title)


def diffedit_figure(e, title: str = "") -> go.Figure:  # noqa: ANN001 - an Explanation
    """DiffEdit backend: the anomaly, psi's mask, the plain DiffEdit edit towards the normal class
    (with the detector's score) and the change the plain edit made."""
    if e.edit is None:
        raise ValueError("this explanation has no DiffEdit edit (GAN backend)")
    tiles = [display_rgb(e.image), heat_rgb(e.edit_mask), display_rgb(e.edit), heat_rgb(e.edit_change)]
    names = [f"anomaly · score {e.score:.3f}", f"DiffEdit mask ({100 * e.edit_mask.mean():.0f} % of pixels)",
             f"plain DiffEdit edit · score {e.edit_score:.3f}", "change |x - psi(x)|"]
    return tiles_figure([tiles], [names], title or "DiffEdit psi: the edit towards the normal class that G' starts from")


def sd_edit_figure(image: np.ndarray, mask: np.ndarray, edited: np.ndarray, title: str) -> go.Figure:
    """A Stable Diffusion DiffEdit: input, mask and edit (any size; shown at 256 px)."""
    return tiles_figure([[display_rgb(image, 256), heat_rgb(mask, 256), display_rgb(edited, 256)]],
                        [["input", "DiffEdit mask", "edit"]], title)
