"""Widgets shared by the pages: dataset picking and export buttons. UI only; no math here."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from xad import export
from xad.access import confine
from xad.data import catalog
from xad.data.transforms import DataError

EXTRA_ROOTS = "extra_data_roots"


def datasets() -> tuple[list[catalog.DatasetInfo], list[str]]:
    """Embedded datasets, ``$XAD_DATA`` roots and folders added in this session."""
    if EXTRA_ROOTS not in st.session_state:
        st.session_state[EXTRA_ROOTS] = []
    return catalog.find_datasets(st.session_state[EXTRA_ROOTS])


def _add_folder(key: str) -> None:
    """Form callback (runs before the rerun, so every table already shows the new dataset)."""
    path = st.session_state.get(f"{key}-path", "").strip()
    if not path:
        return
    try:
        folder = confine(path, "dataset folder")
        info = catalog.detect(folder)
    except DataError as exc:
        st.session_state[f"{key}-message"] = ("error", str(exc))
        return
    roots = st.session_state.setdefault(EXTRA_ROOTS, [])
    if str(folder) not in roots:
        roots.append(str(folder))
    st.session_state[f"{key}-message"] = ("success", f"Added {info.name}.")


def add_folder_form(key: str) -> None:
    """A field to add a dataset folder (MVTec root or category, MNIST, CIFAR-10) to this session."""
    with st.form(key, clear_on_submit=True, border=False):
        st.text_input("Add a dataset folder on this machine", key=f"{key}-path",
                      help="An MVTec AD root or category folder (e.g. /data/mvtec_anomaly_detection), "
                           "an MNIST .npz or IDX folder, or a CIFAR-10 batches folder.")
        st.form_submit_button("Add folder", on_click=_add_folder, args=(key,))
    kind, text = st.session_state.pop(f"{key}-message", (None, None))
    if kind == "error":
        st.error(text)
    elif kind == "success":
        st.success(text)


OWN_FOLDER = "Your weights folder …"


def weights_picker(records: list, label: str, key: str, family: str, describe) -> str:  # noqa: ANN001
    """A select box of shipped weights folders (``records``) plus "Your weights folder …" with a
    path field; ``describe(record)`` is shown after each folder's name. Returns the chosen
    folder as a string ("" while the user has not typed one)."""
    by_name = {r.name: r for r in records}
    names = [*by_name, OWN_FOLDER]
    choice = st.selectbox(label, names, key=key, format_func=lambda n: n if n == OWN_FOLDER else
                          f"{n.split('/', 1)[1]}  ({describe(by_name[n])})")
    if choice == OWN_FOLDER:
        return own_folder(st.text_input(f"{family} weights folder", key=f"{key}_folder"), "weights folder")
    return str(by_name[choice].path)


def own_folder(typed: str, what: str) -> str:
    """A folder the user typed, confined to the allowed roots (:mod:`xad.access`); "" with an
    error shown when it lies outside them."""
    if not typed.strip():
        return ""
    try:
        return str(confine(typed, what))
    except DataError as exc:
        st.error(str(exc))
        return ""


def figure_downloads(fig: go.Figure, name: str, key: str) -> None:
    """Download buttons for a figure: PNG, SVG, PDF (need Chromium) and HTML."""
    have_browser = export.chromium_path() is not None
    cols = st.columns(4)
    for col, fmt in zip(cols, export.FIGURE_FORMATS):
        disabled = fmt != "html" and not have_browser
        col.download_button(
            fmt.upper(), data=(lambda f=fmt: export.figure_bytes(fig, f)),
            file_name=f"{name}.{fmt}", mime=export.MIME[fmt], key=f"{key}-{fmt}",
            disabled=disabled, on_click="ignore", icon=":material/download:",
        )
    if not have_browser:
        st.caption("PNG, SVG and PDF need Chromium (`apt-get install chromium`); HTML works.")


def table_download(table: pd.DataFrame, name: str, key: str, label: str = "CSV") -> None:
    """A download button for ``table`` as ``<name>.csv``; ``label`` says what it holds."""
    st.download_button(label, data=export.table_csv(table), file_name=f"{name}.csv",
                       mime="text/csv", key=key, on_click="ignore", icon=":material/download:")

