"""VAE-GAN audit (Rashid et al.): detection with tau*, the Fig. 2 scatter of max IoU vs anomaly
score for S1/S2/S3; a click on a point opens that sample as a Fig. 3 row."""

import json
from pathlib import Path

import streamlit as st

from pages.audit_widgets import controls, live_panel, sample_panel, upload_panel
from pages.audit_threshold import threshold_panel
from pages.common import figure_downloads, table_download
from xad import audit, runs
from xad.plots import audit as plots_audit
from xad.data.transforms import DataError
from xad.detectors import ExternalDetector
from xad.export import audit_report_html

st.title("VAE-GAN audit — detected for the right reason?")
try:
    ds, model, record, params, run_folder = controls()
    external = isinstance(model, ExternalDetector)
    run = runs.load_run(run_folder) if run_folder else audit.open_audit(ds, record.path, params)
    sc = st.cache_data(audit.score, show_spinner="Reconstructing and scoring the test set …",
                       hash_funcs={type(model): lambda m: m.fingerprint() if external else str(record.path),
                                   type(ds): lambda d: str(d.folder)})(model, ds, params)
except (DataError, FileNotFoundError) as exc:
    st.error(str(exc))
    st.stop()

det = audit.evaluate_scoring(sc)
if external:
    st.info(f"Auditing an external detector, `{record.name}`: the explained function is its score; hidden "
            f"segments show {model.background} (a VAE-GAN's audit uses its reconstruction). The "
            "\"reconstruction\" panels show that background.")
else:
    with st.sidebar.expander("Score and explain your own image"):
        upload_panel(model, params, sc.tau)
fit_on = ("the test labels, as the paper does" if params.calibration == "test"
          else "a held-out calibration half; the counts are on the other half")
left, right = st.columns([2, 3])
with left:
    fig = plots_audit.roc_figure(sc.scores, sc.labels, sc.tau, f"ROC — AUROC {det.auroc:.3f}")
    st.plotly_chart(fig, key="audit_roc")
    figure_downloads(fig, f"{ds.category}_roc", key="audit-roc")
with right:
    st.metric("Accuracy at tau*", f"{100 * det.accuracy:.0f} %", help=f"tau* fitted on {fit_on}")
    st.markdown(f"**{det.describe()}**  \ntau* is fitted on {fit_on}. Model: `{record.name}`.")

keep = sc.roles == "evaluation"
with st.expander("Threshold what-if: move tau, see the counts", expanded=False):
    threshold_panel(sc.scores[keep], sc.labels[keep], sc.tau, run)

st.header("Max IoU vs anomaly score (Fig. 2)")
if run is None:
    st.info(f"No audit with these settings yet: {len(sc.ids)} samples x {len(params.setups)} setups "
            f"(k = {params.segments}, n = {params.samples}). It runs once and is cached on disk; "
            "an interrupted run resumes where it stopped.")
    shipped = [] if external else sorted(Path(record.path, "audits").glob("*/run.json"))
    if shipped:
        old = json.loads(shipped[0].read_text())
        p = old["params"]
        made = (f"This model ships an audit made with other settings: n = {p['samples']}, k = {p['segments']}, "
                f"{', '.join(p['setups'])}, {old['n_samples']} test samples"
                + (f" (the first {p['limit']})" if p.get("limit") else "")
                + f", on {old['created']} (xad {old['xad_version']})")
        if old.get("engine_revision", 0) < audit.ENGINE_REVISION:
            made += (", before the engine followed the published code's segmentation (quickshift in Lab). "
                     "Its numbers are those of that engine; run the audit here for the current ones.")
        else:
            made += " with the current engine."
        st.caption(made)
        st.button("Show the shipped audit", key="audit_show_shipped",
                  on_click=lambda: st.session_state.update(audit_run_folder=str(shipped[0].parent)))
    if st.button("Run audit", type="primary", key="audit_run"):
        bar = st.progress(0.0, text="Explaining …")
        audit.run_audit(ds, model, record.path, params,
                        progress=lambda d, t, sid: bar.progress(d / t, text=f"{d}/{t} · {sid}"))
        st.rerun()
    st.stop()

if run.info.get("params", {}).get("bf16", params.bf16) != params.bf16:
    st.caption(f"This audit was computed with the model in {'bf16' if run.info['params']['bf16'] else 'fp32'} "
               f"(on another CPU); here xad runs {'bf16' if params.bf16 else 'fp32'}, so a live re-run "
               "below can differ slightly (tested: rank correlation of maps >= 0.99, J* within 0.02).")
fig2 = plots_audit.fig2_scatter(run.results, params.setups)
event = st.plotly_chart(fig2, key="audit_fig2", on_select="rerun", selection_mode="points")
figure_downloads(fig2, f"{ds.category}_fig2", key="audit-fig2")
iou = runs.mean_iou_table(run.results, params.setups)
st.dataframe(iou, hide_index=True)
with st.expander("Localisation beyond max-IoU: rank and mass accuracy, pointing game, the detector's own map"):
    st.dataframe(runs.localisation_table(run.results, params.setups), hide_index=True)
if picked := plots_audit.selected_id(event.selection if event else None):
    st.session_state["audit_sample"] = picked
sid = st.selectbox("Sample (or click a point above)", list(run.results["id"]), key="audit_sample")
scale = st.radio("Anomaly-map colour scale", ["per image", "audit", "good-p99"], horizontal=True,
                 key="audit_map_scale", format_func={"per image": "each map's own maximum",
                                                     "audit": "one scale: the largest value in the audit",
                                                     "good-p99": "one scale: 99th percentile of good images"}.get,
                 help="Per-image scaling makes every map look alarming, a good image's too; one scale "
                      "for the whole audit shows how strong a map really is.")
sample_panel(ds, model, run, sid, params.setups, params.resample, runs.map_scale(run, scale))
if not external:
    live_panel(ds, model, sid, params)

st.subheader("Per-sample results")
st.dataframe(run.results, hide_index=True, height=260)
c1, c2, c3 = st.columns(3)
with c1:
    table_download(run.results, f"{ds.category}_audit_results", key="audit-csv",
                   label="Per-sample results (CSV)")
with c2:
    table_download(iou, f"{ds.category}_mean_iou", key="audit-iou-csv", label="Mean max-IoU per setup (CSV)")
c3.download_button("HTML report", key="audit-report", on_click="ignore", mime="text/html",
                   data=lambda: audit_report_html(run.path), icon=":material/description:",
                   file_name=f"{ds.category}_audit_report.html")
st.caption(f"Run folder `{run.path}` · the same numbers from the command line: `python -m xad audit "
           f"--category {ds.category} {'--detector ' + model.source if external else '--weights ' + str(record.path)} "
           f"--samples {params.samples} "
           f"--segments {params.segments} --seed {params.seed}`")
