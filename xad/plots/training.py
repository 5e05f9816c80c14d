"""Figures of a training run: the VAE-GAN's learning curve as stored in its config.json."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

_TRAIN_NAMES = {"bce": "reconstruction BCE (train)", "kl": "KL (train)", "g": "generator term (train)",
                "d": "discriminator loss (train)"}


def _clean(values: list) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]


def learning_curve_figure(curve: dict, kept_step: int | None = None, title: str = "") -> go.Figure:
    """Three panels over the training steps: reconstruction loss above its floor (held out and
    train), the test AUROC at its checkpoints, and the loss components (KL, G term, D loss, log
    scale). A dotted line marks the step whose weights were kept. ``curve`` as written by
    :func:`xad.train.vaegan.train`."""
    steps = curve.get("step", [])
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("held-out reconstruction (BCE above its floor, per image)",
                                        "test AUROC at checkpoints", "training loss components"))
    held = curve.get("heldout", {})
    if held.get("bce_excess"):
        fig.add_trace(go.Scatter(x=steps, y=_clean(held["bce_excess"]), mode="lines+markers",
                                 name="held-out BCE - floor"), row=1, col=1)
    auroc = curve.get("test_auroc", {})
    if auroc.get("step"):
        fig.add_trace(go.Scatter(x=auroc["step"], y=auroc["auroc"], mode="lines+markers",
                                 name="test AUROC"), row=2, col=1)
    for key in ("kl", "g", "d"):
        ys = _clean(curve.get("train", {}).get(key, []))
        if any(v is not None for v in ys):
            fig.add_trace(go.Scatter(x=steps, y=ys, mode="lines", name=_TRAIN_NAMES[key]), row=3, col=1)
    fig.update_yaxes(range=[0.0, 1.02], row=2, col=1)
    fig.update_yaxes(type="log", row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    if kept_step:
        for row in (1, 2, 3):
            fig.add_vline(x=kept_step, line_dash="dot", line_color="grey", row=row, col=1)
        fig.add_annotation(x=kept_step, y=1, yref="y domain", text=f"kept: step {kept_step}",
                           showarrow=False, xanchor="left", row=1, col=1)
    fig.update_layout(height=560, title=title or None, legend={"orientation": "h", "y": -0.12},
                      margin={"t": 60, "b": 40})
    return fig
