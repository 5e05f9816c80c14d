"""Figures of counterfactual explanations (pure functions of xad.counterfactual results)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from xad.plots.images import display_rgb, heat_rgb, tiles_figure


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


def calibration_figure(rows: list[dict], alpha: float | None = None, title: str = "",
                       matched: list[dict] | None = None) -> go.Figure:
    """The detector's score of G(x, alpha, k) against the target alpha, per concept: the mean with
    a band of one standard deviation, the identity line (a perfectly calibrated generator) and the
    slider's alpha marked; ``matched``: the "alpha matched" extension's curve, dotted."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="ideal: score = alpha",
                             line=dict(color="grey", dash="dash")))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    for i, k in enumerate(sorted({r["k"] for r in rows})):
        pts = sorted((r for r in rows if r["k"] == k), key=lambda r: r["alpha"])
        a = [r["alpha"] for r in pts]
        mean = np.array([r["mean_score"] for r in pts])
        std = np.array([r["std_score"] for r in pts])
        colour = palette[i % len(palette)]
        fig.add_trace(go.Scatter(x=a + a[::-1], y=list(np.clip(mean + std, 0, 1)) + list(np.clip(mean - std, 0, 1))[::-1],
                                 fill="toself", mode="lines", line=dict(width=0), fillcolor=colour, opacity=0.15,
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=a, y=mean, mode="lines+markers", name=f"k = {k}", line=dict(color=colour)))
        m_pts = sorted((r for r in matched or [] if r["k"] == k), key=lambda r: r["alpha"])
        if m_pts:
            fig.add_trace(go.Scatter(x=[r["alpha"] for r in m_pts], y=[r["mean_score"] for r in m_pts],
                                     mode="lines+markers", name=f"k = {k}, alpha matched (ext.)",
                                     line=dict(color=colour, dash="dot")))
    if alpha is not None:
        fig.add_vline(x=alpha, line=dict(color="black", width=1), annotation_text=f"alpha = {alpha:.2f}")
    fig.update_layout(title=dict(text=title or "Calibration: the detector's score of G(x, alpha, k)", font=dict(size=14)),
                      xaxis=dict(title="target score alpha", range=[-0.02, 1.02]),
                      yaxis=dict(title="detector score (mean ± std)", range=[-0.02, 1.02]),
                      height=340, margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.25))
    return fig
