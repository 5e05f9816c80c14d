"""The running dashboard in a real browser: ``streamlit run dashboard.py`` on a free loopback port,
driven with Playwright and Debian's Chromium. Opens every page, uses its main controls, checks that
no exception box appears, and saves a screenshot per page under test-artifacts/screenshots/
(``XAD_UPDATE_SCREENSHOTS=1`` also copies them to docs/screenshots/ for the README)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    log = (ROOT / "test-artifacts").joinpath("streamlit.log")
    log.parent.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"streamlit did not start; see {log}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(server: str):  # noqa: ANN201 - a Playwright page
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(180_000)  # slow CPUs (AVX2, 2 cores) under load
        yield pg
        browser.close()


def settle(pg) -> None:  # noqa: ANN001
    """Wait until the app has finished its script run and shows no spinner."""
    pg.wait_for_selector('[data-testid="stApp"]')
    pg.wait_for_timeout(400)
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
        "!document.querySelector('[data-testid=\"stSpinner\"]')", timeout=120_000)
    pg.wait_for_timeout(300)


def no_exception(pg) -> None:  # noqa: ANN001
    boxes = pg.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()


def shot(pg, name: str) -> Path:  # noqa: ANN001
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    if os.environ.get("XAD_UPDATE_SCREENSHOTS") == "1":
        docs = ROOT / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, docs / path.name)
    return path


def choose(pg, label: str, option: str) -> None:  # noqa: ANN001
    pg.get_by_test_id("stSelectbox").filter(has_text=label).click()
    pg.get_by_role("option", name=option, exact=True).click()
    settle(pg)


def test_home(page, server: str) -> None:  # noqa: ANN001
    page.goto(server)
    settle(page)
    page.get_by_text("is the detector right for the right reason?").wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for()
    page.get_by_text("xad industrial (synthetic, MVTec layout)").first.wait_for(state="attached")
    no_exception(page)
    shot(page, "home")


def test_dataset_browser(page, server: str) -> None:  # noqa: ANN001
    page.goto(server)
    settle(page)
    page.get_by_role("link", name="Dataset browser").click()
    settle(page)
    choose(page, "Category", "hexnut")
    choose(page, "Defect type", "crack")
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stImage")).to_have_count(10, timeout=60_000)  # stale elements leave
    page.get_by_role("button", name="View").nth(2).click()
    settle(page)
    expect(page.locator(".js-plotly-plot").first).to_contain_text("hexnut/test/crack/002", timeout=60_000)
    no_exception(page)
    shot(page, "dataset_browser")
    with page.expect_download() as dl:
        page.get_by_test_id("stDownloadButton").filter(has_text="PNG").first.click()
    assert Path(dl.value.path()).read_bytes()[:4] == b"\x89PNG"
    choose(page, "Dataset", "MVTec AD subset (real, 256 px)")
    choose(page, "Category", "hazelnut")
    no_exception(page)
    shot(page, "dataset_browser_mvtec")
    choose(page, "Dataset", "Coloured MNIST (derived from MNIST, seed 0)")
    choose(page, "Colour", "red")
    expect(page.get_by_test_id("stImage")).to_have_count(24, timeout=60_000)
    no_exception(page)


def test_vaegan_audit_click_on_the_scatter(page, server: str) -> None:  # noqa: ANN001
    from xad.weights import WEIGHTS_DIR, list_models

    shipped = [m for m in list_models([WEIGHTS_DIR])[0] if m.cls == "VAEGAN"
               and any(Path(m.path, "audits").glob("*/results.csv"))]
    if not shipped:
        pytest.skip("no VAE-GAN with a shipped audit")
    page.goto(f"{server}/vaegan_audit")
    settle(page)
    fig2 = page.locator(".js-plotly-plot").filter(has_text="Max IoU vs anomaly score (Fig. 2)")
    shipped = page.get_by_role("button", name="Show the shipped audit")  # an audit made at other settings
    fig2.or_(shipped).first.wait_for()
    if shipped.count():
        shipped.click()
        settle(page)
    fig2.first.wait_for()
    no_exception(page)
    fig2 = page.locator(".js-plotly-plot").filter(has_text="Max IoU vs anomaly score (Fig. 2)").first
    fig2.locator(".scatterlayer").first.wait_for()
    # the anomalous sample with the highest IoU in the first panel (good samples have no mask and
    # low-IoU points may lie on top of each other): its trace among that panel's, point index, id
    trace, index, sample_id = fig2.evaluate(
        "gd => { let best = [-1, -1, null, -1]; let k = -1;"
        " gd.data.forEach(d => { const c = d.customdata || []; if ((d.xaxis || 'x') !== 'x' || !c.length) return; k += 1;"
        " for (let i = 0; i < c.length; i++) if (!String(c[i][0]).includes('/good/') && parseFloat(c[i][2]) > best[3])"
        " best = [k, i, c[i][0], parseFloat(c[i][2])]; }); return best.slice(0, 3); }")
    assert trace >= 0
    point = fig2.locator(".scatterlayer").first.locator(".trace").nth(trace).locator("path.point").nth(index)
    from playwright.sync_api import expect

    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # where a user clicks
    settle(page)
    expect(page.locator(".js-plotly-plot").filter(has_text="x' (reconstruction)").first.locator(".gtitle")
           ).to_contain_text(sample_id, timeout=60_000)
    no_exception(page)
    shot(page, "vaegan_audit")
    page.get_by_test_id("stSlider").filter(has_text="k").first.wait_for()
    # the live re-run starts at the audit's own n (5000 for the shipped audit): the smallest n keeps
    # the test about the page, not about the CPU
    n_thumb = page.get_by_test_id("stSlider").filter(has=page.get_by_text("n", exact=True)).first.get_by_role("slider")
    n_thumb.focus()
    n_thumb.press("Home")
    page.get_by_role("button", name="Re-run this sample live").click()
    page.get_by_text("J* ", exact=False).last.wait_for(timeout=180_000)
    settle(page)
    no_exception(page)
    shot(page, "vaegan_audit_live")


def test_vaegan_audit_threshold_what_if(page, server: str) -> None:  # noqa: ANN001
    """The tau slider moves the confusion counts live: at the top of its range nothing is anomalous."""
    page.goto(f"{server}/vaegan_audit")
    settle(page)
    page.get_by_text("Threshold what-if: move tau, see the counts").click()
    slider = page.get_by_test_id("stSlider").filter(has_text="Threshold tau")
    slider.wait_for()

    def count(name: str) -> str:
        return page.get_by_test_id("stMetric").filter(has_text=name).first.get_by_test_id(
            "stMetricValue").text_content().strip()

    before = count("TP")
    assert int(before) > 0
    thumb = slider.get_by_role("slider")
    thumb.focus()
    thumb.press("End")
    settle(page)
    assert count("TP") == "0" and count("FP") == "0"
    assert int(count("FN")) >= int(before)
    no_exception(page)
    shot(page, "vaegan_audit_threshold")


def test_vaegan_audit_page_audits_an_uploaded_onnx(page, server: str, tmp_path: Path) -> None:  # noqa: ANN001
    """Upload a PatchCore-style ONNX detector (anomalib's output names) and audit 4 test images."""
    import numpy as np

    from tests.test_detectors import PatchCoreStyle, export
    from xad.data.mvtec import MVTecDataset

    from pages.audit_widgets import _best_category
    from xad.weights import list_models

    vaegans = [m for m in list_models()[0] if m.cls == "VAEGAN"]
    category = _best_category(vaegans, sorted({m.meta["category"] for m in vaegans}))  # the page's default
    audited = [m for m in vaegans if any(Path(m.path, "audits").glob("*/run.json"))] or vaegans
    assert category == max(audited, key=lambda m: m.metrics["test_auroc"]).meta["category"]
    ds = MVTecDataset(ROOT / "data" / "xad_industrial", category)
    train = np.stack([ds.load(r, 128).image for r in ds.refs("train")[:40]])
    onnx = export(PatchCoreStyle(train, bank_size=2048), 128, tmp_path / f"{category}-patchcore.onnx")
    page.goto(f"{server}/vaegan_audit")
    settle(page)
    choose(page, "Detector", "An ONNX / OpenVINO detector …")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(onnx))
    settle(page)
    page.get_by_text("Auditing an external detector", exact=False).first.wait_for()
    for label in ("Superpixels k", "Samples n"):  # the smallest k and n: a quick audit
        thumb = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
        thumb.focus()
        thumb.press("Home")
        settle(page)
    limit = page.get_by_test_id("stNumberInput").filter(has_text="Quick look").locator("input")
    limit.fill("4")
    limit.press("Enter")
    settle(page)
    page.get_by_role("button", name="Run audit").click()
    page.get_by_text("Max IoU vs anomaly score (Fig. 2)").first.wait_for(timeout=600_000)
    settle(page)
    page.locator(".js-plotly-plot").filter(has_text="Max IoU vs anomaly score (Fig. 2)").first.wait_for()
    no_exception(page)
    shot(page, "vaegan_audit_onnx")


