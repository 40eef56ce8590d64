"""Issue 12: in the dev mailbox the Confirm button of a mail did nothing (the sandboxed frame
blocked it). A real browser opens the caught confirmation mail at /dev/mailbox, clicks
Confirm inside the mail, and lands on a working confirm page in a new tab.
"""

import pytest

from mailer.delivery.dispatch import send_pending
from mailer.devmail import MailCatcher
from tests.support.browser import chromium_page
from tests.support.signup import LiveServer, run_signup_job, subscriber
from tests.support.smtpd import free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def catcher(tmp_path):
    with MailCatcher(tmp_path / "instance" / "mailbox", port=free_port()) as running:
        yield running


@pytest.fixture
def app_config(app_config, catcher):
    """The development settings: /dev/mailbox on, mail to the local catcher."""
    return {**app_config, "DEBUG": True, "MAILER_SMTP_HOST": catcher.host,
            "MAILER_SMTP_PORT": catcher.port}  # fmt: skip


@pytest.fixture
def live(app):
    with LiveServer(app) as server:
        app.config["MAILER_BASE_URL"] = server.url
        yield server


def test_confirm_in_the_dev_mailbox_lands_confirmed(app, session, live):
    with chromium_page(1024, 900) as page:
        page.goto(live.url + "/")
        page.get_by_label("Your email address").fill("dev.user@example.com")
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        run_signup_job(session)  # what the worker's signups job does first
        assert send_pending(app).transactional_sent == 1

        page.goto(live.url + "/dev/mailbox")
        page.locator("a[href^='/dev/mailbox/']").first.click()
        frame = page.frame_locator("iframe.devmail-html")
        with page.expect_popup() as opened:
            frame.get_by_role("link", name="Confirm my subscription").click()
        confirm = opened.value
        confirm.get_by_role("button", name="Yes, subscribe me").click()
        confirm.get_by_role("heading", name="You're subscribed").wait_for()
        assert subscriber(session, "dev.user@example.com").status == "confirmed"
