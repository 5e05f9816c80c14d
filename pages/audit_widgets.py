"""Controls and panels of the VAE-GAN audit page. UI only: every number comes from xad.audit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import streamlit as st

from pages.audit_detector import DETECTOR_FILE, pick_detector, record_for
from pages.common import datasets, figure_downloads
from xad import audit, audit_live, resolve, runs
from xad.access import confine
from xad.plots import audit as plots_audit
from xad.data import catalog
from xad.data.mvtec import MVTecDataset
from xad.data.transforms import DataError, decode_image_bytes
from xad.detectors import ExternalDetector
from xad.weights import WeightsError, list_models


@st.cache_resource(show_spinner="Loading model …", max_entries=8)
def load_model(path: str, expect: str):  # noqa: ANN201 - (model, record)
    from xad.weights import load_model as load

    return load(path, expect=expect)


def input_size(model) -> int:  # noqa: ANN001 - a VAE-GAN or an ExternalDetector
    return model.size if isinstance(model, ExternalDetector) else model.config.image_size


def confine_typed(typed: str, what: str) -> str:
    """A typed folder inside the allowed roots, or a DataError (the page shows it as one line)."""
    return str(confine(typed, what)) if typed.strip() else ""


def _index(options: list, wanted) -> int:  # noqa: ANN001
    return options.index(wanted) if wanted in options else 0


def _best_category(models: list, cats: list[str]) -> str | None:
    """The category whose shipped VAE-GAN ships an audit and has the highest measured test AUROC (a
    newcomer sees real results at once, on the detector most worth auditing); then the best AUROC
    without an audit; else the first category with any model, else the first."""
    measured = [(any(Path(m.path, "audits").glob("*/run.json")), m.metrics.get("test_auroc") or 0.0,
                 m.meta.get("category")) for m in models if m.meta.get("category") in cats]
    if measured:
        return max(measured, key=lambda t: t[:2])[2]
    return cats[0] if cats else None


def _pick_data_and_weights() -> tuple[MVTecDataset, str]:
    found = [d for d in datasets()[0] if d.kind == "mvtec"]
    info = st.selectbox("Dataset", found, format_func=lambda d: d.name, key="audit_dataset")
    models = [m for m in list_models()[0] if m.cls == "VAEGAN"]
    cats = catalog.open_collection(info).categories()
    first = _best_category(models, cats)
    category = st.selectbox("Category", cats, index=_index(cats, first), key="audit_category")
    names = [m.name for m in models] + ["Your weights folder …", DETECTOR_FILE]
    match = next((m.name for m in models if m.meta.get("category") == category), names[0])
    choice = st.selectbox("Detector", names, index=_index(names, match), key="audit_weights",
                          help="A shipped VAE-GAN, your own VAE-GAN weights folder, or any detector exported to "
                               "ONNX / OpenVINO IR (anomalib's export: outputs pred_score and anomaly_map)")
    if choice == DETECTOR_FILE:
        return MVTecDataset(info.path, category), pick_detector()
    path = (confine_typed(st.text_input("Weights folder", key="audit_weights_path"), "weights folder")
            if choice == names[-2] else str(next(m.path for m in models if m.name == choice)))
    if not path:
        raise DataError("Enter a weights folder (config.json + model.safetensors + card.md).")
    return MVTecDataset(info.path, category), path


def _pick_params() -> audit.AuditParams:
    setups = st.multiselect("Setups", audit.SETUPS, default=list(audit.SETUPS), key="audit_setups",
                            help="S1: LIME on quickshift superpixels; S2: LIME on segments that see "
                                 "the ground truth; S3: SHAP partition explainer")
    k = st.slider("Superpixels k (LIME)", 20, 200, 100, 10, key="audit_k")
    n = st.select_slider("Samples n (LIME) / evaluations (SHAP)", [200, 500, 1000, 2000, 5000],
                         value=5000, key="audit_n",
                         help="The paper's 5000 is the default; 1000 is about 5x faster (the shipped "
                              "audits were made at 1000, before the Lab segmentation).")
    seed = int(st.number_input("Seed", 0, 2 ** 31 - 1, 1234, key="audit_seed"))
    variant = st.radio("Explained function", ["sse", "max_channel"], key="audit_variant",
                       format_func={"sse": "sum of squared errors (reference)",
                                    "max_channel": "sum of channel-max errors (paper's figures)"}.get)
    calibration = st.radio("Fit tau* on", ["test", "heldout"], key="audit_calibration",
                           format_func={"test": "the test labels (paper)",
                                        "heldout": "a held-out half (honest)"}.get)
    limit = int(st.number_input("Quick look: first N test samples (0 = all)", 0, 10_000, 0,
                                key="audit_limit"))
    if not setups:
        raise DataError("Pick at least one setup.")
    return audit.AuditParams(setups=tuple(setups), segments=k, samples=n, seed=seed,
                             error_variant=variant, calibration=calibration, limit=limit or None)


def _from_run_folder(folder: str) -> tuple[MVTecDataset, str, audit.AuditParams, Path]:
    """A run made by ``python -m xad audit``: its data, weights and parameters."""
    try:
        info = json.loads((Path(folder) / "run.json").read_text())
        p = dict(info["params"], setups=tuple(info["params"]["setups"]))
        return (MVTecDataset(resolve(info["data"]).parent, info["category"]), str(resolve(info["weights"])),
                audit.AuditParams(**p), Path(folder))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{folder}: not an audit run folder (needs run.json, results.csv, "
                        f"maps.npz): {exc}") from exc


def controls():  # noqa: ANN201 - (dataset, model, record, params, run folder or None)
    """The sidebar: data, weights and explanation settings, or a finished run folder."""
    with st.sidebar:
        st.header("Data and model")
        run_folder = st.text_input("Open a run folder (from `python -m xad audit`)",
                                   key="audit_run_folder").strip()
        if run_folder:
            ds, path, params, run = _from_run_folder(confine_typed(run_folder, "run folder"))
            st.caption(f"Showing {run}: its data, weights and parameters.")
        else:
            ds, path = _pick_data_and_weights()
            st.header("Explanations")
            params, run = _pick_params(), None
    if isinstance(path, ExternalDetector):
        return ds, path, record_for(path), params, run
    try:
        model, record = load_model(path, "VAEGAN")
    except WeightsError as exc:
        raise DataError(str(exc)) from exc
    if record.meta.get("category") not in (None, ds.category):
        st.warning(f"{record.name} was trained on '{record.meta['category']}', not '{ds.category}'.")
    if run is None:  # images are made square the way the model's training made them; bf16 where
        # the CPU computes it natively and the card does not record that it changes the explanations
        params = replace(params, resize=record.meta.get("resize", "stretch"), bf16=audit.default_bf16(record.meta))
    return ds, model, record, params, run


@st.fragment
def live_panel(ds: MVTecDataset, model, sample_id: str, params: audit.AuditParams) -> None:  # noqa: ANN001
    """Re-explain one sample with other k, n, seed and setups; only this panel reruns. The panel
    starts from the audit's parameters, and starts from them again whenever they change."""
    base = (tuple(params.setups), params.segments, params.samples, params.seed)
    if st.session_state.get("live_base") != base:
        st.session_state["live_base"] = base
        st.session_state["live_setups"] = list(params.setups)
        st.session_state["live_k"] = min(200, max(20, params.segments))
        st.session_state["live_n"] = min([100, 200, 500, 1000, 2000, 5000], key=lambda v: abs(v - params.samples))
        st.session_state["live_seed"] = params.seed
    with st.form("audit_live"):
        c1, c2, c3, c4 = st.columns(4)
        setups = c1.multiselect("Setups", audit.SETUPS, key="live_setups")
        k = c2.slider("k", 20, 200, step=10, key="live_k")
        n = c3.select_slider("n", [100, 200, 500, 1000, 2000, 5000], key="live_n")
        seed = int(c4.number_input("Seed", 0, 2 ** 31 - 1, key="live_seed"))
        go = st.form_submit_button("Re-run this sample live", type="primary")
    if not go or not setups:
        return
    live = audit.AuditParams(setups=tuple(setups), segments=k, samples=n, seed=seed,
                             error_variant=params.error_variant, map_mode=params.map_mode,
                             resample=params.resample, bf16=params.bf16)
    sample = ds.load(next(r for r in ds.refs("test") if r.id == sample_id), model.config.image_size,
                     params.resample)
    bar = st.progress(0.0, text="Explaining …")
    order = {s: i for i, s in enumerate(setups)}
    res, x_rec, amap = audit_live.explain_one(model, sample, live, progress=lambda s, f: bar.progress(
        min(1.0, (order[s] + f) / len(setups)), text=f"{s}: {100 * f:.0f} %"))
    bar.empty()
    fig = plots_audit.sample_row(sample.image, x_rec, amap, {s: r["map"] for s, r in res.items()},
                                 sample.mask, title=f"{sample_id} · live: k = {k}, n = {n}, seed {seed}")
    st.plotly_chart(fig, key="audit_live_row")
    st.caption(" · ".join(f"{s}: J* " + ("NA" if r["iou"] is None else f"{r['iou']:.3f}")
                          + f" in {r['seconds']:.1f} s" for s, r in res.items()))
    figure_downloads(fig, f"{sample_id.replace('/', '_')}_live", key="audit-live")