def test_runs_page_compares_two_audits(page, server: str) -> None:  # noqa: ANN001
    from xad.cli import main
    from xad.runs import AUDIT_CACHE

    for name, k in (("browser-A", "20"), ("browser-B", "40")):  # the newest two: the page's default pair
        assert main(["audit", "--category", "tablet", "--weights", str(ROOT / "weights/vaegan/xad-tablet-cpu"),
                     "--setups", "S1", "--samples", "50", "--segments", k, "--limit", "4",
                     "--out", str(AUDIT_CACHE / name)]) == 0
    page.goto(f"{server}/runs")
    settle(page)
    page.get_by_text("Mean max-IoU per setup, over the common anomalous samples").wait_for()
    no_exception(page)
    page.get_by_text("Pick two different runs").wait_for(state="detached")
    page.locator(".js-plotly-plot").filter(has_text="both runs (Fig. 2 overlay)").first.wait_for()
    shot(page, "runs")


def _slide(pg, label: str, presses: int) -> float:  # noqa: ANN001
    """Move a slider right by ``presses`` steps; each step reruns the fragment, which may take the
    focus away from the thumb, so it is found and focused again before every key press. Returns the
    slider's value afterwards (a press that lands during a rerun can be lost)."""
    for _ in range(presses):
        thumb = pg.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
        thumb.focus()
        thumb.press("ArrowRight")
        settle(pg)
    return float(pg.get_by_test_id("stSlider").filter(has_text=label)
                 .get_by_test_id("stSliderThumbValue").text_content())


