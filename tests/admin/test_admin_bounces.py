"""Admin: the Bounces page, a subscriber's bounces, per-issue bounce and complaint rates and
the dashboard's "Needs attention" above 2 % hard bounces or 0.1 % complaints."""

import html

import pytest

from mailer.delivery import process_report
from mailer.extensions import db
from mailer.models import Delivery
from tests.support.admin import signed_in_client
from tests.support.bounces import arf, dsn, mailed

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def report(app, raw: bytes) -> None:
    """Through the one processor, as `bounces receive` does."""
    assert process_report(db.engine, app.config, raw, "receive").status == "recorded"


def attention(page: str) -> str:
    """The "Needs attention" section's text ("" when there is none)."""
    if "Needs attention" not in page:
        return ""
    return html.unescape(page.split("Needs attention", 1)[1].split("</section>", 1)[0])


def test_rates_warnings_bounces_page_and_subscriber_page(app, admin_client, session):
    emails = [f"r{i:03d}@example.com" for i in range(100)]
    ids = mailed(session, emails)
    for email in emails[:2]:
        report(app, dsn(email, "5.1.1"))
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "2.0%" in page  # the bounce rate, exactly at the threshold
    assert "bounced hard" not in attention(page)

    report(app, dsn(emails[2], "5.1.1", original_id=f"<{EVIL}@x>"))
    report(app, arf(emails[3]))
    report(app, dsn(emails[4], "4.2.2", action="delayed"))
    page = admin_client.get("/admin/").get_data(as_text=True)
    warned = attention(page)
    assert "Issue #1: 3.0% of its messages bounced hard (above 2 %)" in warned
    assert "Issue #1: 1.00% of its recipients complained (above 0.1 %)" in warned

    bounces = admin_client.get("/admin/bounces").get_data(as_text=True)
    assert bounces.count('<tr data-kind="hard">') == 3
    assert bounces.count('<tr data-kind="complaint">') == 1
    assert bounces.count('<tr data-kind="soft">') == 1
    only = admin_client.get("/admin/bounces?kind=complaint").get_data(as_text=True)
    assert only.count("<tr data-kind=") == 1 and emails[3] in only and emails[0] not in only
    assert admin_client.get("/admin/bounces?kind=nonsense").get_data(as_text=True).count(
        "<tr data-kind=") == 5  # fmt: skip

    subscriber_id = session.get(Delivery, ids[emails[2]]).subscriber_id
    mine = admin_client.get(f"/admin/subscribers/{subscriber_id}").get_data(as_text=True)
    assert "Bounces and complaints" in mine
    assert mine.count('<tr data-kind="hard">') == 1
    assert "550 5.1.1 mailbox trouble &lt;b&gt;here&lt;/b&gt;" in mine  # escaped, not markup
    assert "<b>here</b>" not in mine


def test_a_report_quoting_markup_is_shown_escaped(app, admin_client, session):
    mailed(session, ["x@example.com"])
    raw = dsn("x@example.com").replace(b"mailbox trouble", EVIL.encode())
    report(app, raw)
    page = admin_client.get("/admin/bounces").get_data(as_text=True)
    assert EVIL not in page
    assert html.escape(EVIL, quote=False) in page
