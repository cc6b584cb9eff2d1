"""End to end in a real browser: Debian's chromium, driven by Playwright, against ``streamlit run app.py``.

What a newcomer does in the first five minutes (issue 20): a BraTS upload gets a BraTS model preselected,
a mismatched model shows a warning, the slice shown after a run contains tumor, and Explain computes
nothing before its button. Plus the long tour: a PNG slice and a NIfTI volume through Segment, Compare,
Explain and the Model zoo. Screenshots of each step go to ``artifacts/browser/`` (git-ignored; CI keeps
them as test output); the time from handing the PNG to the file input until its overlay is on screen
is written to ``artifacts/browser/timings.json``.

Needs ``/usr/bin/chromium`` (``apt-get install chromium chromium-driver``; ``.ci/run`` installs it).
Skipped, with that reason, when chromium is absent. Each test opens its own page (a fresh session).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelpers import REPO, SPIKING_TEST_MODEL, brain_like_slice, phantom_volume_file, png_bytes
from browserhelpers import CHROMIUM, TIMEOUT_MS, choose, chromium_browser, click_bar, streamlit_server, wait_idle

ARTIFACTS = REPO / "artifacts" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def server(app_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` with the test weights; its URL."""
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    try:
        with streamlit_server(log_path, {"BRAINSEG_WEIGHTS_DIR": str(app_weights)}) as url:
            yield url
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with chromium_browser() as browser:
        yield browser


@pytest.fixture
def page(chromium) -> Iterator[object]:
    page = chromium.new_page(viewport={"width": 1400, "height": 2200})
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    page.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_segment(page, server: str) -> None:
    page.goto(f"{server}/Segment")
    page.get_by_text("Upload a brain MRI slice or volume").first.wait_for()
    wait_idle(page)
    # Straight to a page's address, the navigation is still the declared one: "Home", never "app".
    entries = page.get_by_test_id("stSidebarNav").inner_text().split()
    assert "Home" in entries and "app" not in entries, entries


def shown_slice(page) -> tuple[int, int]:
    """``(index, count)`` from the caption of the slice on screen ("... axial slice 12 of 24, ...")."""
    caption = page.get_by_text(re.compile(r"axial slice \d+ of \d+")).first.inner_text()
    index, count = re.search(r"axial slice (\d+) of (\d+)", caption).groups()
    return int(index), int(count)


def test_the_slice_shown_after_a_run_contains_the_tumor_the_model_found(server: str, page, app_weights, tmp_path) -> None:
    from seg_core.inference import Segmenter
    from seg_core.scans import load_scan
    from seg_core.weights import load_model

    open_segment(page, server)
    name, data = phantom_volume_file()
    (tmp_path / name).write_bytes(data)
    page.locator('input[type="file"]').first.set_input_files(str(tmp_path / name))
    page.get_by_text("'s mask", exact=False).first.wait_for()
    wait_idle(page)
    index, count = shown_slice(page)
    model_id = re.search(r"(\S+)'s mask", page.get_by_text("'s mask", exact=False).first.inner_text()).group(1)
    # The same model and settings here: the app's post-processed mask has tumor on the slice it shows.
    mask = Segmenter(load_model(model_id, str(app_weights)))(load_scan(data, name=name)).mask
    assert count == mask.shape[0] and mask[index].sum() > 0 and mask[index].sum() == mask.sum(axis=(1, 2)).max()
    shot(page, "first_visit_volume_on_tumor")

    # NiiVue draws the same volume and mask in three linked planes (WebGL, inside the component's iframe).
    page.get_by_text("Three planes (NiiVue)").click()
    page.get_by_text("three planes are linked", exact=False).wait_for()
    wait_idle(page)
    viewer = page.frame_locator("iframe").first
    viewer.locator("canvas").first.wait_for()
    viewer.get_by_text("matrix size: 96 x 96 x 24", exact=False).wait_for()  # NiiVue read the scan's NIfTI
    shot(page, "first_visit_volume_niivue")


def test_explain_computes_nothing_before_its_button(server: str, page, tmp_path) -> None:
    page.goto(f"{server}/Explain")
    png = tmp_path / "slice.png"
    png.write_bytes(png_bytes(brain_like_slice()))
    page.locator('input[type="file"]').first.set_input_files(str(png))
    page.get_by_text("Nothing has been computed yet").wait_for()
    wait_idle(page)
    assert not page.get_by_role("heading", name="How faithful is each map?").count()
    assert not page.get_by_text("Explaining").count()
    page.get_by_test_id("stMain").get_by_role("button", name="Explain").click()
    page.get_by_role("heading", name="How faithful is each map?").wait_for()
    wait_idle(page)
    assert page.locator('[data-testid="stImage"]').count() >= 5
    shot(page, "first_visit_explain_after_button")


def _brats_case(data_root: Path) -> list[Path]:
    from seg_core.samples import list_samples

    cases = [info.name for info in list_samples(data_root) if info.source == "brats2018"]
    if not cases:
        pytest.skip("no BraTS 2018 test case in the data root")
    folder = data_root / "brats2018" / cases[0].removeprefix("brats2018-")
    return sorted(folder.glob("*.nii.gz"))


