"""Debian's Chromium, headless and driven by Playwright, for the browser tests in tests/e2e/.

``MAILER_TEST_CHROMIUM`` names another Chromium binary (default /usr/bin/chromium). When the
binary or the playwright package is missing the test is skipped, or fails under CI=true.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import missing

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@contextmanager
def chromium_page(width: int, height: int) -> Iterator:
    """A new page in headless Chromium with a ``width`` x ``height`` CSS-pixel viewport.

    The page's ``problems`` list collects the text of every console error, e.g. a Content
    Security Policy violation. Browser and context are closed on exit. Calls
    ``tests.conftest.missing`` (skip, or fail under CI=true) when Chromium or the playwright
    package is not installed.
    """
    chromium = Path(os.environ.get("MAILER_TEST_CHROMIUM", DEFAULT_CHROMIUM))
    if not chromium.exists():
        missing(f"Chromium is not installed at {chromium} (apt-get install chromium)")
    try:
        # Imported here: only the browser tests need playwright.
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            try:
                page = context.new_page()
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.problems = problems
                yield page
            finally:
                context.close()
        finally:
            browser.close()
