"""Counterfactual explorer (Liznerski et al.): what would have to change for the detector to call
an anomaly normal? Pick a generator (setup + detector), an anomaly from the test set or your own
image; slide the target score alpha and the concept k."""

import numpy as np
import pandas as pd
import streamlit as st

from pages.common import figure_downloads, table_download, weights_picker
from xad import counterfactual as cf
from xad import plots_counterfactual as pc
from xad.data.transforms import DataError, decode_image_bytes
from xad.models.detectors import bounding_note
from xad.weights import WeightsError

st.title("Counterfactuals — what would make this anomaly normal?")


@st.cache_resource(show_spinner="Loading generator, detector and feature extractor …", max_entries=6)
def bundle(path: str) -> cf.Bundle:
    return cf.load_bundle(path)


@st.cache_data(show_spinner="Loading test anomalies …", max_entries=6)
def gallery(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    return cf.test_anomalies(bundle(path), n)


records = cf.generators()
with st.sidebar:
    st.header("Generator")
    folder = weights_picker(records, "Setup and detector", "cf_generator", "cegan",
                            lambda r: r.meta.get("detector_kind", "?").upper())
if not folder:
    st.info("Enter a cegan weights folder (config.json + model.safetensors + card.md), or train "
            "one with `python -m xad train cegan …` (see the README).")
    st.stop()
try:
    b = bundle(folder)
except (WeightsError, DataError, KeyError) as exc:
    st.error(f"Cannot use this generator: {exc}")
    st.stop()

st.markdown(f"**Setup:** {b.record.meta.get('setup_description', b.setup)}.  \n"
            f"**Detector:** `{b.detector_record.name}` — {bounding_note(b.detector.config.kind)}  \n"
            f"**Generator:** K = {b.concepts} concepts; trained {b.record.meta.get('steps_done')} steps "
            "(see its card on the home page).")

st.header("1 · Pick an anomaly")
images, labels = gallery(folder, 16)
source = st.radio("Source", ["Test anomalies", "Your own image"], horizontal=True, key="cf_source")
if source == "Your own image":
    up = st.file_uploader("An image (PNG, JPEG, …); it is converted to RGB and resized to 32 px",
                          type=None, key="cf_upload")
    if up is None:
        st.info("Upload an image to explain it.")
        st.stop()
    try:
        image, caption = cf.prepare(decode_image_bytes(up.getvalue(), up.name)), up.name
    except DataError as exc:
        st.error(str(exc))
        st.stop()
else:
    cols = st.columns(8)
    for i, (img, lab) in enumerate(zip(images, labels)):
        with cols[i % 8]:
            st.image(pc.display_rgb(img, 96), caption=str(lab))
            if st.button("Explain", key=f"cf_pick_{i}", width="stretch"):
                st.session_state["cf_index"] = i
    idx = min(st.session_state.get("cf_index", 0), len(images) - 1)
    image, caption = images[idx], f"test anomaly {idx + 1} ({labels[idx]})"


@st.fragment
def live(image: np.ndarray, caption: str) -> None:
    """Sliders for alpha and k; only this panel reruns when they move."""
    st.header("2 · Slide the target score and the concept")
    c1, c2 = st.columns(2)
    alpha = c1.slider("Target anomaly score alpha", 0.0, 1.0, 0.0, 0.05, key="cf_alpha",
                      help="0: what a normal version of this image would look like to the detector")
    k = c2.slider("Concept k", 1, b.concepts, 1, key="cf_k") if b.concepts > 1 else 1
    e = cf.explain(b, image, alpha)
    left, right = st.columns([1, 2])
    with left:
        fig = pc.single_figure(e.counterfactuals[k - 1],
                               f"k = {k}, alpha = {alpha:.2f}<br><sup>detector: {e.score:.3f} -> "
                               f"{e.ce_scores[k - 1]:.3f}</sup>")
        st.plotly_chart(fig, key="cf_single")
        figure_downloads(fig, f"counterfactual_k{k}_alpha{alpha:.2f}", key="cf-single")
    with right:
        fig = pc.concepts_figure(e, f"{caption}: every concept at alpha = {alpha:.2f}")
        st.plotly_chart(fig, key="cf_concepts")
        figure_downloads(fig, f"counterfactuals_alpha{alpha:.2f}", key="cf-concepts")
    alphas, seq, reached = cf.alpha_sequence(b, image, k - 1)
    fig = pc.alpha_strip_figure(alphas, seq, reached, k - 1)
    st.plotly_chart(fig, key="cf_strip")
    figure_downloads(fig, f"alpha_sequence_k{k}", key="cf-strip")


live(image, caption)

st.header("3 · How good are these counterfactuals? (test set, alpha = 0)")
metrics = b.record.metrics
if not metrics:
    st.info("This generator has no measured metrics yet: run "
            f"`python -m xad evaluate cegan --weights {folder}`.")
else:
    table = pd.DataFrame(cf.metrics_table(metrics, b.setup, b.detector.config.kind))
    table["this model"] = table["this model"].astype(str)
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"On {metrics.get('n_anomalies')} test anomalies and {metrics.get('n_normal')} normal "
               "test images; the paper's numbers are Tables 1 and 2 of Liznerski et al. FID_N uses "
               f"xad's feature extractor `{metrics.get('feature_extractor')}` (a classifier trained on "
               "the dataset's labels), not Inception: compare FID_N only between xad runs.")
    table_download(table, f"{b.record.path.name}_metrics", key="cf-metrics-csv")