@pytest.mark.data
def test_a_brats_upload_preselects_a_brats_model_shows_tumor_and_warns_on_a_mismatch(server: str, page, data_root) -> None:
    from seg_core.scans import load_scan

    files = _brats_case(data_root)
    open_segment(page, server)
    start = time.perf_counter()
    page.locator('input[type="file"]').first.set_input_files([str(path) for path in files])
    page.get_by_text("'s mask", exact=False).first.wait_for()
    wait_idle(page)
    seconds = time.perf_counter() - start
    assert page.get_by_text("unet.brats's mask", exact=False).count()  # the BraTS model was preselected and ran
    assert not page.get_by_text("was not made for this scan").count()
    # The view opens on a slice where the expert marked tumor too.
    index, count = shown_slice(page)
    truth = load_scan([(path.name, path.read_bytes()) for path in files]).label
    assert count == truth.shape[0] and (truth[index] > 0).any()
    shot(page, "first_visit_brats_preselected")

    choose(page, "Model", "unet.figshare")
    page.get_by_text("was not made for this scan").first.wait_for()
    wait_idle(page)
    shot(page, "first_visit_brats_mismatch_warning")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings_brats.json").write_text(json.dumps({"brats_upload_to_overlay_s": seconds}, indent=2) + "\n")


def test_upload_png_overlay_switch_model_then_nifti_compare_and_explain(server: str, page, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    try:
        page.goto(server)
        page.get_by_role("heading", name="BrainSeg Studio").wait_for()
        assert page.get_by_test_id("stSidebarNav").get_by_text("Home").is_visible()
        wait_idle(page)
        shot(page, "01_home")

        page.goto(f"{server}/Segment")
        page.get_by_text("Upload a brain MRI slice or volume").first.wait_for()
        page.get_by_text("is loaded and ready").wait_for()  # the model loads while the user picks a file
        wait_idle(page)
        png = tmp_path / "slice.png"
        png.write_bytes(png_bytes(brain_like_slice()))
        start = time.perf_counter()
        page.locator('input[type="file"]').first.set_input_files(str(png))
        page.get_by_text("unet.figshare's mask", exact=False).wait_for()
        page.locator('[data-testid="stImage"] img').first.wait_for(state="visible")
        timings["png_256_upload_to_overlay_s"] = time.perf_counter() - start
        wait_idle(page)
        assert page.get_by_text("Tumor found").is_visible()
        assert not page.get_by_text("slice 0").count()  # a 2D image has no slice number
        shot(page, "02_segment_png")

        choose(page, "Model", SPIKING_TEST_MODEL)
        page.get_by_text(f"{SPIKING_TEST_MODEL}'s mask", exact=False).wait_for()
        wait_idle(page)
        shot(page, "03_segment_switched_model")

        page.goto(f"{server}/Segment")  # a fresh session: the uploader is empty again
        page.get_by_text("Upload a brain MRI slice or volume").first.wait_for()
        name, data = phantom_volume_file()
        volume = tmp_path / name
        volume.write_bytes(data)
        start = time.perf_counter()
        page.locator('input[type="file"]').first.set_input_files(str(volume))
        page.get_by_text("unet.figshare's mask", exact=False).wait_for()
        timings["nifti_24_slices_upload_to_overlay_s"] = time.perf_counter() - start
        wait_idle(page)
        assert page.get_by_text("Tumor volume").is_visible()
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()  # the per-slice strip
        # A click on the strip's first bar jumps to slice 0.
        click_bar(page, page.locator('[data-testid="stPlotlyChart"]').first, 0)
        page.get_by_text("axial slice 0 of 24", exact=False).wait_for()
        wait_idle(page)
        page.get_by_text("coronal").first.click()
        wait_idle(page)
        shot(page, "04_segment_nifti_coronal")

        page.get_by_test_id("stSidebarNav").get_by_text("Compare").click()
        page.get_by_role("heading", name="Agreement").wait_for()
        wait_idle(page)
        assert page.get_by_text("Agreement map").first.is_visible()
        assert page.locator('[data-testid="stImage"]').count() >= 3
        shot(page, "05_compare")

        page.get_by_test_id("stSidebarNav").get_by_text("Explain").click()
        page.get_by_text("Nothing has been computed yet").wait_for()
        page.get_by_test_id("stMain").get_by_role("button", name="Explain").click()
        page.get_by_role("heading", name="How faithful is each map?").wait_for()
        wait_idle(page)
        assert page.locator('[data-testid="stImage"]').count() >= 5
        shot(page, "06_explain")

        choose(page, "Model", SPIKING_TEST_MODEL)
        page.get_by_test_id("stMain").get_by_role("button", name="Explain").click()
        page.get_by_role("heading", name="Inside the spiking network").wait_for()
        wait_idle(page)
        shot(page, "07_explain_spiking")

        page.get_by_test_id("stSidebarNav").get_by_text("Model zoo").click()
        page.get_by_role("heading", name="Model cards").wait_for()
        wait_idle(page)
        shot(page, "08_model_zoo")

        assert not page.locator('[data-testid="stException"]').count()
    except Exception:
        shot(page, "zz_failure")
        raise
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
