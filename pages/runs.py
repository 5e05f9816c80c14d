"""Runs: every finished audit with its parameters and headline numbers; compare two (paired test,
Fig. 2 overlay, changed verdicts, one sample from both side by side)."""

import streamlit as st

from pages.common import figure_downloads, own_folder, table_download
from xad import runs
from xad.data.transforms import DataError
from xad.plots import audit as plots_audit
from xad.plots import runs as plots_runs

FOLDERS = "runs_extra_folders"

st.title("Runs — what changed between two audits?")
if FOLDERS not in st.session_state:
    st.session_state[FOLDERS] = []
with st.expander("Add run folders (a run folder, or a folder holding run folders)"):
    added = own_folder(st.text_input("Folder", key="runs_add_path"), "run folder")
    if added and added not in st.session_state[FOLDERS]:
        st.session_state[FOLDERS].append(added)
table, problems = runs.list_runs(st.session_state[FOLDERS])
for p in problems:
    st.warning(p)
if table.empty:
    st.info("No finished audits yet: run one on the VAE-GAN audit page or with `python -m xad audit`.")
    st.stop()
st.dataframe(table.drop(columns=["path"]), hide_index=True, width="stretch")
table_download(table, "audit_runs", key="runs-csv")

path_of = {f"{r['run']} · {r['category']} · n={r['n']} k={r['k']} · {r['date']}": r["path"]
           for _, r in table.iterrows()}
c1, c2 = st.columns(2)
a = path_of[c1.selectbox("Run A", list(path_of), key="runs_a")]
b = path_of[c2.selectbox("Run B", list(path_of), index=min(1, len(path_of) - 1), key="runs_b")]
if a == b:
    st.info("Pick two different runs to compare them.")
    st.stop()
try:
    cmp = runs.compare(a, b)
except DataError as exc:
    st.error(str(exc))
    st.stop()

st.subheader("Mean max-IoU per setup, over the common anomalous samples")
st.dataframe(cmp.setups, hide_index=True)
st.caption("Wilcoxon signed-rank test of B - A over the paired samples (scipy); effect size: the "
           "matched-pairs rank-biserial correlation (+1: every sample's IoU went up in B).")
table_download(cmp.setups, "runs_compare", key="runs-cmp-csv")
ra, rb = runs.load_run(a), runs.load_run(b)
setups = list(cmp.setups["setup"])
fig = plots_runs.fig2_overlay(ra.results, rb.results, setups)
event = st.plotly_chart(fig, key="runs_fig2", on_select="rerun", selection_mode="points")
figure_downloads(fig, "runs_fig2_overlay", key="runs-fig2")
left, right = st.columns(2)
left.markdown(f"**{len(cmp.verdicts)} verdicts changed** (detected <-> missed, false alarm <-> not)")
left.dataframe(cmp.verdicts, hide_index=True)
right.markdown(f"**{len(cmp.iou_changes)} max-IoU moves over {runs.IOU_CHANGE}**")
right.dataframe(cmp.iou_changes, hide_index=True)

common = list(ra.results[ra.results["id"].isin(rb.results["id"])]["id"])
if picked := plots_audit.selected_id(event.selection if event else None):
    st.session_state["runs_sample"] = picked
sid = st.selectbox("Sample (or click a point above)", common, key="runs_sample")
for name, run in (("A", ra), ("B", rb)):
    try:
        v = runs.sample_view(run, sid)
    except DataError as exc:
        st.error(str(exc))
        continue
    r = v["row"]
    st.plotly_chart(plots_audit.sample_row(v["sample"].image, v["reconstruction"], v["anomaly_map"], v["maps"],
                                           v["sample"].mask, title=f"run {name}: {sid} · alpha {r['score']:.3f} · "
                                                                   f"predicted {r['predicted']}"),
                    key=f"runs_row_{name}")
