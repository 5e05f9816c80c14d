"""Figures of the latent-diffusion detector (pure functions of :mod:`xad.ldm` results)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from xad.plots.images import display_rgb, heat_rgb, tiles_figure

TILE = 110  # display size of one 32 px image in the grids


def _kind(anomalous: bool) -> str:
    return "anomalous" if anomalous else "normal"


def reconstructions_figure(v, title: str = "") -> go.Figure:  # noqa: ANN001 - a SampleView
    """Inputs (top row) and their reconstructions from t (bottom row), each reconstruction titled
    with the classifier's P(different class) and the latent error."""
    top = [f"{_kind(a)} · {lab}" for lab, a in zip(v.labels, v.anomalous)]
    bottom = [f"P(diff) {s:.2f}<br>latent err {e:.2f}" for s, e in zip(v.scores, v.latent_errors)]
    start = f" (the {v.sampler.upper()} schedule starts at {v.start_t})" if v.start_t != v.t else ""
    return tiles_figure([[display_rgb(i, TILE) for i in v.images], [display_rgb(r, TILE) for r in v.reconstructions]],
                        [top, bottom], title or f"Reconstructions from t = {v.t}{start}: inputs above, "
                                                "reconstructions below", head=44)


def timestep_grid_figure(images: np.ndarray, labels: np.ndarray, anomalous: np.ndarray, grid: np.ndarray,
                         ts: tuple[int, ...], title: str = "") -> go.Figure:
    """The paper's Fig. 3: one row per image (input, then its reconstruction at every t)."""
    size = 64
    rows = [[display_rgb(images[r], size)] + [display_rgb(g, size) for g in grid[r]] for r in range(len(images))]
    titles = [[f"{_kind(anomalous[r])} {labels[r]}"] + ([f"t = {t}" for t in ts] if r == 0 else [])
              for r in range(len(images))]
    return tiles_figure(rows, titles, title or "Reconstructions across timesteps (normal rows first, then anomalous)",
                        gap=4, head=20)


def auroc_curve_figure(sweep: pd.DataFrame, t: int | None = None, title: str = "") -> go.Figure:
    """AUROC (%) vs t for the method and the DDPM reconstruction error; the chosen t marked."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sweep["t"], y=100 * sweep["auroc_method"], mode="lines+markers",
                             name="method: same-class classifier",
                             hovertemplate="t %{x}: AUROC %{y:.1f} %<extra>method</extra>"))
    fig.add_trace(go.Scatter(x=sweep["t"], y=100 * sweep["auroc_ddpm_reconstruction"], mode="lines+markers",
                             name="baseline: reconstruction error", line=dict(dash="dash"),
                             hovertemplate="t %{x}: AUROC %{y:.1f} %<extra>reconstruction error</extra>"))
    fig.add_hline(y=50, line=dict(color="grey", width=1, dash="dot"))
    if t is not None:
        fig.add_vline(x=t, line=dict(color="crimson", width=2), annotation_text=f"t = {t}",
                      annotation_position="top right")
    fig.update_layout(title=dict(text=title or "AUROC vs timestep t", font=dict(size=14)),
                      xaxis_title="timestep t", yaxis_title="AUROC (%)", width=720, height=400,
                      margin=dict(l=60, r=20, t=60, b=50), legend=dict(x=0.01, y=0.01))
    return fig


def sample_figure(image: np.ndarray, reconstruction: np.ndarray, title: str) -> go.Figure:
    """One sample large: input, reconstruction and the pixel difference |x - x̂| (max over channels,
    Inferno from 0 to 1)."""
    x = image.astype(np.float64) / 255 if image.dtype == np.uint8 else image.astype(np.float64)
    diff = np.abs(x - reconstruction).max(axis=2)
    big = 224
    return tiles_figure([[display_rgb(image, big), display_rgb(reconstruction, big), heat_rgb(diff, big)]],
                        [["input", "reconstruction", "difference |x - x̂| (0 to 1)"]], title)
