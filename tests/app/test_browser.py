"""End to end in a real browser: Debian's chromium, driven by Playwright, against ``streamlit run app.py``.

Uploads a PNG slice and a NIfTI volume, checks the overlay appears, switches model, opens Compare and
Explain, and saves a screenshot of each step under ``artifacts/browser/`` (git-ignored; CI keeps it as
test output). The time from handing the PNG to the file input until its overlay is on screen is
written to ``artifacts/browser/timings.json``.

Needs ``/usr/bin/chromium`` (``apt-get install chromium chromium-driver``; ``.ci/run`` installs it);
Playwright's own browser downloads are never used. Skipped, with that reason, when chromium is absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelpers import REPO, SPIKING_TEST_MODEL, brain_like_slice, phantom_volume_file, png_bytes

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARTIFACTS = REPO / "artifacts" / "browser"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 180_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium chromium-driver)"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(app_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on 127.0.0.1 and a free port, with the test weights; its URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "BRAINSEG_WEIGHTS_DIR": str(app_weights), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def wait_idle(page, settle_ms: int = 1500) -> None:
    """Wait until Streamlit has finished its current run: no 'running' status widget for ``settle_ms`` in a row."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= settle_ms:
            return
        page.wait_for_timeout(100)
    raise TimeoutError("Streamlit kept running")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def choose(page, label: str, option: str, sidebar: bool = True) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    scope = page.get_by_test_id("stSidebar") if sidebar else page
    scope.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def test_upload_png_overlay_switch_model_then_nifti_compare_and_explain(server: str, chromium, tmp_path: Path) -> None:
    page = chromium.new_page(viewport={"width": 1400, "height": 2200})
    page.set_default_timeout(TIMEOUT_MS)
    timings: dict[str, float] = {}
    try:
        page.goto(server)
        page.get_by_role("heading", name="BrainSeg Studio").wait_for()
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
        page.get_by_role("heading", name="How faithful is each map?").wait_for()
        wait_idle(page)
        assert page.locator('[data-testid="stImage"]').count() >= 5
        shot(page, "06_explain")

        choose(page, "Model", SPIKING_TEST_MODEL)
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
        page.close()
