"""A real browser (Debian's Chromium, headless, driven by Playwright) signs up on ``/``, opens
the confirmation link from the mail the SMTP server received, and confirms.
"""

import pytest

from mailer.delivery.dispatch import send_pending
from tests.support.browser import chromium_page
from tests.support.signup import LiveServer, confirm_url_in, subscriber

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def browser_page():
    """A headless Chromium page on a phone's screen."""
    with chromium_page(390, 844) as page:
        yield page


@pytest.fixture
def live(app):
    with LiveServer(app) as server:
        # Links in mail must point at the server the browser talks to.
        app.config["MAILER_BASE_URL"] = server.url
        yield server


def test_sign_up_in_the_browser_and_confirm_from_the_mail(
    app, session, smtp_server, live, browser_page
):
    page = browser_page
    page.goto(live.url + "/")
    page.get_by_label("Your email address").fill("browser.user@example.com")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert subscriber(session, "browser.user@example.com").status == "pending"

    assert send_pending(app).transactional_sent == 1
    (mail,) = smtp_server.messages_to("browser.user@example.com")
    link = confirm_url_in(mail)
    assert link.startswith(live.url + "/confirm/")

    page.goto(link)
    page.get_by_text("b***@e***.com").wait_for()
    assert subscriber(session, "browser.user@example.com").status == "pending"
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_role("heading", name="You're subscribed").wait_for()
    assert subscriber(session, "browser.user@example.com").status == "confirmed"


def test_a_refused_address_shows_the_message_next_to_the_field(app, live, browser_page):
    page = browser_page
    page.goto(live.url + "/")
    field = page.get_by_label("Your email address")
    field.fill("Jane <jane@example.com>")
    page.get_by_role("button", name="Subscribe").click()
    page.locator("#email-error").wait_for()
    assert "angle brackets" in page.locator("#email-error").inner_text()
    described = page.get_by_label("Your email address").get_attribute("aria-describedby")
    assert "email-error" in described.split()
