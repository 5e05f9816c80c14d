"""Every page under Streamlit's AppTest: renders without exception, main widgets move."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT = 120


def _run(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_dashboard_opens_home() -> None:
    at = _run("dashboard.py")
    assert "right for the right reason" in at.title[0].value


def test_home_lists_embedded_data_and_adds_a_folder(tiny_mvtec: Path) -> None:
    at = _run("pages/home.py")
    table = at.dataframe[0].value
    assert {"xad industrial (synthetic, MVTec layout)", "MNIST (complete)"} <= set(table["dataset"])
    at.text_input[0].input(str(tiny_mvtec))
    at.button[0].click().run()
    assert not at.exception and any("Added" in s.value for s in at.success)
    assert "MVTec layout (mvtec)" in set(at.dataframe[0].value["dataset"])  # listed at once
    at.text_input[0].input(str(tiny_mvtec / "nowhere"))
    at.button[0].click().run()
    assert any("nowhere: no such file or folder" in e.value for e in at.error)
    at.text_input[1].input(str(tiny_mvtec)).run()  # not a weights folder: a clear message
    assert any("no config.json" in e.value for e in at.error)


def test_browser_moves_every_control() -> None:
    at = _run("pages/dataset_browser.py")
    from xad.data.synthetic import CATEGORIES

    assert at.selectbox(key="browser_category").options == sorted(CATEGORIES)  # every generated category
    at.selectbox(key="browser_category").set_value("hexnut").run()
    at.selectbox(key="browser_group").set_value("scratch").run()
    view = [b for b in at.button if b.label == "View"]
    assert len(view) == 10
    at.button(key="view-hexnut/test/scratch/003").click().run()
    assert at.session_state["browser_selected"] == "hexnut/test/scratch/003"
    at.selectbox(key="browser_split").set_value("train").run()
    at.number_input(key="browser_page").set_value(3).run()
    assert not at.exception
    for dataset in at.selectbox(key="browser_dataset").options[1:]:
        at.selectbox(key="browser_dataset").set_value(dataset).run()
        assert not at.exception and not at.error, dataset


def test_browser_shows_a_clear_message_for_a_broken_folder(tiny_mvtec: Path) -> None:
    (tiny_mvtec / "part" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    at = AppTest.from_file(str(ROOT / "pages/dataset_browser.py"), default_timeout=TIMEOUT)
    at.session_state["extra_data_roots"] = [str(tiny_mvtec)]
    at.run()
    names = at.selectbox(key="browser_dataset").options
    at.selectbox(key="browser_dataset").set_value(names[-1]).run()
    assert not at.exception
    assert any("000.png: defect image without a mask" in e.value for e in at.error)


def test_vaegan_audit_page_opens_on_the_best_shipped_detector() -> None:
    best = _default_vaegan()  # a shipped audit first, then the best test AUROC
    at = AppTest.from_file(str(ROOT / "pages/vaegan_audit.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="audit_category").value == best.meta["category"]
    assert at.selectbox(key="audit_weights").value == best.name


def test_vaegan_audit_page_runs_an_audit(tiny_industrial: Path, tiny_vaegan: Path) -> None:
    at = AppTest.from_file(str(ROOT / "pages/vaegan_audit.py"), default_timeout=TIMEOUT)
    at.session_state["extra_data_roots"] = [str(tiny_industrial)]
    at.run()
    assert not at.exception
    names = at.selectbox(key="audit_dataset").options
    at.selectbox(key="audit_dataset").select_index(len(names) - 1).run()
    at.selectbox(key="audit_weights").set_value("Your weights folder …").run()
    assert any("Enter a weights folder" in e.value for e in at.error)
    at.text_input(key="audit_weights_path").input(str(tiny_vaegan)).run()
    at.select_slider(key="audit_n").set_value(200).run()
    at.slider(key="audit_k").set_value(30).run()
    assert not at.exception and not at.error
    assert any("2 good (" in m.value for m in at.markdown)
    at.button(key="audit_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="audit_sample").options[0] == "brick/test/good/000"
    at.selectbox(key="audit_sample").set_value("brick/test/hole/000").run()
    assert at.slider(key="live_k").value == 30 and at.select_slider(key="live_n").value == 200  # the audit's
    at.slider(key="live_k").set_value(40)
    at.select_slider(key="live_n").set_value(100)
    at.button(key="FormSubmitter:audit_live-Re-run this sample live").click().run()
    assert not at.exception and any("live: k = 40, n = 100" in str(c.proto) for c in at.get("plotly_chart"))
    assert any("J* " in c.value for c in at.caption)
    labels = [str(b.proto) for b in at.get("download_button")]
    assert any("Per-sample results (CSV)" in b for b in labels) and any("Mean max-IoU per setup (CSV)" in b for b in labels)
    at.radio(key="audit_calibration").set_value("heldout").run()
    assert not at.exception and any("held-out" in m.value for m in at.markdown)


def test_vaegan_audit_page_opens_a_cli_run_and_refuses_bad_input(
        tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from xad.cli import main

    assert main(["audit", "--data", str(tiny_industrial), "--category", "brick", "--weights",
                 str(tiny_vaegan), "--samples", "30", "--segments", "8", "--out", str(tmp_path / "run")]) == 0
    at = AppTest.from_file(str(ROOT / "pages/vaegan_audit.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="audit_run_folder").input(str(tmp_path / "run")).run()
    assert not at.exception and at.selectbox(key="audit_sample").options[0] == "brick/test/good/000"
    at.text_input(key="audit_run_folder").input(str(tmp_path)).run()
    assert any("not an audit run folder" in e.value for e in at.error)
    # a weights folder whose config does not fit the architecture
    bad = tmp_path / "bad_weights"
    shutil.copytree(tiny_vaegan, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["config"]["latent_dim"] = 5
    (bad / "config.json").write_text(json.dumps(cfg))
    at.text_input(key="audit_run_folder").input("").run()
    at.selectbox(key="audit_weights").set_value("Your weights folder …").run()
    at.text_input(key="audit_weights_path").input(str(bad)).run()
    assert not at.exception and any("do not match the config's architecture" in e.value for e in at.error)
    # a dataset whose defect images have no masks
    broken = tmp_path / "nomask"
    shutil.copytree(tiny_industrial, broken)
    shutil.rmtree(broken / "brick" / "ground_truth")
    at.session_state["extra_data_roots"] = [str(broken)]
    at.text_input(key="audit_weights_path").input(str(tiny_vaegan)).run()
    at.selectbox(key="audit_dataset").select_index(len(at.selectbox(key="audit_dataset").options) - 1).run()
    assert not at.exception and any("defect image without a mask" in e.value for e in at.error)


def test_selected_point_maps_to_its_sample() -> None:
    from xad.plots.audit import selected_id

    event = {"points": [{"curve_number": 3, "point_index": 1, "customdata": "hexnut/test/cut/004"}]}
    assert selected_id(event) == "hexnut/test/cut/004"
    assert selected_id({"points": [{"customdata": ["brick/test/hole/001"]}]}) == "brick/test/hole/001"
    assert selected_id({"points": []}) is None and selected_id(None) is None


def _png(array) -> bytes:  # noqa: ANN001
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_vaegan_audit_page_scores_an_upload_and_refuses_a_non_image(
        tiny_industrial: Path, tiny_vaegan: Path) -> None:
    import numpy as np

    at = AppTest.from_file(str(ROOT / "pages/vaegan_audit.py"), default_timeout=TIMEOUT)
    at.session_state["extra_data_roots"] = [str(tiny_industrial)]
    at.run()
    at.selectbox(key="audit_dataset").select_index(len(at.selectbox(key="audit_dataset").options) - 1).run()
    at.selectbox(key="audit_weights").set_value("Your weights folder …").run()
    at.text_input(key="audit_weights_path").input(str(tiny_vaegan)).run()
    at.select_slider(key="audit_n").set_value(200).run()
    at.file_uploader(key="audit_upload").set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not at.exception and any("notes.png: not a readable image" in e.value for e in at.error)
    gray16 = (np.random.default_rng(0).integers(0, 65535, (50, 70))).astype(np.uint16)  # 16-bit, odd size
    at.file_uploader(key="audit_upload").set_value(("part.png", _png(gray16), "image/png")).run()
    at.button(key="audit_upload_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("alpha = " in m.value and "S2 needs one" in m.value for m in at.markdown)


def test_counterfactual_page_moves_sliders_and_takes_uploads(tiny_cf_bundle: Path) -> None:
    import numpy as np

    at = AppTest.from_file(str(ROOT / "pages/counterfactuals.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cf_generator").value == "cegan/cmnist-one-red-bce"  # the shipped default
    assert any("Known limitation" in w.value for w in at.warning)  # its card's notes: headline, details
    assert any("What was tried" in m.value for e in at.expander for m in e.markdown)
    from xad.counterfactual import suite
    from xad.weights import WEIGHTS_DIR

    bias = [d.value for d in at.dataframe if "trained as" in d.value]  # the Fig. 10 table, from the cards
    assert bias and list(bias[0]["AuROC all anomalies (%)"]) == [r["AuROC all anomalies (%)"]
                                                                for r in suite.bias_table(WEIGHTS_DIR)]
    at.selectbox(key="cf_generator").set_value("cegan/mnist-7-hsc").run()  # the ten-class table
    assert not at.exception and any("All ten MNIST classes" in h.value for h in at.subheader)

    means, per_class = suite.summary(WEIGHTS_DIR)
    assert any(list(d.value["classes"]) == [m["classes"] for m in means] for d in at.dataframe if "classes" in d.value)
    told = any("of the 20 generators" in i.value for i in at.info)  # what is left to train, if any
    assert told == (len(per_class) < 20)
    assert len(per_class) == 20 or any(f"{20 - len(per_class)} of the 20 generators" in i.value for i in at.info)
    at.selectbox(key="cf_generator").set_value("Your weights folder …").run()
    at.text_input(key="cf_generator_folder").input(str(tiny_cf_bundle.parent)).run()
    assert any("Cannot use this generator" in e.value for e in at.error)  # not a cegan folder
    at.text_input(key="cf_generator_folder").input(str(tiny_cf_bundle)).run()
    assert not at.exception and not at.error
    assert any("K = 2 concepts" in m.value for m in at.markdown)
    charts = lambda: [str(c.proto) for c in at.get("plotly_chart")]  # noqa: E731
    assert any("alpha = 0.00" in c for c in charts())
    at.slider(key="cf_alpha").set_value(0.6).run()
    at.slider(key="cf_k").set_value(2).run()
    assert not at.exception and any("k = 2, alpha = 0.60" in c for c in charts())
    at.button(key="cf_pick_3").click().run()
    assert at.session_state["cf_index"] == 3 and any("test anomaly 4" in c for c in charts())
    assert at.dataframe[0].value["metric"].str.contains("AuROC normal vs CE").any()
    target = json.loads((tiny_cf_bundle / "config.json").read_text())["metrics"]["target_error"]
    assert any(f"target error {target:.3f}" in c and "ideal: score = alpha" in c for c in charts())
    assert not any("alpha input" in c or "alpha matched (ext.)" in c for c in charts())
    at.toggle(key="cf_match").set_value(True).run()  # xad's extension: G's alpha input searched
    matched = json.loads((tiny_cf_bundle / "config.json").read_text())["metrics"]["target_error_matched"]
    assert not at.exception and any("k = 2, alpha = 0.60, G" in c and "alpha input" in c for c in charts())
    assert any(f"(matched: {matched:.3f})" in c and "alpha matched (ext.)" in c for c in charts())
    assert list(at.dataframe[1].value.columns) == ["concept", "digit 1 only", "red only", "both", "neither"]
    at.radio(key="cf_source").set_value("Your own image").run()
    at.file_uploader(key="cf_upload").set_value(("x.txt", b"\x00\x01garbage", "text/plain")).run()
    assert any("x.txt: not a readable image" in e.value for e in at.error)
    rgba = np.random.default_rng(1).integers(0, 255, (100, 80, 4), np.uint8)
    at.file_uploader(key="cf_upload").set_value(("mine.png", _png(rgba), "image/png")).run()
    assert not at.exception and any("mine.png: every concept" in c for c in charts())


def test_counterfactual_page_diffedit_backend(tiny_diffedit_cf_bundle: Path, tmp_path: Path) -> None:
    """Backend switch to DiffEdit: psi's mask and plain edit beside G''s counterfactuals, the same
    sliders, and DiffEdit with a Stable Diffusion (diffusers) folder from disk."""
    from xad.models import diffedit as de
    from xad.weights import load_model

    at = AppTest.from_file(str(ROOT / "pages/counterfactuals.py"), default_timeout=TIMEOUT).run()
    at.radio(key="cf_backend").set_value("DiffEdit").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="cf_diffedit_generator").set_value("Your weights folder …").run()
    at.text_input(key="cf_diffedit_generator_folder").input(str(tiny_diffedit_cf_bundle)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("DIFFEDIT version" in m.value and "digit seven" in m.value for m in at.markdown)
    charts = lambda: [str(c.proto) for c in at.get("plotly_chart")]  # noqa: E731
    assert any("DiffEdit mask" in c and "plain DiffEdit edit" in c for c in charts())
    at.slider(key="cf_alpha").set_value(0.4).run()
    assert not at.exception and any("k = 1, alpha = 0.40" in c for c in charts())
    assert any(at.dataframe[0].value["metric"].str.contains("plain DiffEdit edit"))
    # Stable Diffusion from disk: a bad folder gives a message, a diffusers folder runs
    at.text_input(key="cf_sd_path").input(str(tmp_path)).run()
    at.button(key="cf_sd_run").click().run()
    assert any("Cannot use this folder" in e.value for e in at.error)
    ldm, _ = load_model(json.loads((tiny_diffedit_cf_bundle / "config.json").read_text())["diffedit"],
                        expect="TextLDM")
    sd = de.save_as_diffusers(ldm, tmp_path / "sd")
    at.text_input(key="cf_sd_path").input(str(sd)).run()
    at.button(key="cf_sd_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Stable Diffusion DiffEdit" in c for c in charts())


def test_latent_diffusion_page_slides_t_and_computes_a_sweep(tiny_ldm: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from xad import ldm

    monkeypatch.setattr(ldm, "CACHE_DIR", tmp_path)
    at = AppTest.from_file(str(ROOT / "pages/latent_diffusion.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = lambda: [str(c.proto) for c in at.get("plotly_chart")]  # noqa: E731
    # a shipped model's DDPM Fig. 3 grid is ~2760 denoising steps per image: offered, not computed on opening
    assert any("No stored grid for DDPM" in i.value for i in at.info)
    assert at.button(key="ldm_grid_button") is not None and not any("across timesteps" in c for c in charts())
    at.selectbox(key="ldm_model").set_value("Your weights folder …").run()
    at.text_input(key="ldm_model_folder").input(str(tiny_ldm.parent)).run()
    assert any("Cannot use this model" in e.value for e in at.error)  # not an ldm folder
    at.text_input(key="ldm_model_folder").input(str(tiny_ldm)).run()
    assert not at.exception and not at.error
    assert any("trained on the paper's pairs." in m.value for m in at.markdown)  # extensions are named here
    assert any("Reconstructions from t = 10" in c for c in charts())
    # the tiny model's grid is cheap: computed on opening and kept in the cache for the next visit
    assert any("across timesteps" in c for c in charts()) and not any("No stored grid" in i.value for i in at.info)
    assert len(list(tmp_path.glob("grid-*.npz"))) == 1
    # the shipped sweep of this folder was made on 10 + 10 images: not the page's 100 + 100
    assert at.button(key="ldm_sweep_button") is not None and not any("AUROC vs t" in c for c in charts())
    at.slider(key="ldm_t").set_value(20).run()
    assert any("Reconstructions from t = 20" in c for c in charts())
    at.radio(key="ldm_sample").set_value(5).run()
    assert any("anomalous 6" in c for c in charts())
    assert any(m.label.startswith("classifier logit") for m in at.metric)
    at.button(key="ldm_sweep_button").click().run()
    assert not at.exception and any("AUROC vs t (DDPM" in c for c in charts())
    assert any("Class drift vs t" in c for c in charts())
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert at.dataframe[0].value["score"].str.contains("this paper").any()
    assert at.dataframe[0].value["score"].str.contains("ink mass").any()
    from xad import ldm_report
    from xad.weights import read_record

    why = ldm_report.diagnosis(read_record(tiny_ldm).metrics)  # the card's sentence, on the page too
    assert why and any(m.value == f"**Why:** {why}" for m in at.markdown)
    at.radio(key="ldm_sampler").set_value("ddim").run()
    assert not at.exception and any("No stored sweep for DDIM" in i.value for i in at.info)


def _add_folder_message(at: AppTest, path: str) -> str:
    at.text_input[0].input(path)
    at.button[0].click().run()
    assert not at.exception
    return " ".join(e.value for e in at.error)


def test_pages_open_nothing_outside_the_allowed_roots(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Existing and missing paths outside the roots get the same answer; nothing is listed or read."""
    outside = Path("/etc")  # exists on every Linux machine, outside the test session's allowed roots
    at = _run("pages/home.py")
    before = set(at.dataframe[0].value["dataset"])
    existing = _add_folder_message(at, str(outside))
    missing = _add_folder_message(at, str(outside / "nonexistent"))
    assert existing.replace(str(outside), "X") == missing.replace(str(outside / "nonexistent"), "X")
    assert "opens only folders under its allowed roots" in existing and "no such" not in missing
    assert set(at.dataframe[0].value["dataset"]) == before
    # a symlink inside an allowed root that points outside is outside too
    link = tmp_path_factory.mktemp("links") / "etc"
    link.symlink_to(outside)
    assert "opens only folders under its allowed roots" in _add_folder_message(at, str(link))
    at.text_input[1].input("/root").run()  # "Open a weights folder": config.json is never read there
    assert any("/root: this dashboard opens no weights folder there" in e.value for e in at.error)
    assert not any("no config.json" in e.value for e in at.error)
    audit_page = _run("pages/vaegan_audit.py")
    audit_page.text_input(key="audit_run_folder").input(str(outside)).run()
    assert not audit_page.exception
    assert any("this dashboard opens no run folder there" in e.value for e in audit_page.error)


