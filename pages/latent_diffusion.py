"""Latent-diffusion multi-class detection (Wang & Tavakkoli): which timestep t separates normal from
anomalous, and how do reconstructions drift as t grows? Pick a setting, slide t, read the curves."""

import streamlit as st

from pages.common import figure_downloads, table_download, weights_picker
from xad import ldm
from xad.plots import ldm as pl
from xad.data.transforms import DataError
from xad.train.ldm import MultiClassData, load_setting
from xad.weights import WeightsError

st.title("Latent diffusion — which timestep separates normal from anomalous?")


@st.cache_resource(show_spinner="Loading the latent-diffusion model …", max_entries=4)
def model_for(path: str):  # noqa: ANN201
    return ldm.load(path)


@st.cache_resource(show_spinner="Loading the test split …", max_entries=4)
def data_for(setting: str) -> MultiClassData:
    return load_setting(setting)


@st.cache_data(show_spinner="Reconstructing …", max_entries=64)
def view(path: str, t: int, sampler: str, n: int, seed: int) -> ldm.SampleView:
    model, record = model_for(path)
    return ldm.sample_view(model, data_for(record.meta["setting"]), t, sampler, n=n, seed=seed)


@st.cache_data(show_spinner="Reconstructing at every timestep …", max_entries=8)
def grid(path: str, sampler: str, n: int, seed: int):  # noqa: ANN201
    v = view(path, 0, sampler, n, seed)
    return v, ldm.timestep_grid(model_for(path)[0], v.images, None, sampler, seed=seed)


records = ldm.models()
with st.sidebar:
    st.header("Setting")
    folder = weights_picker(records, "Trained model", "ldm_model", "ldm", lambda r: r.meta.get("setting"))
    sampler = st.radio("Reverse process", ["ddim", "ddpm"], key="ldm_sampler", horizontal=True,
                       format_func=lambda s: {"ddim": "DDIM (50-step schedule, fast)",
                                              "ddpm": "DDPM (every step, the paper's)"}[s])
    seed = int(st.number_input("Seed (which samples, which noise)", 0, 10_000, 0, key="ldm_seed"))
if not folder:
    st.info("Enter an ldm weights folder (config.json + model.safetensors + card.md), or train one "
            "with `python -m xad train ldm --setting mnist:0 --out weights/ldm/mine`.")
    st.stop()
try:
    model, record = model_for(folder)
    data = data_for(record.meta["setting"])
except (WeightsError, DataError, KeyError) as exc:
    st.error(f"Cannot use this model: {exc}")
    st.stop()

c = model.config
st.markdown(f"**Setting:** {record.meta.get('setting_description', record.meta.get('setting'))}.  \n"
            f"**Model:** VQ autoencoder {'/'.join(map(str, c.vq_channels))} → latent DDPM UNet "
            f"{'/'.join(map(str, c.unet_channels))} (T = {c.timesteps}) → ResNet-18 same-class classifier "
            f"on (input, reconstruction). Anomaly score = the classifier's P(different class).  \n"
            "The reconstruction noises the latent to t with one seeded draw and denoises back to 0; DDIM "
            "starts at the largest timestep of its 50-step schedule that is ≤ t (multiples of 20).")


@st.fragment
def live() -> None:
    """The timestep slider and its reconstructions; only this panel reruns when it moves."""
    st.header("1 · Slide the timestep")
    top = ldm.sweep_ts(model)[-1]
    t = st.slider("Timestep t", 0, top, min(c.t_default, top), 10 if top >= 100 else 1, key="ldm_t",
                  help="How far the latent is noised before it is denoised back. The paper uses t = 200.")
    v = view(folder, t, sampler, 4, seed)
    fig = pl.reconstructions_figure(v)
    st.plotly_chart(fig, key="ldm_recs")
    figure_downloads(fig, f"{record.path.name}_reconstructions_t{t}_{sampler}", key="ldm-recs")

    st.subheader("One sample")
    labels = [f"{'anomalous' if a else 'normal'} {i + 1} (class {lab})"
              for i, (lab, a) in enumerate(zip(v.labels, v.anomalous))]
    i = st.radio("Sample", range(len(labels)), format_func=lambda j: labels[j], horizontal=True,
                 key="ldm_sample")
    fig = pl.sample_figure(v.images[i], v.reconstructions[i], f"{labels[i]} from t = {t}")
    left, right = st.columns([3, 1])
    with left:
        st.plotly_chart(fig, key="ldm_sample_fig")
        figure_downloads(fig, f"{record.path.name}_sample{i + 1}_t{t}", key="ldm-sample")
    right.metric("classifier P(different class)", f"{v.scores[i]:.3f}")
    right.metric("latent error mean |z0 − ẑ0|", f"{v.latent_errors[i]:.3f}")
    right.metric("pixel MSE", f"{v.errors[i]:.4f}")

    st.subheader("AUROC as a function of t")
    table = ldm.find_sweep(folder, data, sampler, 50, 500, seed)
    if table is None:
        st.info(f"No stored sweep for {sampler.upper()} with seed {seed}: computing one reconstructs up to "
                f"1000 test images at {len(ldm.sweep_ts(model))} timesteps"
                + (" (DDPM: several minutes on CPU)." if sampler == "ddpm" else "."))
        if not st.button("Compute the AUROC-vs-t sweep", key="ldm_sweep_button"):
            return
        bar = st.progress(0.0, text="AUROC vs t")
        table = ldm.cached_sweep(folder, data, sampler, 50, 500, seed, model,
                                 progress=lambda i, n: bar.progress(i / n, text=f"AUROC vs t: {i}/{n} timesteps"))
        bar.empty()
    fig = pl.auroc_curve_figure(table, t, f"AUROC vs t ({sampler.upper()}, up to 500 normal + 500 "
                                "anomalous test images; seed " + str(seed) + ")")
    st.plotly_chart(fig, key="ldm_curve")
    figure_downloads(fig, f"{record.path.name}_auroc_vs_t_{sampler}", key="ldm-curve")
    table_download(table, f"{record.path.name}_auroc_vs_t_{sampler}", key="ldm-curve-csv")


live()

st.header("2 · Reconstructions across timesteps (the paper's Fig. 3)")
v0, g = grid(folder, sampler, 4, seed)
fig = pl.timestep_grid_figure(v0.images, v0.labels, v0.anomalous, g, ldm.sweep_ts(model))
st.plotly_chart(fig, key="ldm_grid")
figure_downloads(fig, f"{record.path.name}_timestep_grid_{sampler}", key="ldm-grid")

st.header("3 · The method against the baselines")
if not record.metrics:
    st.info(f"This model has no measured metrics yet: run `python -m xad evaluate ldm --weights {folder}`.")
else:
    table = ldm.auroc_table(record.metrics)
    st.dataframe(table, hide_index=True, width="stretch")
    digit = record.meta.get("setting", "").partition(":")[2]
    paper = ldm.PAPER_MNIST.get(int(digit)) if digit.isdigit() else None
    st.caption(f"At t = {record.metrics.get('ddim', {}).get('t', c.t_default)} on the test split (see the "
               "model's card). " + (f"The paper reports {paper:.1f} % for its method on this digit "
                                    "(MNIST Table 1)." if paper else ""))
    table_download(table, f"{record.path.name}_auroc_table", key="ldm-table-csv")