def sample_panel(ds: MVTecDataset, model, run: runs.AuditRun, sample_id: str,  # noqa: ANN001
                 setups: tuple[str, ...], resample: str, amap_max: float | None = None) -> None:
    i = run.index(sample_id)
    sample = ds.load(next(r for r in ds.refs("test") if r.id == sample_id), input_size(model), resample,
                     run.info.get("params", {}).get("resize", "stretch"))
    r = run.results.iloc[i]
    fig = plots_audit.sample_row(sample.image, run.maps["reconstruction"][i],
                                 run.maps["anomaly_map"][i].astype(np.float32),
                                 {s: run.maps[s][i] for s in setups}, sample.mask,
                                 title=f"{sample_id} · alpha {r['score']:.3f} (tau* {r['tau']:.3f}) · "
                                       f"predicted {r['predicted']}", amap_max=amap_max)
    st.plotly_chart(fig, key="audit_row")
    figure_downloads(fig, sample_id.replace("/", "_"), key="audit-row")


def upload_panel(model, params: audit.AuditParams, tau: float) -> None:  # noqa: ANN001
    """Score and explain an image of the user's (S1 and S3; no ground truth, so no IoU)."""
    up = st.file_uploader("An image (PNG, JPEG, TIFF, …; grayscale, RGBA and 16-bit are converted)",
                          key="audit_upload")
    if up is None:
        return
    try:
        image = decode_image_bytes(up.getvalue(), up.name)
    except DataError as exc:
        st.error(str(exc))
        return
    if not st.button("Score and explain this image", key="audit_upload_go", type="primary"):
        st.image(image, caption=f"{up.name}: {image.shape[1]}x{image.shape[0]} px", width=256)
        return
    bar = st.progress(0.0, text="Explaining …")
    out = audit_live.explain_image(model, image, params, tau, up.name,
                              progress=lambda s, f: bar.progress(min(1.0, f), text=f"{s}: {100 * f:.0f} %"))
    bar.empty()
    st.markdown(f"**alpha = {out['score']:.3f}** against tau* = {tau:.3f}: the detector calls it "
                f"**{out['verdict']}**. No ground-truth mask, so no IoU; S2 needs one and is skipped.")
    fig = plots_audit.sample_row(out["sample"].image, out["reconstruction"], out["anomaly_map"],
                                 {s: r["map"] for s, r in out["results"].items()}, None,
                                 title=f"{up.name} · alpha {out['score']:.3f} · {out['verdict']}")
    st.plotly_chart(fig, key="audit_upload_row")
    figure_downloads(fig, f"upload_{up.name.rsplit('.', 1)[0]}", key="audit-upload")