def test_server_listens_on_loopback_by_default() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1" and cfg["server"]["enableXsrfProtection"] is True


def test_runs_page_lists_and_compares_two_audits(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> None:
    from xad.cli import main

    for name, k in (("A", "6"), ("B", "12")):
        assert main(["audit", "--data", str(tiny_industrial), "--category", "brick", "--weights", str(tiny_vaegan),
                     "--setups", "S1", "--samples", "20", "--segments", k, "--out", str(tmp_path / name)]) == 0
    at = AppTest.from_file(str(ROOT / "pages/runs.py"), default_timeout=TIMEOUT)
    at.session_state["runs_extra_folders"] = [str(tmp_path)]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = at.selectbox(key="runs_a").options  # "<run folder> · <category> · n=… k=… · <date>"
    a, b = (next(text for text in labels if text.startswith(f"{n} · ")) for n in "AB")
    at.selectbox(key="runs_a").set_value(a).run()
    at.selectbox(key="runs_b").set_value(b).run()
    assert not at.exception, [e.value for e in at.exception]
    setups = at.dataframe[1].value
    assert list(setups["setup"]) == ["S1"] and setups["n"].iloc[0] == 4
    at.selectbox(key="runs_sample").set_value("brick/test/crack/000").run()
    assert not at.exception and len(at.get("plotly_chart")) == 3  # the overlay and the sample from both runs


def _default_vaegan():  # noqa: ANN202 - the shipped VAE-GAN the audit page opens on
    from xad.weights import list_models

    vaegans = [m for m in list_models()[0] if m.cls == "VAEGAN"]
    if not vaegans:
        pytest.skip("no VAE-GAN shipped")
    # one that ships an audit first (results at once), then the best test AUROC
    return max(vaegans, key=lambda m: (any(Path(m.path, "audits").glob("*/run.json")), m.metrics["test_auroc"]))


def test_threshold_what_if_moves_the_counts_live() -> None:
    """On the page's default detector: tau* first (the counts its card states), then a threshold
    above every score calls nothing anomalous."""
    import re

    rec = _default_vaegan()
    at = _run("pages/vaegan_audit.py")
    counts = {m.label: m.value for m in at.metric if m.label in ("TP", "FP", "TN", "FN")}
    good, tn, fp, bad, tp, fn = map(int, re.match(
        r"(\d+) good \((\d+) correct, (\d+) misclassified\) and (\d+) anomalous \((\d+) correct, (\d+) misclassified\)",
        rec.metrics["confusion"]).groups())
    assert counts == {"TP": str(tp), "FP": str(fp), "TN": str(tn), "FN": str(fn)}
    slider = at.select_slider(key="audit_whatif_tau")
    slider.set_value(float(slider.options[-1])).run()
    assert not at.exception
    after = {m.label: m.value for m in at.metric if m.label in ("TP", "FP", "TN", "FN")}
    assert after == {"TP": "0", "FP": "0", "TN": str(good), "FN": str(bad)}


def test_audit_page_audits_an_onnx_detector(tiny_industrial: Path, tmp_path: Path) -> None:
    import numpy as np

    from tests.test_detectors import PatchCoreStyle, export
    from xad.data.mvtec import MVTecDataset

    ds = MVTecDataset(tiny_industrial, "brick")
    onnx = export(PatchCoreStyle(np.stack([ds.load(r, 32).image for r in ds.refs("train")])), 32,
                  tmp_path / "patchcore.onnx")
    at = AppTest.from_file(str(ROOT / "pages/vaegan_audit.py"), default_timeout=TIMEOUT)
    at.session_state["extra_data_roots"] = [str(tiny_industrial)]
    at.run()
    at.selectbox(key="audit_dataset").select_index(len(at.selectbox(key="audit_dataset").options) - 1).run()
    at.selectbox(key="audit_weights").set_value("An ONNX / OpenVINO detector …").run()
    assert any("Upload an ONNX detector or give a file" in e.value for e in at.error)
    at.text_input(key="audit_detector_path").input(str(onnx)).run()
    at.multiselect(key="audit_setups").set_value(["S1"]).run()
    at.select_slider(key="audit_n").set_value(200).run()
    at.slider(key="audit_k").set_value(30).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Auditing an external detector, `patchcore.onnx`" in i.value for i in at.info)
    at.button(key="audit_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="audit_sample").options[0] == "brick/test/good/000"
    assert any("--detector " + str(onnx) in c.value for c in at.caption)


def test_audit_page_offers_the_shipped_audit_made_at_other_settings() -> None:
    import pandas as pd

    rec = _default_vaegan()
    found = sorted(Path(rec.path, "audits").glob("*/run.json"))
    if not found:
        pytest.skip(f"{rec.name} ships no audit")
    at = _run("pages/vaegan_audit.py")
    shipped = found[0].parent
    if not [b for b in at.button if b.key == "audit_show_shipped"]:
        pytest.skip("the shipped audit matches the page's default settings: it opens by itself")
    assert any("with the current engine" in c.value or "before the engine" in c.value for c in at.caption)
    at.button(key="audit_show_shipped").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="audit_run_folder").value == str(shipped)
    first = pd.read_csv(shipped / "results.csv")["id"].iloc[0]
    assert at.selectbox(key="audit_sample").options[0] == first


def test_home_draws_the_learning_curve_of_a_vaegan_card(tiny_industrial: Path, tmp_path: Path) -> None:
    from xad.cli import main

    out = tmp_path / "weights" / "vaegan" / "curve"
    assert main(["train", "vaegan", "--data", str(tiny_industrial), "--category", "brick", "--preset", "tiny",
                 "--steps", "4", "--eval-every", "2", "--batch-size", "2", "--out", str(out)]) == 0
    at = _run("pages/home.py")
    shipped = len(at.get("plotly_chart"))
    at.text_input[1].input(str(out)).run()
    assert not at.exception and len(at.get("plotly_chart")) == shipped + 1


def test_audit_page_prefers_a_detector_that_ships_an_audit(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pages.audit_widgets import _best_category

    def model(name: str, auroc: float, audit: bool) -> SimpleNamespace:
        path = tmp_path / name
        (path / "audits" / "r").mkdir(parents=True)
        if audit:
            (path / "audits" / "r" / "run.json").write_text("{}")
        return SimpleNamespace(path=path, metrics={"test_auroc": auroc}, meta={"category": name})

    models = [model("a", 0.80, True), model("b", 0.90, False), model("c", 0.70, True)]
    assert _best_category(models, ["a", "b", "c"]) == "a"  # audited beats a better AUROC without one
    assert _best_category(models, ["b", "c"]) == "c"
    assert _best_category(models[1:2], ["b", "z"]) == "b"  # no audit anywhere: the best AUROC
    assert _best_category([], ["z", "y"]) == "z"