def _single_counterfactual(page):  # noqa: ANN001, ANN202
    """The single counterfactual's figure (its title names one alpha); the alpha strip may render first."""
    return page.locator(".js-plotly-plot").filter(has=page.locator(".gtitle", has_text="alpha = ")).first


def test_counterfactual_sliders_change_the_image(page, server: str) -> None:  # noqa: ANN001
    from xad.counterfactual.bundle import generators

    if not generators():
        pytest.skip("no counterfactual generator shipped")
    page.goto(f"{server}/counterfactuals")
    settle(page)
    page.get_by_text("Slide the target score and the concept").wait_for()
    no_exception(page)
    # the single counterfactual's figure (its title names one alpha); the alpha strip may render first
    single = _single_counterfactual(page)
    single.wait_for()
    assert "alpha = 0.00" in single.locator(".gtitle").text_content()
    before = single.screenshot()
    from playwright.sync_api import expect

    alpha = _slide(page, "Target anomaly score alpha", 14)  # towards 0.70
    assert alpha >= 0.5
    expect(single.locator(".gtitle")).to_contain_text(
        f"alpha = {alpha:.2f}", timeout=60_000)
    assert single.screenshot() != before
    # the calibration curve beside the slider marks the slider's alpha
    expect(page.locator(".js-plotly-plot").filter(has_text="Calibration on").first).to_contain_text(
        f"alpha = {alpha:.2f}", timeout=60_000)
    _slide(page, "Concept k", 1)
    expect(single.locator(".gtitle")).to_contain_text("k = 2", timeout=60_000)
    page.locator(".st-key-cf_pick_1 button").click()  # the 2nd anomaly (columns interleave the DOM order)
    settle(page)
    expect(page.locator(".js-plotly-plot").filter(has_text="every concept").first).to_contain_text(
        "test anomaly 2", timeout=60_000)
    thumb = page.get_by_test_id("stSlider").filter(has_text="Target anomaly score alpha").get_by_role("slider")
    thumb.focus()
    thumb.press("Home")  # back to alpha = 0: the normal version, for the screenshot
    settle(page)
    expect(single.locator(".gtitle")).to_contain_text("alpha = 0.00", timeout=60_000)
    no_exception(page)
    page.get_by_text("2 · Slide the target score").first.evaluate("e => e.scrollIntoView()")
    page.wait_for_timeout(300)
    shot(page, "counterfactuals")


