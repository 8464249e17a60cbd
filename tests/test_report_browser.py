"""report.html in a real browser: headless Chromium through Playwright.

The browser is Debian's ``chromium`` (``apt-get install chromium``), any
Chromium/Chrome on PATH, or Playwright's own (``python -m playwright install
chromium``, done by hand: a test run downloads nothing). Where none is
installed the test is skipped and says why.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
WINDOW = {"width": 1280, "height": 900}
SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _system_browser() -> str | None:
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the [test] extra has it)"
    )
    executable = _system_browser()
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, headless=True)
        except Exception as error:  # no browser binary, or one that cannot start here
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            pytest.skip(
                "no usable Chromium: install Debian's `chromium` (apt-get install chromium) or run "
                f"`python -m playwright install chromium` ({reason})"
            )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of the sample runs, copied under a long absolute path (as real run folders are)."""
    pytest.importorskip("safetensors", reason="the sample runs are safetensors files")
    import wtraj

    root = tmp_path_factory.mktemp("browser") / "experiments-2026-digits-mlp-sweep" / "learning-rate-0.2"
    names = ["run_seed0", "run_seed0_sibling", "run_seed1", "run_shift"]
    for name in names:
        shutil.copytree(SAMPLES / name, root / f"{name}-with-a-descriptive-suffix-as-sweeps-make")
    paths = [root / f"{name}-with-a-descriptive-suffix-as-sweeps-make" for name in names]
    assert all(len(str(p)) > 100 for p in paths)
    result = wtraj.analyze(paths, progress=False)
    return result.save(tmp_path_factory.mktemp("browser-report") / "report") / "report.html"


def test_report_renders_cleanly_in_chromium(browser, report):
    page = browser.new_page(viewport=WINDOW)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url[:80]))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert errors == [] and failed == []

    images = page.evaluate(
        "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(images) == 5
    broken = [alt for alt, complete, width, height in images if not (complete and width > 0 and height > 0)]
    assert broken == []

    # no horizontal scrolling in a 1280 px window, long absolute paths included
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WINDOW["width"], f"the page is {width} px wide"
    overflowing = page.evaluate(
        "Array.from(document.querySelectorAll('table, figure, img')).filter("
        "e => e.getBoundingClientRect().right > window.innerWidth).map(e => e.tagName)"
    )
    assert overflowing == []

    text = page.inner_text("body")
    # the shared initialisation is said in the summary and marked in the runs table
    assert "start from the same checkpoint" in text
    assert "also in run" in text
    page.close()
