"""Image helpers every figure module shares: the one colormap (matplotlib's, through
:func:`colourise`), crisp display upscaling, PNG data URIs, and a canvas of captioned tiles."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from xad.plots.dataset import upscale
from xad.tensors import to_uint8

PIXELS = 160  # display size of one 32 px image


def colourise(values: np.ndarray, cmap: str = "inferno", symmetric: bool = False,
              vmax: float | None = None) -> np.ndarray:
    """A map (H, W) as uint8 RGB (H, W, 3) through a matplotlib colormap, scaled by ``vmax``
    (default: the map's largest |value|); ``symmetric``: -vmax..vmax to the whole colormap."""
    from matplotlib import colormaps

    lim = (float(np.abs(values).max()) if vmax is None else float(vmax)) or 1.0
    norm = (np.asarray(values) / lim + 1) / 2 if symmetric else np.clip(np.asarray(values) / lim, 0, 1)
    return to_uint8(colormaps[cmap](norm)[..., :3])


#: The colormap as a 256-entry lookup table (entry i: the colour of i / 255).
INFERNO = colourise(np.linspace(0, 1, 256)[None], vmax=1.0)[0]


def display_rgb(image: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> uint8 upscaled (crisp pixels) for display."""
    return upscale(to_uint8(image), None, size)[0]


def heat_rgb(values: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """(H, W) values in [0, 1] -> the colormap's uint8 (size, size, 3), crisp pixels."""
    return display_rgb(colourise(values, vmax=1.0), size)


def png_data_uri(image: np.ndarray, optimize: bool = False) -> str:
    """(H, W, 3) uint8 as a ``data:image/png;base64,`` URI; ``optimize``: smallest file (reports),
    else fastest (zlib level 1, for figures rebuilt on every slider move)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", **({"optimize": True} if optimize else {"compress_level": 1}))
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
    return go.Figure(go.Image(source=png_data_uri(canvas), hoverinfo="skip"), layout=dict(
        annotations=notes, title=dict(text=title, font=dict(size=14)), width=w, height=h,
        margin=dict(l=10, r=10, t=70, b=10), showlegend=False, xaxis=dict(visible=False),
        yaxis=dict(visible=False)))
