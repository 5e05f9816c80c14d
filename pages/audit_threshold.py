"""The audit page's threshold what-if: a tau slider with live counts and rates, the score
histogram, and "use this threshold" (written into the run and its report). UI only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from pages.common import figure_downloads
from xad import runs
from xad.metrics.detection import f1_optimal_tau, threshold_stats
from xad.plots import runs as plots_runs


@st.fragment
def threshold_panel(scores: np.ndarray, labels: np.ndarray, tau_star: float, run: runs.AuditRun | None) -> None:
    """Only this panel reruns when the slider moves."""
    chosen = float(run.info["tau"]) if run is not None else tau_star
    lo, hi = float(scores.min()), float(scores.max())
    step = max((hi - lo) / 500, 1e-6)
    start = min(max(chosen, lo), hi + step)
    # A select slider over the grid (the start included): the browser sends the option, so the top of
    # the range arrives exactly; a float slider's top could arrive a rounding above its own maximum
    # and Streamlit then resets it to the start (found on the tablet's scores by the browser test).
    grid = {f"{v:.6f}": v for v in (lo + step * np.arange(502)).tolist()} | {f"{start:.6f}": start}
    options = sorted(grid.values())
    tau = float(st.select_slider("Threshold tau (starts at the run's threshold)", options, value=start,
                                 format_func=lambda v: f"{v:.6f}", key="audit_whatif_tau"))
    s = threshold_stats(scores, labels, tau)
    f1_tau = f1_optimal_tau(scores, labels)
    cols = st.columns(7)
    for col, (name, value) in zip(cols, [("TP", s.tp), ("FP", s.fp), ("TN", s.tn), ("FN", s.fn),
                                          ("precision", f"{s.precision:.3f}"), ("recall", f"{s.recall:.3f}"),
                                          ("F1", f"{s.f1:.3f}")]):
        col.metric(name, value)
    st.markdown(f"accuracy **{s.accuracy:.3f}** · sqrt(TPR (1 - FPR)) **{s.gmean:.3f}** at tau = {tau:.4f} "
                f"(tau* = {tau_star:.4f}, F1-optimal {f1_tau:.4f})")
    fig = plots_runs.score_histogram(scores, labels, {"tau*": tau_star, "F1-optimal": f1_tau, "chosen": tau})
    st.plotly_chart(fig, key="audit_whatif_hist")
    figure_downloads(fig, "score_histogram", key="audit-whatif-hist")
    if run is None:
        st.caption("Run the audit to keep a chosen threshold with its results.")
        return
    if st.button("Use this threshold for the run", key="audit_whatif_apply"):
        runs.apply_threshold(run.path, tau)
        st.success(f"tau = {tau:.4f} written into {run.path.name} (run.json keeps tau* and earlier choices; "
                   "results.csv's predictions are recomputed; the HTML report uses it).")
    if run.info.get("tau_history"):
        st.caption("Earlier thresholds of this run: " + ", ".join(
            f"{t:.4f}" for t in run.info["tau_history"] if t is not None))
    st.dataframe(pd.DataFrame([vars(s) | {"precision": s.precision, "recall": s.recall, "f1": s.f1}]),
                 hide_index=True)
