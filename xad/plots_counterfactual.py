"""Figures of counterfactual explanations (pure functions of xad.counterfactual results)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xad.plots import upscale

PIXELS = 160  # display size of one 32 px image


def display_rgb(image: np.ndarray, size: int = PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> uint8 upscaled (crisp pixels) for display."""
    a = image if image.dtype == np.uint8 else np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return upscale(a, None, size)[0]


def _style(fig: go.Figure, title: str, width: int, height: int) -> go.Figure:
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=dict(text=title, font=dict(size=14)), width=width, height=height,
                      margin=dict(l=10, r=10, t=70, b=10), showlegend=False)
    return fig


def concepts_figure(e, title: str = "") -> go.Figure:  # noqa: ANN001 - an Explanation
    """The anomaly beside its counterfactual for every concept (top) and the change maps
    |x - x_bar| (bottom), each titled with the detector's score."""
    k = len(e.counterfactuals)
    names = [f"anomaly · score {e.score:.3f}"] + [f"k = {i + 1} · score {s:.3f}"
                                                  for i, s in enumerate(e.ce_scores)]
    names += [""] + [f"change |x - x̄|, k = {i + 1}" for i in range(k)]
    fig = make_subplots(rows=2, cols=k + 1, subplot_titles=names, horizontal_spacing=0.02,
                        vertical_spacing=0.1)
    fig.add_trace(go.Image(z=display_rgb(e.image), hoverinfo="skip"), row=1, col=1)
    for i in range(k):
        fig.add_trace(go.Image(z=display_rgb(e.counterfactuals[i]), hoverinfo="skip"), row=1, col=i + 2)
        change = np.kron(e.changes[i], np.ones((PIXELS // e.changes[i].shape[0],) * 2))
        fig.add_trace(go.Heatmap(z=change[::-1], zmin=0, zmax=1, colorscale="Inferno", showscale=False,
                                 hovertemplate="change %{z:.2f}<extra></extra>"), row=2, col=i + 2)
    return _style(fig, title or f"Counterfactuals at target score alpha = {e.alpha:.2f}",
                  170 * (k + 1) + 20, 2 * 170 + 100)


def alpha_strip_figure(alphas: np.ndarray, images: np.ndarray, reached: np.ndarray, k: int,
                       title: str = "") -> go.Figure:
    """CEs of concept k for alpha from 1 to 0 (the paper's "increasing impact" sequence)."""
    n = len(alphas)
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.01,
                        subplot_titles=[f"alpha {a:.2f}<br>reached {s:.3f}" for a, s in zip(alphas, reached)])
    for i in range(n):
        fig.add_trace(go.Image(z=display_rgb(images[i]), hoverinfo="skip"), row=1, col=i + 1)
    return _style(fig, title or f"Concept k = {k + 1}: alpha from 1 to 0", 150 * n + 20, 250)


def single_figure(image: np.ndarray, title: str) -> go.Figure:
    """One counterfactual, large (the live slider view)."""
    fig = go.Figure(go.Image(z=display_rgb(image, 320), hoverinfo="skip"))
    return _style(fig, title, 340, 400)
