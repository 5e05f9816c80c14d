"""Latent-diffusion multi-class detection (Wang & Tavakkoli): which timestep t separates normal from
anomalous, and how do reconstructions drift as t grows? Pick a setting, slide t, read the curves."""

import streamlit as st

from pages.common import figure_downloads, table_download, weights_picker
from xad import ldm, ldm_report
from xad.data.multiclass import MultiClassData, load_setting
from xad.data.transforms import DataError
from xad.plots import ldm as pl
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


#: A Fig. 3 grid of at most this many denoising steps per image is computed on opening (DDIM: ~150).
GRID_AT_ONCE = 500
records = ldm.models()
with st.sidebar:
    st.header("Setting")
    folder = weights_picker(records, "Trained model", "ldm_model", "ldm",
                            lambda r: f"{r.meta.get('setting')}, {ldm_report.pairs_label(r)}")
    sampler = st.radio("Reverse process", ["ddpm", "ddim"], key="ldm_sampler", horizontal=True,
                       format_func=lambda s: {"ddim": "DDIM (50-step schedule, fast)",
                                              "ddpm": "DDPM (every step, the paper's Eq. 9)"}[s],
                       help="The classifier's training pairs were made with DDPM: with DDIM it scores "
                            "reconstructions made another way than its training pairs.")
    seed = int(st.number_input("Seed (which samples, which noise)", 0, 10_000, 0, key="ldm_seed"))
if not folder:
    st.info("Enter an ldm weights folder (config.json + model.safetensors + card.md), or train one "
            "with `python -m xad train ldm --setting mnist-anomalous:0 --out weights/ldm/mine`.")
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
            f"on (input, reconstruction), trained on {ldm_report.pairs_label(record)}. Anomaly score = the "
            "classifier's logit of \"different class\".  \n"
            f"The reconstruction noises the latent ({'unscaled, as the paper' if c.latent_scale == 1 else f'scaled by {c.latent_scale:.2f}'}) "
            "to t with one seeded draw and denoises back to 0 by DDPM ancestral sampling; DDIM starts at the "
            "largest timestep of its 50-step schedule ≤ t.")


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
    right.metric("classifier logit of \"different\"", f"{v.scores[i]:+.2f}")
    if v.predicted is not None:
        right.metric("digit classifier reads the reconstruction as", str(v.predicted[i]))
    right.metric("latent error mean |z0 − ẑ0|", f"{v.latent_errors[i]:.3f}")

    st.subheader("AUROC and class drift as functions of t")
    params = ldm.sweep_params(sampler, seed=seed)
    table = ldm.find_sweep(folder, data, params)
    if table is None:
        st.info(f"No stored sweep for {sampler.upper()} with seed {seed}: computing one reconstructs up to "
                f"{2 * params['limit']} test images at {len(ldm.sweep_ts(model, params['step']))} timesteps.")
        if not st.button("Compute the AUROC/drift-vs-t sweep", key="ldm_sweep_button"):
            return
        bar = st.progress(0.0, text="AUROC vs t")
        table = ldm.cached_sweep(folder, data, params, model,
                                 progress=lambda i, n: bar.progress(i / n, text=f"AUROC vs t: {i}/{n} timesteps"))
        bar.empty()
    note = f"{sampler.upper()}, up to {params['limit']} normal + {params['limit']} anomalous test images; seed {seed}"
    left, right = st.columns(2)
    with left:
        fig = pl.auroc_curve_figure(table, t, f"AUROC vs t ({note})")
        st.plotly_chart(fig, key="ldm_curve")
        figure_downloads(fig, f"{record.path.name}_auroc_vs_t_{sampler}", key="ldm-curve")
    with right:
        if "drift_normal" in table and table["drift_normal"].notna().any():
            fig = pl.drift_curve_figure(table, t, "Class drift vs t (digit classifier weights/features/mnist-cpu)")
            st.plotly_chart(fig, key="ldm_drift")
            figure_downloads(fig, f"{record.path.name}_drift_vs_t_{sampler}", key="ldm-drift")
        else:
            st.info("No digit classifier for this data: class drift is measured on MNIST only.")
    table_download(table, f"{record.path.name}_auroc_drift_vs_t_{sampler}", key="ldm-curve-csv")


live()



@st.fragment
def fig3() -> None:
    """The Fig. 3 grid: read from the cache, computed at once when cheap, else on a click."""
    st.header("2 · Reconstructions across timesteps (the paper's Fig. 3)")
    found = ldm.find_grid(folder, data, sampler, 4, seed)
    if found is None:
        cost = ldm.grid_cost(model, sampler)
        if cost > GRID_AT_ONCE:
            st.info(f"No stored grid for {sampler.upper()} with seed {seed}: computing one denoises 8 test images "
                    f"{cost} steps each ({len(ldm.sweep_ts(model))} timesteps; DDIM takes "
                    f"{ldm.grid_cost(model, 'ddim')}). It is kept for the next visit.")
            if not st.button("Compute the Fig. 3 grid", key="ldm_grid_button"):
                return
        bar = st.progress(0.0, text="Fig. 3 grid")
        found = ldm.cached_grid(folder, data, sampler, 4, seed, model=model,
                                progress=lambda i, n: bar.progress(i / n, text=f"Fig. 3 grid: {i}/{n} timesteps"))
        bar.empty()
    v0, g = found
    fig = pl.timestep_grid_figure(v0.images, v0.labels, v0.anomalous, g, ldm.sweep_ts(model))
    st.plotly_chart(fig, key="ldm_grid")
    figure_downloads(fig, f"{record.path.name}_timestep_grid_{sampler}", key="ldm-grid")


fig3()

st.header("3 · The method against the baselines and the ink control")
if not record.metrics.get("auroc_method"):
    st.info(f"This model has no measured metrics yet: run `python -m xad evaluate ldm --weights {folder}`.")
else:
    table = ldm_report.auroc_table(record.metrics, ldm_report.anomalous_digit(record), ldm_report.extension(record))
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(ldm_report.verdict(record.metrics) + " The ink control (sum of pixels, no model) shows when a "
               "score only counts ink. " + ldm_report.PAPER_NOTE)
    if why := ldm_report.diagnosis(record.metrics):
        st.markdown("**Why:** " + why)
    table_download(table, f"{record.path.name}_auroc_table", key="ldm-table-csv")

st.header("4 · Table 1: every shipped digit, ours beside the paper's")
t1 = ldm_report.table1(records)
if len(t1):
    st.dataframe(t1, hide_index=True, width="stretch")
    ts = " or ".join(str(v) for v in sorted({r.metrics["t"] for r in records if r.metrics.get("t") is not None}))
    st.caption(f"AUROC % (ours: DDPM, t = {ts}, the shipped cards; regenerate with `python -m xad evaluate ldm "
               "--table`). class-change ref: what a same-class decision could reach from these reconstructions "
               "(an independent digit classifier; not a detector). " + ldm_report.PAPER_NOTE)
    table_download(t1, "ldm_table1", key="ldm-table1-csv")
else:
    st.info("No shipped MNIST latent-diffusion model has measured metrics yet.")
