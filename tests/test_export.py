"""Export: HTML and CSV always; PNG/SVG/PDF through kaleido + Chromium; a clear message without it."""

import pandas as pd
import plotly.graph_objects as go
import pytest

from xad import export


def _fig() -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1]), layout=dict(width=300, height=200))


def test_html_and_csv_need_no_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "chromium_path", lambda: None)
    html = export.figure_bytes(_fig(), "html").decode()
    assert html.lower().startswith("<!doctype html>") and "plotly" in html
    csv = export.table_csv(pd.DataFrame({"id": ["a/b"], "score": [0.5]})).decode()
    assert csv == "id,score\na/b,0.5\n"


def test_missing_chromium_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "chromium_path", lambda: None)
    with pytest.raises(export.ExportError, match="need Chromium.*apt-get install chromium.*HTML and CSV"):
        export.figure_bytes(_fig(), "png")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        export.figure_bytes(_fig(), "bmp")


@pytest.mark.skipif(export.chromium_path() is None, reason="Chromium not installed")
def test_png_svg_pdf_with_chromium(tmp_path) -> None:  # noqa: ANN001
    assert export.figure_bytes(_fig(), "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in export.figure_bytes(_fig(), "svg")[:500]
    assert export.write_figure(_fig(), tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
