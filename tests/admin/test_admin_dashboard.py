"""Dashboard (counts, growth chart, next send, last issues, warnings) and the settings page."""

import html
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select, update

from mailer import clock
from mailer.admin import queries
from mailer.admin.charts import bar_chart
from mailer.admin.settings import effective_settings, signup_snippet
from mailer.delivery.message import dkim
from mailer.models import (
    Feed,
    Issue,
    IssueStatus,
    JobEvent,
    Subscriber,
    SubscriberStatus,
    TransactionalMail,
)
from tests.support.admin import add_items, add_subscribers, built_issue, signed_in_client
from tests.support.signup import run_signup_job

# A Wednesday; the default schedule is Mondays 08:00 Asia/Tokyo.
NOW = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def _set_confirmed_at(session, prefix: str, moment: datetime) -> None:
    session.execute(
        update(Subscriber).where(Subscriber.email.like(f"{prefix}%")).values(confirmed_at=moment)
    )
    session.commit()


def test_dashboard_counts_chart_and_next_send(admin_client, session):
    clock.freeze(NOW)
    add_subscribers(session, 3, prefix="this-week")
    add_subscribers(session, 2, prefix="last-week")
    _set_confirmed_at(session, "last-week", NOW - timedelta(days=7))
    add_subscribers(session, 4, status=SubscriberStatus.PENDING, prefix="wait")
    add_subscribers(session, 1, status=SubscriberStatus.UNSUBSCRIBED, prefix="gone")

    page = admin_client.get("/admin/").get_data(as_text=True)
    counts = dict(re.findall(r'data-status="(\w+)">(\d+)<', page))
    assert counts == {"pending": "4", "confirmed": "5", "unsubscribed": "1", "bounced": "0"}
    assert '<svg class="chart"' in page
    assert page.count('<rect class="bar"') == 12
    assert "5 subscribers confirmed in these weeks." in page
    assert "2026-03-09 08:00 JST" in page  # next Monday 08:00 in Tokyo
    assert "Not built yet; it would contain:" in page
    assert "No issue yet." in page


def test_weekly_confirmations_are_counted_per_iso_week_in_the_newsletter_zone(session):
    clock.freeze(NOW)
    add_subscribers(session, 2, prefix="a")
    # Sunday 23:30 in Tokyo is still last week there, though Sunday 14:30 in UTC.
    _set_confirmed_at(session, "a", datetime(2026, 3, 1, 14, 30, tzinfo=UTC))
    add_subscribers(session, 1, prefix="b")
    # Monday 00:30 in Tokyo: this week.
    _set_confirmed_at(session, "b", datetime(2026, 3, 1, 15, 30, tzinfo=UTC))
    add_subscribers(session, 1, prefix="old")
    _set_confirmed_at(session, "old", NOW - timedelta(weeks=20))  # before the window

    weeks = queries.weekly_confirmations(session, now=NOW, tz="Asia/Tokyo", weeks=4)
    assert weeks == [("W07", 0), ("W08", 0), ("W09", 2), ("W10", 1)]


def test_dashboard_lists_last_issues_with_counts(admin_client, session):
    issue = built_issue(session)
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert f'href="/admin/issues/{issue.number}">#{issue.number}</a>' in page
    assert f"Issue #{issue.number} is built:" in page
    assert "0 / 0" in page


def test_dashboard_warnings(admin_client, session):
    clock.freeze(NOW)
    session.add(
        Feed(
            url="https://broken.example.com/rss",
            section="news",
            last_error="HTTP 500 from the server",
            created_at=NOW - timedelta(days=3),
            last_success_at=NOW - timedelta(days=2),
        )
    )
    session.add(  # failing for an hour only: the next refreshes retry it
        Feed(
            url="https://flaky.example.com/rss",
            section="news",
            last_error="timed out",
            created_at=NOW - timedelta(days=3),
            last_success_at=NOW - timedelta(hours=1),
        )
    )
    session.add(
        Issue(
            number=7,
            period="2026-W09",
            subject="Paused one",
            html="x",
            text="x",
            status=IssueStatus.PAUSED,
            status_reason="relay unreachable",
        )
    )
    # A draft without an unsubscribe link: the preflight check reports an error.
    session.add(Issue(number=8, period="2026-W10", subject="Broken", html="<p>hi</p>", text="hi"))
    session.add(
        JobEvent(
            kind="missed_week",
            message="no issue was sent for 2026-W09",
            created_at=NOW - timedelta(days=2),
        )
    )
    session.add(
        JobEvent(kind="missed_week", message="ancient history", created_at=NOW - timedelta(days=60))
    )
    session.commit()
    page = html.unescape(admin_client.get("/admin/").get_data(as_text=True))
    assert "Needs attention" in page
    assert "Feed https://broken.example.com/rss has been failing for more than a day: HTTP" in page
    assert "flaky.example.com" not in page.split("Worker events")[0]
    assert "The send of issue #7 is paused: relay unreachable" in page
    assert "Preflight error in the built next issue:" in page
    assert "Missed week (2026-03-02): no issue was sent for 2026-W09" in page
    assert "ancient history" not in page
    assert "Worker events" in page and "missed_week" in page