def test_counterfactual_diffedit_backend(page, server: str) -> None:  # noqa: ANN001
    from xad.counterfactual.bundle import generators

    if not any(r.meta.get("backend") == "diffedit" for r in generators()):
        pytest.skip("no DiffEdit generator shipped")
    from playwright.sync_api import expect

    page.goto(f"{server}/counterfactuals")
    settle(page)
    page.get_by_test_id("stRadio").filter(has_text="Backend").get_by_text("DiffEdit", exact=True).click()
    settle(page)
    expect(page.locator(".js-plotly-plot").filter(has_text="DiffEdit mask").first).to_be_visible(timeout=120_000)
    no_exception(page)
    single = _single_counterfactual(page)
    before = single.screenshot()
    alpha = _slide(page, "Target anomaly score alpha", 10)
    assert alpha >= 0.3
    expect(single.locator(".gtitle")).to_contain_text(
        f"alpha = {alpha:.2f}", timeout=60_000)
    assert single.screenshot() != before
    thumb = page.get_by_test_id("stSlider").filter(has_text="Target anomaly score alpha").get_by_role("slider")
    thumb.focus()
    thumb.press("Home")
    settle(page)
    expect(single.locator(".gtitle")).to_contain_text("alpha = 0.00", timeout=60_000)
    page.get_by_text("GAN version vs DiffEdit version").first.wait_for()
    no_exception(page)
    page.get_by_text("2 · Slide the target score").first.evaluate("e => e.scrollIntoView()")
    page.wait_for_timeout(300)
    shot(page, "counterfactuals_diffedit")


def test_latent_diffusion_timestep_slider_changes_the_reconstructions(page, server: str) -> None:  # noqa: ANN001
    from xad.ldm import models

    if not models():
        pytest.skip("no latent-diffusion model shipped")
    page.goto(f"{server}/latent_diffusion")
    settle(page)
    page.get_by_text("Slide the timestep").wait_for()
    no_exception(page)
    from playwright.sync_api import expect

    recs = page.locator(".js-plotly-plot").first
    expect(recs.locator(".gtitle")).to_contain_text("from t = 200", timeout=120_000)  # renders first
    before = recs.screenshot()

    t = int(_slide(page, "Timestep t", 20))  # 200 -> 400
    recs = page.locator(".js-plotly-plot").first
    assert t >= 300
    expect(recs.locator(".gtitle")).to_contain_text(f"from t = {t}", timeout=60_000)  # the last rerun lands
    assert recs.screenshot() != before
    from xad import ldm
    from xad.data.multiclass import load_setting
    from xad.ldm import load_sweep, sweep_params

    if load_sweep(models()[0].path, sweep_params("ddpm", seed=0)) is not None:
        page.get_by_text("AUROC vs t (DDPM").first.wait_for()  # the shipped sweep, t marked
        expect(page.locator(".js-plotly-plot").nth(2)).to_contain_text(f"t = {t}", timeout=60_000)
    else:  # no sweep ships with this model: the page offers to compute one (AppTest clicks it)
        page.get_by_text("No stored sweep for DDPM").first.wait_for()
        expect(page.get_by_role("button", name="Compute the AUROC/drift-vs-t sweep")).to_be_visible()
    page.get_by_text("anomalous 5", exact=False).first.click()
    settle(page)
    expect(page.locator(".js-plotly-plot").filter(has_text=f"anomalous 5 (class 0) from t = {t}").first
           ).to_be_visible(timeout=60_000)
    page.get_by_text("Reconstructions across timesteps").first.wait_for()
    if ldm.find_grid(models()[0].path, load_setting(models()[0].meta["setting"])) is None:
        expect(page.get_by_role("button", name="Compute the Fig. 3 grid")).to_be_visible()  # AppTest computes one
    no_exception(page)
    page.get_by_text("1 · Slide the timestep").first.evaluate("e => e.scrollIntoView()")
    page.wait_for_timeout(300)
    shot(page, "latent_diffusion")
