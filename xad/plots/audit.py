"""Figures of a VAE-GAN audit (pure functions of results): ROC with tau*, the Fig. 2 scatter of
max-IoU vs anomaly score, and the Fig. 3/4 row of one sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xad.data.transforms import overlay_contour
from xad.metrics.detection import RocCurve, predicted_anomalous, roc_at
from xad.metrics.localisation import IoUCurve, iou_overlay, optimal_iou
from xad.plots.images import colourise

NA_Y = -0.15  # where good images sit in Fig. 2 (IoU is not defined for them)
OUTCOMES = {  # name -> colour
    "good, below tau*": "#2e7d32",
    "good, false alarm": "#f39c12",
    "anomalous, detected": "#1f5fbf",
    "anomalous, missed": "#c0392b",
}


def outcome(label: str, score: float, tau: float) -> str:
    """One of OUTCOMES for a sample."""
    flagged = bool(predicted_anomalous(score, tau))
    if label == "good":
        return "good, false alarm" if flagged else "good, below tau*"
    return "anomalous, detected" if flagged else "anomalous, missed"


def roc_figure(curve: RocCurve | np.ndarray, labels: np.ndarray | None = None, tau: float | None = None,
               title: str = "") -> go.Figure:
    """The ROC with its tau* point, from a :class:`~xad.metrics.detection.RocCurve` (or, as before,
    from (N,) scores, labels and tau, measured by :func:`~xad.metrics.detection.roc_at`)."""
    if not isinstance(curve, RocCurve):
        curve = roc_at(curve, labels, tau)
    fig = go.Figure([go.Scatter(x=curve.fpr, y=curve.tpr, mode="lines", name="ROC", line=dict(width=2)),
                     go.Scatter(x=[curve.fpr_at_tau], y=[curve.tpr_at_tau], mode="markers+text", name="tau*",
                                text=[f"tau* = {curve.tau:.3f}"], textposition="bottom right",
                                marker=dict(size=11, color="#c0392b"))])
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line=dict(dash="dot", color="#999"))
    fig.update_layout(title=title or "ROC", xaxis_title="false positive rate",
                      yaxis_title="true positive rate", width=460, height=420, showlegend=False,
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig


def fig2_scatter(results: pd.DataFrame, setups: tuple[str, ...]) -> go.Figure:
    """Max IoU vs anomaly score: a row per setup, a column per category; good images on the NA
    row; dotted tau* line; colour by outcome. customdata holds each point's sample id."""
    cats = list(dict.fromkeys(results["category"]))
    fig = make_subplots(rows=len(setups), cols=len(cats), shared_xaxes=True, vertical_spacing=0.06,
                        column_titles=cats,
                        row_titles=[f"{s} ({ {'S3': 'SHAP', 'S4': 'ShapBPT'}.get(s, 'LIME')})"
                                    for s in setups])
    for r, setup in enumerate(setups, 1):
        for c, cat in enumerate(cats, 1):
            part = results[results["category"] == cat]
            tau = float(part["tau"].iloc[0])
            kinds = [outcome(lb, sc, tau) for lb, sc in zip(part["label"], part["score"])]
            iou = part[f"iou_{setup}"].astype(float).where(part["label"] != "good")
            y = iou.fillna(NA_Y)
            j_text = np.array(["NA (no defect, IoU undefined)" if np.isnan(v) else f"{v:.3f}" for v in iou])
            for name, colour in OUTCOMES.items():
                keep = np.array(kinds) == name
                fig.add_trace(go.Scatter(
                    x=part["score"][keep], y=y[keep], mode="markers", name=name,
                    legendgroup=name, showlegend=(r == 1 and c == 1),
                    marker=dict(color=colour, size=9, line=dict(width=0.5, color="#333")),
                    customdata=np.stack([part["id"][keep], part["defect"][keep], j_text[keep]], axis=-1),
                    hovertemplate="%{customdata[0]} (%{customdata[1]})<br>alpha %{x:.3f}"
                                  "<br>J* %{customdata[2]}<extra></extra>"),
                    row=r, col=c)
            fig.add_vline(x=tau, line=dict(dash="dot", color="#555"), row=r, col=c)
            fig.update_yaxes(range=[NA_Y - 0.08, 1.02], tickvals=[NA_Y, 0, 0.25, 0.5, 0.75, 1],
                             ticktext=["NA", "0", ".25", ".5", ".75", "1"], row=r, col=c)
    fig.update_xaxes(title_text="anomaly score alpha", row=len(setups))
    fig.update_yaxes(title_text="max IoU J*", col=1)
    fig.update_layout(height=260 * len(setups) + 80, width=max(520, 430 * len(cats)),
                      title="Max IoU vs anomaly score (Fig. 2)", clickmode="event+select",
                      legend=dict(orientation="h", y=-0.08), margin=dict(l=10, r=10, t=60, b=10))
    return fig