class _PageOutline(HTMLParser):
    """Collects the tags seen inside <title> and <h1>, their text, and every id."""

    def __init__(self):
        super().__init__()
        self.open = []  # enclosing "title"/"h1" elements
        self.nested = {"title": [], "h1": []}
        self.text = {"title": "", "h1": ""}
        self.ids = []

    def handle_starttag(self, tag, attrs):
        self.ids += [value for name, value in attrs if name == "id"]
        for outer in self.open:
            self.nested[outer].append(tag)
        if tag in self.nested:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.open:
            self.open.remove(tag)

    def handle_data(self, data):
        for outer in self.open:
            self.text[outer] += data


def test_worker_events_stay_out_of_the_title_and_heading(admin_client, session):
    clock.freeze(NOW)
    message = "2026-W09: <b>bold</b> the weekly digest was not sent"
    session.add(JobEvent(kind="missed_week", message=message, created_at=NOW))
    session.commit()
    outline = _PageOutline()
    outline.feed(admin_client.get("/admin/").get_data(as_text=True))
    assert outline.nested == {"title": [], "h1": []}
    assert outline.text["title"].startswith("Dashboard · ")
    assert "<" not in outline.text["title"] and "Worker events" not in outline.text["title"]
    assert outline.text["h1"].strip() == "Dashboard"
    assert outline.ids.count("events-title") == 1


def test_dashboard_without_warnings_shows_none(admin_client, session):
    add_items(session)
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Dashboard</h1>" in page
    assert "Needs attention" not in page


def test_a_fresh_install_and_a_finished_send_need_no_attention(app, admin_client, session):
    # Issue 12: a red "the issue has no items" showed after every send and on a fresh install.
    clock.freeze(NOW)
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "Needs attention" not in page
    assert "The weekly run of 2026-W11 sends nothing: no new items since the last issue" in page
    issue = built_issue(session)
    issue.status = IssueStatus.SENT  # as after a send
    session.commit()
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "Needs attention" not in page and "has no items" not in page


def test_dashboard_says_why_the_last_run_sent_nothing(admin_client, session):
    clock.freeze(NOW)  # Wednesday of W10: the last run was Monday of W10
    message = "2026-W10: the weekly run sent nothing: no new items since the last issue."
    session.add(JobEvent(kind="empty_week", message=message, created_at=NOW - timedelta(days=2)))
    session.add(JobEvent(kind="empty_week", message="2026-W09: old news", created_at=NOW))
    session.commit()
    page = html.unescape(admin_client.get("/admin/").get_data(as_text=True))
    attention = page.split("Worker events")[0]
    assert f"The last weekly run: {message}" in attention
    assert "2026-W09: old news" not in attention


def test_dashboard_warns_when_the_relay_cannot_be_reached(app, admin_client, session):
    add_subscribers(session, 1, status=SubscriberStatus.PENDING, prefix="wait")
    session.add(
        TransactionalMail(
            kind="confirm",
            recipient="wait0@example.com",
            body=b"x",
            status="deferred",
            attempts=1,
            last_reply="[Errno 111] Connection refused",
        )
    )
    session.commit()
    page = html.unescape(admin_client.get("/admin/").get_data(as_text=True))
    expected = "The relay could not be reached: 1 mail(s) wait for a retry (last reply: [Errno 111]"
    assert expected in page


def test_dashboard_reports_a_malformed_schedule(app):
    # create_app refuses such a setting (tests/app/test_settings_errors.py); the dashboard still
    # names it when the config is changed after the start.
    app.config["MAILER_DIGEST_DAY"] = "someday"
    client = signed_in_client(app, app.test_client())
    page = client.get("/admin/").get_data(as_text=True)
    assert "MAILER_DIGEST_DAY must be a weekday name" in page


# --- settings -----------------------------------------------------------------------------


