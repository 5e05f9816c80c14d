"""Export figures and tables for reports.

Figures (plotly) go to PNG, SVG and PDF through kaleido, which drives the system's Chromium; one
kaleido server is started on first use and reused, so later exports take a fraction of a second.
HTML (a self-contained page with plotly.js inlined) and CSV need no browser and always work.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

FIGURE_FORMATS = ("png", "svg", "pdf", "html")
MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf",
        "html": "text/html", "csv": "text/csv"}
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_server_lock = threading.Lock()
_server_started = False


class ExportError(RuntimeError):
    """An export that cannot be made here; the message says why and what still works."""


def chromium_path() -> str | None:
    """The Chromium/Chrome executable kaleido will use, or None (``$BROWSER_PATH`` first)."""
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    return next((p for p in map(shutil.which, _BROWSERS) if p), None)


def _no_browser(detail: str = "") -> ExportError:
    return ExportError(
        "PNG, SVG and PDF export need Chromium, which was not found"
        f"{' (' + detail + ')' if detail else ''}. Install it (Debian/Ubuntu: "
        "`apt-get install chromium`) or set BROWSER_PATH; HTML and CSV export still work."
    )


def _ensure_server() -> None:
    global _server_started
    import kaleido

    with _server_lock:
        if not _server_started:
            kaleido.start_sync_server(silence_warnings=True)
            _server_started = True


def figure_bytes(fig: go.Figure, fmt: str, width: int | None = None, height: int | None = None,
                 scale: float = 2.0) -> bytes:
    """The figure as ``fmt`` (png | svg | pdf | html) bytes; ExportError if it cannot be made."""
    fmt = fmt.lower()
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"format must be one of {FIGURE_FORMATS}, got {fmt!r}")
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")
    if chromium_path() is None:
        raise _no_browser()
    import kaleido

    _ensure_server()
    opts = {"format": fmt, "scale": scale, "width": width or fig.layout.width or 900,
            "height": height or fig.layout.height or 600}
    try:
        return kaleido.calc_fig_sync(fig.to_dict(), opts=opts)
    except Exception as exc:  # kaleido/choreographer raise many kinds; the user needs one message
        if "chrome" in type(exc).__name__.lower() or "browser" in str(exc).lower():
            raise _no_browser(str(exc)[:200]) from exc
        raise ExportError(f"{fmt.upper()} export failed: {type(exc).__name__}: {exc}") from exc


def write_figure(fig: go.Figure, path: str | Path, **kwargs: float) -> Path:
    """Write a figure; the format comes from the suffix (.png .svg .pdf .html)."""
    path = Path(path)
    path.write_bytes(figure_bytes(fig, path.suffix.lstrip("."), **kwargs))
    return path


def table_csv(table: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV bytes (no index column)."""
    return table.to_csv(index=False).encode("utf-8")


def audit_report_html(run_path: str | Path) -> str:
    """A self-contained HTML report of an audit run: settings, detection, the Fig. 2 scatter and
    one row (x, x', m, maps, max-IoU overlays, GT) per test sample, as the reference publishes."""
    import html

    from xad import resolve
    from xad.runs import load_run
    from xad.data.catalog import resolve_mvtec
    from xad.plots.audit import fig2_scatter, sample_row_image
    from xad.plots.images import png_data_uri

    run = load_run(run_path)
    setups = tuple(run.info["params"]["setups"])
    ds = resolve_mvtec(resolve(run.info["data"]).parent, run.info["category"])
    size = run.maps["reconstruction"].shape[1]
    p = run.info["params"]
    samples = {r.id: ds.load(r, size, p["resample"], p.get("resize", "stretch")) for r in ds.refs("test")}
    rows = []
    for i, r in run.results.iterrows():
        sample = samples[r["id"]]
        strip = sample_row_image(sample.image, run.maps["reconstruction"][i],
                                 run.maps["anomaly_map"][i].astype("float32"),
                                 {s: run.maps[s][i] for s in setups}, sample.mask)
        ious = " ".join(f"{s}: " + ("NA" if pd.isna(r["iou_" + s]) else f"{r['iou_' + s]:.2f}")
                        for s in setups)
        rows.append(f"<tr><td><b>{html.escape(r['id'])}</b><br>{r['label']} · alpha {r['score']:.3f}"
                    f" · predicted {r['predicted']}<br>J* {ious}</td><td><img src='{png_data_uri(strip, optimize=True)}'>"
                    "</td></tr>")
    fig = fig2_scatter(run.results, setups)
    info = run.info
    head = (f"<h1>xad audit — {html.escape(info['category'])}</h1><p>{html.escape(info['confusion'])}; "
            f"image AUROC {info['auroc']:.3f}. Weights: <code>{html.escape(info['weights'])}</code>; "
            f"data: <code>{html.escape(info['data'])}</code>; parameters: <code>"
            f"{html.escape(str(info['params']))}</code>; created {info['created']}.</p>"
            + (f"<p><b>Threshold chosen by the analyst: tau = {info['tau']:.4f}</b> (the paper's tau* = "
               f"{info['tau_star']:.4f}); every prediction below uses the chosen tau.</p>"
               if info.get("tau_star") is not None and info.get("tau") != info.get("tau_star") else "")
            + "<p>Columns of each row: x, x' (reconstruction), anomaly map m, attribution maps per "
            "setup, max-IoU overlays (R = 255(1-GT), G = B = 255(1-pred)), ground-truth contour.</p>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>xad audit report</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:6px;"
            "border-bottom:1px solid #ddd}img{image-rendering:pixelated}</style></head><body>"
            + head + fig.to_html(include_plotlyjs=True, full_html=False)
            + "<table>" + "".join(rows) + "</table></body></html>")