def selected_id(selection: dict | None) -> str | None:
    """The sample id of the first selected point of a plotly selection event (or None)."""
    points = (selection or {}).get("points") or []
    for p in points:
        data = p.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data:
            return str(data)
    return None


def iou_curves(maps: dict[str, np.ndarray], mask: np.ndarray | None) -> dict[str, IoUCurve | None]:
    """setup -> the optimal-threshold IoU of its (H, W) attribution map against the (H, W) mask
    (None for a good image, whose IoU is undefined): what :func:`sample_row` shows."""
    return {s: None if mask is None else optimal_iou(a, mask) for s, a in maps.items()}


def sample_row(image: np.ndarray, reconstruction: np.ndarray, amap: np.ndarray,
               maps: dict[str, np.ndarray], mask: np.ndarray | None, title: str = "",
               curves: dict[str, IoUCurve | None] | None = None, amap_max: float | None = None) -> go.Figure:
    """The Fig. 3 row of one sample: x, x', m, each attribution map, its max-IoU overlay (J in the
    corner; TP black, FP red, FN cyan, as the reference colours them) and the GT contour.
    maps: setup -> (H, W); curves: :func:`iou_curves` of them (measured here when not given);
    amap_max: the top of m's colour scale (one scale for a whole audit, :func:`xad.runs.map_scale`);
    None: m's own maximum."""
    curves = iou_curves(maps, mask) if curves is None else curves
    panels: list[tuple[str, object]] = [("x", image), ("x' (reconstruction)", reconstruction),
                                        ("anomaly map m", amap)]
    for setup, attribution in maps.items():
        panels.append((f"{setup} attribution", attribution))
    for setup, attribution in maps.items():
        if (curve := curves.get(setup)) is not None:
            panels.append((f"{setup} max IoU J = {curve.max_iou:.2f}",
                           iou_overlay(attribution >= curve.theta, mask)))
    panels.append(("ground truth", overlay_contour(image, mask, (255, 40, 40))))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.01)
    for i, (name, data) in enumerate(panels, 1):
        if "max IoU" in name:  # J in the panel's corner, as in the paper's figures
            fig.add_annotation(x=0.03, y=0.97, xref=f"x{i} domain", yref=f"y{i} domain",
                               text=name.split("max IoU ")[1], showarrow=False, xanchor="left",
                               yanchor="top", bgcolor="rgba(255,255,255,0.8)", font=dict(size=12))
        arr = np.asarray(data)
        if arr.ndim == 3:
            fig.add_trace(go.Image(z=arr, hoverinfo="skip"), row=1, col=i)
        else:
            lim = amap_max if (name == "anomaly map m" and amap_max) else (float(np.abs(arr).max()) or 1.0)
            diverging = arr.min() < 0
            fig.add_trace(go.Heatmap(z=arr, colorscale="RdBu_r" if diverging else "Inferno",
                                     zmin=-lim if diverging else 0, zmax=lim, showscale=False,
                                     hovertemplate="%{z:.3g}<extra></extra>"), row=1, col=i)
            fig.update_yaxes(autorange="reversed", row=1, col=i)
        fig.update_yaxes(scaleanchor=f"x{'' if i == 1 else i}", row=1, col=i)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=260, width=190 * len(panels), title=title,
                      margin=dict(l=5, r=5, t=70, b=5))
    fig.update_annotations(font_size=11)
    return fig


def sample_row_image(image: np.ndarray, reconstruction: np.ndarray, amap: np.ndarray,
                     maps: dict[str, np.ndarray], mask: np.ndarray | None,
                     curves: dict[str, IoUCurve | None] | None = None) -> np.ndarray:
    """The same row as :func:`sample_row` as one static RGB image (H, W * panels, 3) for reports."""
    curves = iou_curves(maps, mask) if curves is None else curves
    tiles = [image, reconstruction, colourise(amap)]
    tiles += [colourise(m, "RdBu_r", symmetric=True) for m in maps.values()]
    for setup, attribution in maps.items():
        if (curve := curves.get(setup)) is not None:
            tiles.append(iou_overlay(attribution >= curve.theta, mask))
    tiles.append(overlay_contour(image, mask, (255, 40, 40)))
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