def test_settings_mask_secrets_and_show_the_rest(app_config, request, tmp_path):
    # The app reads the DKIM key at start: a real key file, with the other two settings.
    key_path = tmp_path / "dkim.pem"
    dkim.write_private_key(key_path, dkim.generate_private_key())
    app_config["MAILER_SMTP_PASSWORD"] = "hunter2-smtp-password"
    app_config["MAILER_DKIM_DOMAIN"] = "example.com"
    app_config["MAILER_DKIM_SELECTOR"] = "mail2026"
    app_config["MAILER_DKIM_PRIVATE_KEY"] = str(key_path)
    app = request.getfixturevalue("app")
    client = signed_in_client(app, app.test_client())
    page = html.unescape(client.get("/admin/settings").get_data(as_text=True))
    assert "hunter2" not in page
    assert "test-secret-key" not in page
    assert str(key_path) in page
    assert "Asia/Tokyo" in page
    assert "MAILER_TOKEN_RATE_LIMIT" in page and "30/minute" in page


@pytest.mark.nodb
def test_effective_settings_masking_rules():
    shown = dict(
        effective_settings(
            {
                "SECRET_KEY": "abc",
                "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://mailer:s3cret@db:5432/mail",
                "RATELIMIT_STORAGE_URI": "redis://:r3dis@127.0.0.1:6379/0",
                "MAILER_SMTP_PASSWORD": "",
                "MAILER_DKIM_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nMIIE...",
                "MAILER_SMTP_HOST": "relay.example.com",
                "UNRELATED": "x",
            }
        )
    )
    assert shown["SECRET_KEY"] == "********"
    assert shown["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://mailer:********@db:5432/mail"
    assert shown["RATELIMIT_STORAGE_URI"] == "redis://:********@127.0.0.1:6379/0"
    assert shown["MAILER_SMTP_PASSWORD"] == "(not set)"
    assert shown["MAILER_DKIM_PRIVATE_KEY"] == "********"
    assert shown["MAILER_SMTP_HOST"] == "relay.example.com"
    assert "UNRELATED" not in shown


def test_signup_snippet_posts_to_the_real_subscribe_endpoint(admin_client, app, session):
    page = html.unescape(admin_client.get("/admin/settings").get_data(as_text=True))
    snippet = signup_snippet("https://news.example.com", "website")
    assert snippet in page
    assert 'action="https://news.example.com/subscribe" method="post"' in snippet
    fields = re.findall(r'name="(\w+)"', snippet)
    assert fields == ["email", "sections", "sections", "website"]

    # The form as the news site would post it (a cross-site form carries no CSRF token).
    visitor = app.test_client()
    reader = visitor.post(
        "/subscribe",
        data={"email": "reader@example.jp", "sections": ["news", "openings"], "website": ""},
    )
    bot = visitor.post("/subscribe", data={"email": "bot@example.jp", "website": "http://spam"})
    assert (reader.status_code, bot.status_code) == (200, 200)  # the bot is not told
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    run_signup_job(session)
    emails = session.scalars(select(Subscriber.email)).all()
    assert emails == ["reader@example.jp"]  # the honeypot caught the bot
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 1


@pytest.mark.nodb
def test_bar_chart_is_plain_svg_without_style_attributes():
    svg = str(bar_chart([("W01", 0), ("W02", 7), ("W03", 3)], title="Growth <test>"))
    assert svg.startswith('<svg class="chart" viewBox="0 0 640 220" role="img"')
    assert "Growth &lt;test&gt;" in svg
    assert svg.count('<rect class="bar"') == 3
    assert "style=" not in svg and "<script" not in svg
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"', svg)]
    assert heights[0] == 0.0
    assert heights[1] > heights[2] > 0
    assert "<title>W02: 7</title>" in svg


def test_dashboard_warns_when_signups_wait_for_the_worker(admin_client, session):
    add_items(session)
    start = clock.now().replace(microsecond=0)
    clock.freeze(start)
    visitor = admin_client  # /subscribe is public: anyone's client will do
    assert visitor.post("/subscribe", data={"email": "waiting@example.jp"}).status_code == 200
    clock.freeze(start + timedelta(minutes=4))
    assert visitor.post("/subscribe", data={"email": "recent@example.jp"}).status_code == 200
    clock.freeze(start + timedelta(minutes=5))
    page = html.unescape(admin_client.get("/admin/").get_data(as_text=True))
    assert f"1 signup(s) have waited since {start:%Y-%m-%d %H:%M} UTC for the worker" in page
    run_signup_job(session)
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "have waited since" not in page and "Needs attention" not in page
