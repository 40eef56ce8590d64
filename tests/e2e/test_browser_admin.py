"""The admin in a real browser: Debian's Chromium driven by Playwright, the app on a real port.

Sign in, look at the dashboard (screenshot in test-artifacts/), preview the next issue in its
sandboxed frame, build it, send a test copy (found in the real SMTP server), start the send,
pause and resume it, and let the delivery engine finish it.
"""

import re
import threading

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from mailer.delivery.dispatch import send_pending, start_issue
from mailer.models import JobEvent
from tests.conftest import ROOT
from tests.support.admin import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    add_admin,
    add_items,
    add_subscribers,
    built_issue,
)
from tests.support.browser import chromium_page

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def live_url(app):
    """The app served by werkzeug on a free loopback port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def browser_page():
    """A headless Chromium page on a desktop screen; ``page.problems``: its console errors."""
    with chromium_page(1280, 900) as page:
        yield page


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url  # signed out: sent to the sign-in form
    page.get_by_label("E-mail address").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin/")


def test_operator_flow_in_chromium(app, session, smtp_server, live_url, browser_page):
    page = browser_page
    add_admin(app)
    add_items(session)
    add_subscribers(session, 12)

    _sign_in(page, live_url)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert page.locator("svg.chart rect.bar").count() == 12
    assert page.locator('[data-status="confirmed"]').inner_text() == "12"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)

    # Next issue: the preview in a sandboxed frame, then build it.
    page.get_by_role("link", name="Next issue").first.click()
    frame = page.locator("iframe.preview")
    assert frame.get_attribute("sandbox") == ""
    preview = page.frame_locator("iframe.preview")
    expect(preview.get_by_role("heading", name="Typhoon season update 0")).to_be_visible()
    page.get_by_role("button", name="Build now").click()
    expect(page.get_by_text(re.compile(r"Issue #1 \(\d{4}-W\d\d\) is built\."))).to_be_visible()

    # A test copy reaches the real SMTP server.
    page.get_by_label("Send a test copy to").fill("tester@example.com")
    page.get_by_role("button", name="Send test copy").click()
    expect(page.get_by_text("Test copy sent to tester@example.com")).to_be_visible()
    (copy,) = smtp_server.messages_to("tester@example.com")
    assert copy["Subject"].startswith("[TEST] ")

    # Send now, pause, resume; the engine finishes the send.
    page.get_by_role("button", name="Send now to 12 confirmed subscribers").click()
    expect(page.locator("#recipient-count")).to_have_text("12")  # asked again, nothing sent
    page.get_by_role("button", name="Yes, send to 12 subscribers").click()
    expect(page.locator("#issue-status")).to_have_text("sending")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#issue-status")).to_have_text("paused")
    assert send_pending(app, issue_number=1).sent == 0  # paused: nothing goes out
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#issue-status")).to_have_text("sending")
    assert send_pending(app, issue_number=1).sent == 12
    page.reload()
    expect(page.locator("#issue-status")).to_have_text("sent")
    expect(page.locator("#progress")).to_have_text("12 / 12 sent")
    assert len(smtp_server.received) == 13  # twelve subscribers and the test copy

    assert not [p for p in page.problems if "Content Security Policy" in p], page.problems


def test_pages_fit_a_phone_screen(app, session, live_url, browser_page):
    page = browser_page
    add_admin(app)
    add_subscribers(session, 3)
    issue, _queued = start_issue(session, built_issue(session).number)  # a sending issue
    # A worker event with a long unbroken word, shown in "Needs attention" and "Worker events".
    long_word = "https://relay.example.com/" + "unbrokenpathsegment" * 8
    session.add(JobEvent(kind="missed_week", message=f"{issue.period}: see {long_word}"))
    session.commit()
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_url)
    assert page.locator("#events-title").count() == 1
    paths = ["/admin/", "/admin/next", "/admin/subscribers", "/admin/feeds", "/admin/settings"]
    for path in [*paths, f"/admin/issues/{issue.number}"]:
        page.goto(f"{live_url}{path}")
        # Wide tables scroll inside their own box; the page itself never scrolls sideways.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    page.goto(f"{live_url}/admin/")
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard-phone.png"), full_page=True)
