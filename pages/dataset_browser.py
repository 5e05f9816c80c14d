"""Dataset browser: pick dataset, category, split and defect type; a grid with GT-mask contours;
"View" opens one sample large, with exports."""

import math

import pandas as pd
import streamlit as st

from pages.common import add_folder_form, datasets, figure_downloads, table_download
from xad.plots import dataset as plots
from xad.data import catalog
from xad.data.transforms import DataError

SELECTED = "browser_selected"
st.title("Dataset browser")
found, problems = datasets()
for p in problems:
    st.warning(p)
with st.expander("Open your own folder (MVTec AD layout, MNIST, CIFAR-10)"):
    add_folder_form("browser-add-folder")

c1, c2, c3, c4 = st.columns(4)
info = c1.selectbox("Dataset", found, format_func=lambda d: d.name, key="browser_dataset")
try:
    coll = catalog.open_collection(info)
    category = c2.selectbox("Category", coll.categories(), key="browser_category")
    split = c3.selectbox("Split", coll.splits, index=1, key="browser_split")
    groups = coll.groups(category, split)
    group = c4.selectbox("Defect type" if info.kind == "mvtec" else "Colour",
                         ["all", *groups] if len(groups) > 1 else groups, key="browser_group")
    ids = coll.ids(category, split, None if group == "all" else group)
except DataError as exc:
    st.error(str(exc))
    st.stop()

grid_col, view_col = st.columns([3, 2], gap="large")
with grid_col:
    per_page = 24
    pages = max(1, math.ceil(len(ids) / per_page))
    page = st.number_input(f"Page (of {pages}; {len(ids)} images)", 1, pages, 1, key="browser_page")
    shown = ids[(page - 1) * per_page: page * per_page]
    for i, sid in enumerate(shown):
        if i % 6 == 0:  # a new row, so reading and tab order follow the grid
            cols = st.columns(6)
        with cols[i % 6]:
            try:
                st.image(plots.with_contour(coll.load(sid), 192), caption=sid.split("/", 2)[2])
            except DataError as exc:
                st.error(str(exc))
                continue
            if st.button("View", key=f"view-{sid}", width="stretch"):
                st.session_state[SELECTED] = sid

with view_col:
    selected = st.session_state.get(SELECTED)
    if selected not in ids:
        selected = ids[0] if ids else None
    if selected is None:
        st.info("No images in this selection.")
    else:
        try:
            fig = plots.sample_figure(coll.load(selected), size=448)
            st.plotly_chart(fig, key="browser_large")
            figure_downloads(fig, selected.replace("/", "_"), key="browser-fig")
        except DataError as exc:
            st.error(str(exc))

with st.expander("Counts and sample list"):
    summary = coll.summary()
    fig = plots.counts_figure(summary, category)
    st.plotly_chart(fig, key="browser_counts")
    figure_downloads(fig, f"{category}_counts", key="browser-counts")
    table = pd.DataFrame({"id": ids})
    st.dataframe(table, hide_index=True, height=200)
    table_download(table, f"{category}_{split}_{group}", key="browser-csv")
