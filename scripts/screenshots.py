"""Regenerate the README's screenshots of the main flows, in headless Chromium (Playwright + Debian's chromium).

    python scripts/screenshots.py                      # with BRAINSEG_DATA_ROOT set: a real BraTS case
    python scripts/screenshots.py --out docs/screenshots --width 1280

Starts ``streamlit run app.py`` on a free local port with the repository's weights, then: Home (the quick
start), a sample opened from the quick start on Segment (the model made for it preselected, the view on
the tumor), Compare, and Explain after pressing its button. Each picture is cropped to the top of the
page, scaled to ``--width`` px and saved as an adaptive-palette PNG (a few tens of KB each), so the
README stays light. Prints a table: file, size, and the seconds each step took.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "app"))
from browserhelpers import TIMEOUT_MS, chromium_browser, streamlit_server, wait_idle  # noqa: E402

# Real data first: the first featured sample on Home is a BraTS case when the data root is set.
SAMPLE_PREFERENCE = ("brats2018", "brats2015", "lgg", "figshare", "phantom-3d")
#: Tall enough for each page's main flow: Streamlit scrolls its own container, not the window.
VIEWPORT = {"width": 1400, "height": 3200}


def save_small(png: bytes, path: Path, width: int, colors: int = 96) -> int:
    """Scale a screenshot to ``width`` px and store it with an adaptive palette; returns the file's size in bytes."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path.stat().st_size


def capture(page, path: Path, width: int, top: float = 0, height: float = 1000) -> int:
    """Save the part of the page from ``top`` (px, page coordinates) down ``height`` px.

    Streamlit scrolls inside its own container, so a "full page" screenshot is only the viewport: the
    viewport is made tall enough instead (``VIEWPORT``) and the picture clipped from it.
    """
    if page.locator('[data-testid="stImage"]').count():
        page.locator('[data-testid="stImage"] img').last.wait_for(state="visible")
    page.wait_for_timeout(800)  # images decode and plotly charts draw after the run ends
    clip = {"x": 0, "y": max(0.0, top), "width": page.viewport_size["width"], "height": height}
    return save_small(page.screenshot(clip=clip), path, width)


def heading_top(page, name: str) -> float:
    return page.get_by_role("heading", name=name).first.bounding_box()["y"]


def quick_start_button(page):
    """The quick start's sample button for the most preferred kind of scan on offer."""
    buttons = page.get_by_test_id("stMain").locator('[class*="st-key-home_sample_"] button')
    keys = [buttons.nth(i).locator("xpath=..").get_attribute("class") or "" for i in range(buttons.count())]
    for preferred in SAMPLE_PREFERENCE:
        for position, key in enumerate(keys):
            if f"home_sample_{preferred}" in key:
                return buttons.nth(position)
    return buttons.first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument("--width", type=int, default=1000, help="width of the saved pictures (px)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, int, float]] = []
    scratch = Path(tempfile.mkdtemp(prefix="screenshots-"))
    with streamlit_server(scratch / "server.log") as url, chromium_browser() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)

        def step(name: str, take) -> None:
            start = time.perf_counter()
            size = take()
            rows.append((name, size, time.perf_counter() - start))

        def home() -> int:
            page.goto(url)
            page.get_by_role("heading", name="Quick start").wait_for()
            wait_idle(page)
            return capture(page, args.out / "1_home.png", args.width, 0, 760)

        def segment() -> int:
            quick_start_button(page).click()
            page.get_by_text("'s mask", exact=False).first.wait_for()
            wait_idle(page)
            return capture(page, args.out / "2_segment.png", args.width, 0, 1500)

        def compare() -> int:
            page.get_by_test_id("stSidebarNav").get_by_text("Compare").click()
            page.get_by_role("heading", name="Agreement").wait_for()
            wait_idle(page)
            top = heading_top(page, "Compare")
            return capture(
                page, args.out / "3_compare.png", args.width, top - 20, heading_top(page, "Against the ground truth") - top
            )

        def explain() -> int:
            page.get_by_test_id("stSidebarNav").get_by_text("Explain").click()
            page.get_by_text("Nothing has been computed yet").wait_for()
            wait_idle(page)
            page.get_by_test_id("stMain").get_by_role("button", name="Explain").click()
            page.get_by_role("heading", name="How faithful is each map?").wait_for()
            wait_idle(page)
            top = heading_top(page, "Why ")  # the maps and, below them, the faithfulness verdict
            return capture(page, args.out / "4_explain.png", args.width, top - 20, heading_top(page, "How faithful") - top + 480)

        step("1_home.png", home)
        step("2_segment.png", segment)
        step("3_compare.png", compare)
        step("4_explain.png", explain)
        page.close()
    print(f"{'file':<16} {'KB':>6} {'seconds':>8}")
    for name, size, seconds in rows:
        print(f"{name:<16} {size / 1024:>6.0f} {seconds:>8.1f}")
    print(f"{'total':<16} {sum(size for _, size, _ in rows) / 1024:>6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
