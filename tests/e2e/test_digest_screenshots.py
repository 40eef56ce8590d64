"""The sample digest in headless Chromium at 600 px, 390 px and 320 px and in dark mode.

Screenshots are written to ``test-artifacts/digest/`` (gitignored) and to the test's tmp dir,
for a reader to compare with other newsletters; the assertions check what a screenshot
shows: one column without sideways scrolling, and dark colours in dark mode.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer import create_app
from mailer.delivery.message import fill_markers
from mailer.digest.sample import render_sample
from tests.support.browser import chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.nodb]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "digest"
CARD_BACKGROUND = "document.querySelector('table.container').style && "


@pytest.fixture(scope="module")
def digest_html() -> str:
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        mail = render_sample(app.config, datetime(2026, 12, 6, 9, 0, tzinfo=UTC))
    url = "https://news.example.com/unsubscribe/sample-token"
    return fill_markers(mail.html, url, "reader@example.com", for_html=True)


def _shoot(page, name: str, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for folder in (ARTIFACTS, tmp_path):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _colour(page, selector: str, prop: str) -> str:
    return page.evaluate(
        "([s, p]) => getComputedStyle(document.querySelector(s))[p]", [selector, prop]
    )


@pytest.mark.parametrize("width", [600, 390, 320])
def test_one_column_without_sideways_scrolling(digest_html, tmp_path, width):
    with chromium_page(width, 900) as page:
        page.set_content(digest_html)
        _shoot(page, f"digest-{width}px", tmp_path)
        assert _overflow(page) <= 0
        box = page.locator("table.container").bounding_box()
        assert box["width"] <= min(width, 600)
        # Titles, facts and summaries sit inside the card.
        for selector in (".item-title", ".facts", ".txt"):
            inner = page.locator(selector).first.bounding_box()
            assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"]
        assert page.problems == []


def test_dark_mode_turns_the_card_dark_and_the_text_light(digest_html, tmp_path):
    with chromium_page(390, 900) as page:
        page.set_content(digest_html)
        assert _colour(page, "table.container", "backgroundColor") == "rgb(255, 255, 255)"
        page.emulate_media(color_scheme="dark")
        _shoot(page, "digest-390px-dark", tmp_path)
        assert _colour(page, "table.container", "backgroundColor") == "rgb(27, 31, 36)"
        assert _colour(page, ".item-title a", "color") == "rgb(232, 234, 237)"
        assert _colour(page, ".section-title", "color") == "rgb(255, 138, 128)"
        assert _colour(page, "td.footer", "backgroundColor") == "rgb(35, 40, 47)"
