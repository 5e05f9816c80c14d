"""Markdown pipe tables for cards, reports and the README's generated blocks."""

from __future__ import annotations

from typing import Any

import pandas as pd


def markdown_table(rows: list[dict[str, Any]] | pd.DataFrame) -> str:
    """Rows (one dict per row, keys = column headers) as a markdown pipe table; None -> ""; every
    cell is shown as its ``str`` (numbers are formatted by the caller)."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, dtype=object)  # ints stay ints
    return df.map(lambda v: "" if v is None else str(v)).to_markdown(index=False, disable_numparse=True)
