"""Figures of the runs page and the threshold what-if (pure functions of results)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xad.plots.audit import NA_Y

RUN_STYLE = {"A": dict(symbol="circle", color="#1f5fbf"), "B": dict(symbol="x", color="#c0392b")}


def fig2_overlay(a: pd.DataFrame, b: pd.DataFrame, setups: list[str]) -> go.Figure:
    """Fig. 2 of two runs on one canvas (a panel per setup): max IoU vs score, A as circles and B as
    crosses, a grey line joining each sample's two points; customdata holds the sample id."""
    both = a.merge(b, on="id", suffixes=("_a", "_b"))
    fig = make_subplots(rows=1, cols=len(setups), subplot_titles=setups, shared_yaxes=True,
                        horizontal_spacing=0.04)
    for c, s in enumerate(setups, 1):
        ya = both[f"iou_{s}_a"].astype(float).fillna(NA_Y)
        yb = both[f"iou_{s}_b"].astype(float).fillna(NA_Y)
        xs = np.column_stack([both["score_a"], both["score_b"], np.full(len(both), np.nan)]).ravel()
        ys = np.column_stack([ya, yb, np.full(len(both), np.nan)]).ravel()
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#bbb", width=1),
                                 hoverinfo="skip", showlegend=False), row=1, col=c)
        for run, x, y in (("A", both["score_a"], ya), ("B", both["score_b"], yb)):
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="markers", name=f"run {run}", legendgroup=run, showlegend=c == 1,
                marker=dict(size=9, line=dict(width=0.5, color="#333"), **RUN_STYLE[run]),
                customdata=both["id"], hovertemplate=f"%{{customdata}}<br>run {run}: alpha %{{x:.3f}}, "
                                                     "J* %{y:.3f}<extra></extra>"), row=1, col=c)
        fig.update_yaxes(range=[NA_Y - 0.08, 1.02], tickvals=[NA_Y, 0, 0.5, 1], ticktext=["NA", "0", ".5", "1"],
                         row=1, col=c)
        fig.update_xaxes(title_text="anomaly score alpha", row=1, col=c)
    fig.update_yaxes(title_text="max IoU J*", col=1)
    fig.update_layout(height=380, width=max(520, 360 * len(setups)), clickmode="event+select",
                      title="Max IoU vs anomaly score, both runs (Fig. 2 overlay)",
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=60, b=10))
    return fig


def score_histogram(scores: np.ndarray, labels: np.ndarray, marks: dict[str, float]) -> go.Figure:
    """Scores of good vs anomalous images (overlaid histograms) with a vertical line per named
    threshold in ``marks`` (e.g. tau*, F1-optimal, chosen)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    bins = dict(start=float(scores.min()), end=float(scores.max()) + 1e-9,
                size=max(1e-9, float(np.ptp(scores)) / 30))
    fig = go.Figure([go.Histogram(x=scores[~labels], name="good", marker_color="#2e7d32", opacity=0.6, xbins=bins),
                     go.Histogram(x=scores[labels], name="anomalous", marker_color="#c0392b", opacity=0.6,
                                  xbins=bins)])
    dashes = ("dot", "dash", "solid", "dashdot")
    for (name, tau), dash in zip(marks.items(), dashes):
        fig.add_vline(x=tau, line=dict(dash=dash, color="#333", width=2),
                      annotation_text=f"{name} {tau:.3f}", annotation_position="top")
    fig.update_layout(barmode="overlay", height=300, width=560, xaxis_title="anomaly score alpha",
                      yaxis_title="images", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=1.15))
    return fig
