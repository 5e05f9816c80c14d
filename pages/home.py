"""Home: what xad is, the datasets found and the trained models with their cards."""

import pandas as pd
import streamlit as st

from pages.common import add_folder_form, datasets, own_folder
from xad.data import catalog
from xad.data.transforms import DataError
from xad.plots.training import learning_curve_figure
from xad.weights import WeightsError, list_models, read_record

st.title("xad — is the detector right for the right reason?")
st.markdown(
    "xad audits image anomaly detectors: is an image flagged, and is it flagged **for the right "
    "reason**? The **VAE-GAN audit** reproduces Rashid et al.: a VAE-GAN detector, its anomaly "
    "maps and threshold tau*, LIME and SHAP explanations in the paper's three setups, and the "
    "optimal-threshold IoU of each explanation with the true defect (the paper's Fig. 2; click a "
    "point to see the sample). The **counterfactual explorer** (Liznerski et al.) shows what would "
    "have to change for a detector to call an anomaly normal: slide the target score alpha and the "
    "concept k and see the image change, with the paper's metrics for each shipped generator. The "
    "**latent-diffusion page** (Wang & Tavakkoli) shows which diffusion timestep t separates normal "
    "from anomalous digits: slide t, see the reconstructions drift, read AUROC as a function of t "
    "against the baselines. The **dataset browser** shows the data with its defect masks."
)

st.header("Datasets")
found, problems = datasets()
rows = []
for info in found:
    try:
        n = int(catalog.open_collection(info).summary()["count"].sum())
    except DataError as exc:
        problems.append(str(exc))
        n = None
    rows.append({"dataset": info.name, "kind": info.kind, "samples": n,
                 "source": "embedded" if info.embedded else "your folder",
                 "licence": info.licence, "path": str(info.path)})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
for p in problems:
    st.warning(p)
st.caption("More folders: set `XAD_DATA=/path/a:/path/b` before starting, or add one here.")
add_folder_form("home-add-folder")

st.header("Trained models")
models, model_problems = list_models()
if models:
    st.dataframe(pd.DataFrame([{"model": m.name, "architecture": m.cls, "preset": m.preset,
                                **{k: v for k, v in m.metrics.items() if not isinstance(v, dict)}}
                               for m in models]), hide_index=True, width="stretch")
    for m in models:
        with st.expander(f"Card: {m.name}"):
            st.markdown(m.card or "_This model has no card._")
            if m.cls == "VAEGAN" and m.meta.get("learning_curve"):
                st.plotly_chart(learning_curve_figure(m.meta["learning_curve"], m.meta.get("kept_step")),
                                key=f"curve-{m.name}")
else:
    st.info("No trained models in `weights/` yet. Train one with `python -m xad train …` "
            "(see the README) or open your own weights folder below.")
for p in model_problems:
    st.warning(p)
path = own_folder(st.text_input("Open a weights folder (config.json + model.safetensors + card.md)"),
                  "weights folder")
if path:
    try:
        record = read_record(path)
        st.success(f"{record.cls} ({record.preset}) — {record.path}")
        st.markdown(record.card or "_No card._")
        if record.cls == "VAEGAN" and record.meta.get("learning_curve"):
            curve = record.meta["learning_curve"]
            st.plotly_chart(learning_curve_figure(curve, record.meta.get("kept_step")),
                            key="curve-own-folder")
    except WeightsError as exc:
        st.error(str(exc))
