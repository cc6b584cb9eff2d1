"""Driving the app in a real Chromium: start ``streamlit run app.py``, launch Debian's chromium with Playwright, wait.

Shared by ``test_browser.py`` and ``scripts/screenshots.py``. Playwright's own browser downloads are
never used (they cannot be fetched here): ``/usr/bin/chromium`` is driven instead.
"""

from __future__ import annotations

import contextlib
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

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
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
TIMEOUT_MS = 240_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(log_path: Path, env: dict[str, str] | None = None, start_timeout: float = 120) -> Iterator[str]:
    """``streamlit run app.py`` on 127.0.0.1 and a free port; yields its URL, stops it afterwards.

    Raises:
        RuntimeError: the server did not answer ``/_stcore/health`` in time (the log's tail says why).
    """
    port = free_port()
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
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def chromium_browser() -> Iterator[object]:
    """Debian's chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise RuntimeError("Debian chromium is not installed (apt-get install -y chromium chromium-driver)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def wait_idle(page, settle_ms: int = 1500, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until Streamlit has finished its current run: no 'running' status widget for ``settle_ms`` in a row."""
    deadline = time.monotonic() + timeout_ms / 1000
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


def choose(page, label: str, option: str, sidebar: bool = False) -> None:
    """Pick the option containing ``option`` in the selectbox labelled ``label`` (main area unless ``sidebar``)."""
    scope = page.get_by_test_id("stSidebar") if sidebar else page.get_by_test_id("stMain")
    scope.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def slider_value(page, label: str) -> int:
    """The value of the slider labelled ``label`` (its ``aria-valuenow``)."""
    return int(page.get_by_role("slider", name=label).get_attribute("aria-valuenow"))


def click_bar(page, chart, index: int) -> None:
    """Click bar ``index`` of the first trace of a plotly chart as a user would.

    Plotly resolves a click from its hover state, so the pointer first moves onto the bar and rests
    there; a bare ``click()`` lands on plotly's drag layer and selects nothing.
    """
    box = chart.locator(".bars .point").nth(index).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 5, y)
    page.mouse.move(x, y, steps=5)
    page.wait_for_timeout(500)
    page.mouse.down()
    page.wait_for_timeout(50)
    page.mouse.up()
