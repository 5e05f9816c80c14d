"""Counterfactual explorer (Liznerski et al.): what would have to change for the detector to call
an anomaly normal? Pick a backend (GAN or DiffEdit) and a generator (setup + detector), an anomaly
from the test set or your own image; slide the target score alpha and the concept k."""

from contextlib import nullcontext

import numpy as np
import pandas as pd
import streamlit as st

from pages.common import figure_downloads, own_folder, table_download, weights_picker
from xad import cards, cards_cegan
from xad.counterfactual import bundle as cfb
from xad.counterfactual import explanation as cfe
from xad.counterfactual import suite
from xad.counterfactual.sd_edit import stable_diffusion_edit
from xad.plots import counterfactual as pc
from xad.plots.images import display_rgb
from xad.data.transforms import DataError, decode_image_bytes
from xad.models import diffedit as de
from xad.models.detectors import bounding_note
from xad.weights import WEIGHTS_DIR, WeightsError

st.title("Counterfactuals — what would make this anomaly normal?")


@st.cache_resource(show_spinner="Loading generator, detector and feature extractor …", max_entries=6)
def bundle(path: str) -> cfb.Bundle:
    return cfb.load_bundle(path)


@st.cache_data(show_spinner="Loading test anomalies …", max_entries=6)
def gallery(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    return cfe.anomaly_gallery(bundle(path), n)


@st.cache_resource(show_spinner="Loading Stable Diffusion from disk …", max_entries=1)
def sd_pipeline(path: str):  # noqa: ANN201
    return de.load_stable_diffusion(path)


records = cfb.generators()
with st.sidebar:
    st.header("Generator")
    backend = st.radio("Backend", ["GAN", "DiffEdit"], horizontal=True, key="cf_backend",
                       help="GAN: G(x, alpha, k) maps images. DiffEdit: G(x) = A_dec(G'(psi(A_enc(x)), "
                            "alpha, k)), psi = DiffEdit towards the normal class with a latent "
                            "diffusion model (the paper's diffusion version)")
    shown = [r for r in records if r.meta.get("backend", "gan") == backend.lower()]
    folder = weights_picker(shown, "Setup and detector",
                            "cf_generator" if backend == "GAN" else "cf_diffedit_generator", "cegan",
                            lambda r: r.meta.get("detector_kind", "?").upper())
if not folder:
    st.info("Enter a cegan weights folder (config.json + model.safetensors + card.md), or train "
            "one with `python -m xad train cegan …` (add `--diffedit WEIGHTS` for the DiffEdit "
            "version; see the README).")
    st.stop()
try:
    b = bundle(folder)
except (WeightsError, DataError, KeyError) as exc:
    st.error(f"Cannot use this generator: {exc}")
    st.stop()

if b.backend != backend.lower():
    st.warning(f"This folder holds a {b.backend.upper()}-version generator: it is shown as such.")
psi_note = ""
gan = cfb.gan_counterpart(b.record) if b.backend == "diffedit" else None
if b.backend == "diffedit":
    p, ratio = b.record.meta["psi"], cards.latent_gradient_ratio(b.record.meta)
    gan_rec = f"`{gan.name}`: {gan.config['lambda_rec']}" if gan else "image-space L_rec"
    psi_note = (f"  \n**DiffEdit psi:** `{b.ldm_record.name}`, target prompt \"{p['target_prompt']}\" "
                f"(the normal class), source prompt \"{p['source_prompt']}\" (empty = unconditional: an "
                f"anomaly's class is unknown), strength {p['strength']}, {p['steps']} DDIM steps, "
                f"guidance {p['guidance']}, seed {p['seed']}. psi runs once per picked image (the first "
                "view takes a moment); the sliders then run only G' and the decoder. G' compares latents "
                f"in L_rec and L_cyc, weighted lambda_rec {b.generator.config.lambda_rec} (the GAN version "
                f"{gan_rec}" + (f"; the detector's gradient per latent element is ~{ratio} weaker than "
                                "per pixel" if ratio else "") + ").")
st.markdown(f"**Setup:** {b.record.meta.get('setup_description', b.setup)}.  \n"
            f"**Detector:** `{b.detector_record.name}` — {bounding_note(b.detector.config.kind)}  \n"
            f"**Generator ({b.backend.upper()} version):** K = {b.concepts} concepts; trained "
            f"{b.record.meta.get('steps_done')} steps (see its card on the home page).{psi_note}")

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
        image, caption = cfe.prepare(decode_image_bytes(up.getvalue(), up.name)), up.name
    except DataError as exc:
        st.error(str(exc))
        st.stop()
else:
    cols = st.columns(8)
    for i, (img, lab) in enumerate(zip(images, labels)):
        with cols[i % 8]:
            st.image(display_rgb(img, 96), caption=str(lab))
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
    match = st.toggle("Match alpha (xad extension): search G's alpha input until the detector scores the CE "
                      "at alpha", key="cf_match",
                      help="The paper's G(x, alpha, k) takes alpha as given and may miss it (see the calibration "
                           "curve); this bisects G's alpha input per image (13 detector calls).")
    busy = st.spinner("DiffEdit psi for this image (runs once) …") if b.backend == "diffedit" else nullcontext()
    with busy:
        e = cfe.explain(b, image, alpha, match=match)
    given = "" if e.alpha_inputs is None else f", G's alpha input {e.alpha_inputs[k - 1]:.3f}"
    left, right = st.columns([1, 2])
    with left:
        fig = pc.single_figure(e.counterfactuals[k - 1],
                               f"k = {k}, alpha = {alpha:.2f}{given}<br><sup>detector: {e.score:.3f} -> "
                               f"{e.ce_scores[k - 1]:.3f}</sup>")
        st.plotly_chart(fig, key="cf_single")
        figure_downloads(fig, f"counterfactual_k{k}_alpha{alpha:.2f}", key="cf-single")
    with right:
        fig = pc.concepts_figure(e, f"{caption}: every concept at alpha = {alpha:.2f}")
        st.plotly_chart(fig, key="cf_concepts")
        figure_downloads(fig, f"counterfactuals_alpha{alpha:.2f}", key="cf-concepts")
    alphas, seq, reached = cfe.alpha_sequence(b, image, k - 1, match=match)
    strip, curve = st.columns([3, 2])
    with strip:
        fig = pc.alpha_strip_figure(alphas, seq, reached, k - 1)
        st.plotly_chart(fig, key="cf_strip")
        figure_downloads(fig, f"alpha_sequence_k{k}", key="cf-strip")
    with curve:
        rows = (b.record.metrics or {}).get("calibration")
        if rows:
            m = b.record.metrics
            matched = m.get("calibration_matched") if match else None
            fig = pc.calibration_figure(rows, alpha, f"Calibration on {m.get('n_anomalies')} test anomalies: "
                                                     f"target error {m['target_error']:.3f}"
                                        + ("" if not matched else f" (matched: {m['target_error_matched']:.3f})"),
                                        matched)
            st.plotly_chart(fig, key="cf_calibration")
            figure_downloads(fig, "calibration", key="cf-calibration")
        else:
            st.info("No calibration curve stored for this generator: run "
                    f"`python -m xad evaluate cegan --weights {b.record.path}`.")
    if e.edit is not None:
        fig = pc.diffedit_figure(e)
        st.plotly_chart(fig, key="cf_diffedit")
        figure_downloads(fig, "diffedit_psi", key="cf-diffedit")
        st.caption("The plain DiffEdit edit psi(x) moves the image towards the normal class's prompt "
                   "but knows nothing of the detector; G' starts from it and is trained so that the "
                   "detector gives the target score alpha.")


live(image, caption)

if b.backend == "diffedit":
    with st.expander("DiffEdit with your Stable Diffusion weights (a diffusers folder on disk)"):
        st.caption("The paper's high-resolution setting: the same DiffEdit code with a local "
                   "diffusers-format Stable Diffusion folder (nothing is downloaded). The image is "
                   "scaled to the model's own size (512 px for SD 1.x); the detector scores the "
                   "edit scaled back to 32 px. On CPU a full-size model takes minutes per image.")
        sd_path = own_folder(st.text_input("Stable Diffusion folder", key="cf_sd_path"), "model folder")
        c1, c2 = st.columns(2)
        sd_source = c1.text_input("Source prompt (what the image shows; empty = anything)", "",
                                  key="cf_sd_source")
        sd_target = c2.text_input("Target prompt (the normal class)",
                                  b.record.meta["psi"]["target_prompt"], key="cf_sd_target")
        sd_steps = st.slider("DDIM steps", 4, 50, 20, key="cf_sd_steps")
        if st.button("Run DiffEdit with this model", key="cf_sd_run", disabled=not sd_path):
            try:
                pipe = sd_pipeline(sd_path)
            except WeightsError as exc:
                st.error(f"Cannot use this folder: {exc}")
            else:
                if pipe.device.type != "cuda":
                    st.warning("No CUDA GPU here: Stable Diffusion runs on the CPU (slow).")
                with st.status("DiffEdit: mask, inversion, masked denoising …") as status:
                    r = stable_diffusion_edit(b, pipe, image, sd_source, sd_target, steps=sd_steps)
                    status.update(label=f"DiffEdit done in {r['seconds']} s", state="complete")
                fig = pc.sd_edit_figure(r["image"], r["mask"], r["edited"],
                                        f"Stable Diffusion DiffEdit: \"{sd_source}\" -> \"{sd_target}\"; "
                                        f"detector {r['score']:.3f} -> {r['edit_score']:.3f}")
                st.plotly_chart(fig, key="cf_sd_fig")
                figure_downloads(fig, "stable_diffusion_diffedit", key="cf-sd")

st.header("3 · How good are these counterfactuals? (test set, alpha = 0)")
metrics = b.record.metrics
if not metrics:
    st.info("This generator has no measured metrics yet: run "
            f"`python -m xad evaluate cegan --weights {folder}`.")
else:
    table = pd.DataFrame(cards.metrics_table(metrics, b.setup, b.detector.config.kind))
    table["this model"] = table["this model"].astype(str)
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"On {metrics.get('n_anomalies')} test anomalies and {metrics.get('n_normal')} normal "
               "test images; the paper's numbers are Tables 1 and 2 of Liznerski et al. FID_N uses "
               f"xad's feature extractor `{metrics.get('feature_extractor')}` (a classifier trained on "
               "the dataset's labels), not Inception: compare FID_N only between xad runs. "
               "\"Judged normal\": the share of images that this same classifier, independent of the "
               "detector, puts in a normal class (a proxy for whether a person sees a normal image).")
    notes = cards.notes(b.record)
    if notes:  # the first note is the model's headline limitation; the rest is detail from its card
        st.warning(notes[0])
    if len(notes) > 1:
        with st.expander("More about this model (what was tried, from its card)"):
            for note in notes[1:]:
                st.markdown(note)
    table_download(table, f"{b.record.path.name}_metrics", key="cf-metrics-csv")
    if metrics.get("route_shares_ce"):
        st.subheader("Concept routes: which way of being normal each concept takes (alpha = 0)")
        routes = pd.DataFrame(cards_cegan.route_table(metrics))
        st.dataframe(routes, hide_index=True, width="stretch")
        st.caption("Share (%) of each concept's counterfactuals that the independent classifier judges "
                   "normal by each route (exclusive cells). The paper's picture: one concept recolours "
                   "(\"red only\"), the other turns the anomaly into a one (\"digit 1 only\").")
        table_download(routes, f"{b.record.path.name}_routes", key="cf-routes-csv")
    if b.setup.startswith("mnist:") and b.backend != "diffedit":
        means, per_class = suite.summary(WEIGHTS_DIR)
        st.subheader("All ten MNIST classes, as the paper's Tables 1 and 2 average them")
        if means:
            st.dataframe(pd.DataFrame(means), hide_index=True, width="stretch")
            st.caption("Mean ± std over the shipped one-vs-rest generators (`weights/cegan/mnist-<d>-<kind>`), "
                       "each measured at alpha = 0 on its own test split; the paper's numbers are its means.")
            with st.expander("Per class"):
                st.dataframe(pd.DataFrame(per_class), hide_index=True, width="stretch")
        missing = 20 - len(per_class)
        if missing:
            st.info(f"{missing} of the 20 generators (10 digits x BCE, HSC) are not trained yet: "
                    "`python -m xad train cegan-suite --setup mnist --detectors bce,hsc` trains them, two at "
                    "a time in the background, skipping those that exist.")
    if b.setup.startswith("cmnist:") and b.backend != "diffedit":
        st.subheader("Classification bias (the paper's Fig. 10): a supervised classifier vs the OE detectors")
        bias = pd.DataFrame(suite.bias_table(WEIGHTS_DIR))
        if not bias.empty:
            st.dataframe(bias, hide_index=True, width="stretch")
        st.caption("A classifier trained on normal images vs only the blue anomalies, beside the detectors "
                   "trained with outlier exposure; the paper finds the supervised one blind to the green "
                   f"anomalies (75 % vs 98 %). Train it with `{suite.BIAS_COMMAND}`; a generator against it "
                   "(`python -m xad train cegan --detector <that folder> ...`) shows what it looks at.")
    if gan is not None and (found := suite.gan_vs_diffedit(b.record, metrics)) is not None:
        rows, same = found  # the GAN measured on as many test anomalies as the DiffEdit version, where stored
        st.subheader("GAN version vs DiffEdit version (same setup, same detector"
                     + (f", the same {metrics.get('n_anomalies')} test anomalies)" if same
                        else "; n differs, see the first row)"))
        both = pd.DataFrame(rows)
        st.dataframe(both.astype(str), hide_index=True, width="stretch")
        table_download(both, f"{b.record.path.name}_gan_vs_diffedit", key="cf-both-csv")
