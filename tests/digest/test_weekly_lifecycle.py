"""Issue 12: the weekly issue as an operator lives with it.

A manual send is an extra issue and never consumes a scheduled run; a cancel gives the items
back and the same week can be rebuilt; a run with too few new items sends nothing and says
why; ``digest next`` and the dashboard say what the next run sends. Real database (SQLite
and PostgreSQL), real SMTP server on loopback, the clock set by the test.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from mailer import clock
from mailer import scheduler as schedule
from mailer.content.items import create_item
from mailer.delivery import start_issue
from mailer.models import Issue, IssueStatus, Item, JobEvent
from tests.support.admin import add_subscribers, post, signed_in_client

JST = ZoneInfo("Asia/Tokyo")
TUESDAY_W49 = datetime(2026, 12, 1, 9, 0, tzinfo=JST)
WEDNESDAY_W49 = datetime(2026, 12, 2, 10, 0, tzinfo=JST)
MONDAY_W50 = datetime(2026, 12, 7, 8, 0, tzinfo=JST)
MONDAY_W51 = datetime(2026, 12, 14, 8, 0, tzinfo=JST)


def _add_item(session, title: str, section: str = "news") -> Item:
    n = session.scalar(select(func.count()).select_from(Item)) + 1
    item = create_item(
        session,
        section=section,
        title=title,
        link=f"https://news.example.com/articles/{n}",
        summary="<p>Summary.</p>",
        published_at=clock.now() - timedelta(hours=1),
    )
    session.commit()
    return item


def _digest(app, runner, *args: str):
    with app.app_context():
        return runner.invoke(args=["digest", *args], catch_exceptions=False)


def _subjects(smtp_server) -> list[str]:
    return [r.message()["Subject"] for r in smtp_server.received]


@pytest.fixture
def service(session):
    """Tuesday of W49: two confirmed readers and one news item."""
    clock.freeze(TUESDAY_W49)
    add_subscribers(session, 2)
    _add_item(session, "Shinkansen timetable change")
    return session


def test_an_early_cli_send_is_extra_and_the_monday_run_still_sends_newer_items(
    app, service, runner, smtp_server
):
    session = service
    assert _digest(app, runner, "build").exit_code == 0
    sent = _digest(app, runner, "send")
    assert sent.exit_code == 0, sent.output
    assert len(smtp_server.received) == 2
    session.expire_all()
    early = session.get(Issue, 1)
    assert (early.kind, early.status, early.period) == ("extra", IssueStatus.SENT, "2026-W50")

    clock.freeze(WEDNESDAY_W49)
    newer = _add_item(session, "Kyoto autumn leaves peak")
    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)

    session.expire_all()
    weekly = session.scalar(select(Issue).where(Issue.number == 2))
    assert (weekly.kind, weekly.status, weekly.period) == ("scheduled", "sent", "2026-W50")
    assert session.get(Item, newer.id).issue_id == weekly.id
    assert len(smtp_server.received) == 4
    assert "Kyoto autumn leaves peak" in _subjects(smtp_server)[-1]


def test_a_cancelled_draft_gives_its_items_back_and_the_week_can_be_rebuilt(
    app, service, runner, smtp_server
):
    session = service
    assert _digest(app, runner, "build").exit_code == 0
    cancelled = _digest(app, runner, "cancel", "1")
    assert cancelled.exit_code == 0, cancelled.output
    assert "Issue #1 cancelled" in cancelled.output
    session.expire_all()
    assert session.scalars(select(Item.issue_id)).all() == [None]  # the item is free again

    rebuilt = _digest(app, runner, "build")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Issue #2 for 2026-W50 built" in rebuilt.output
    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)
    session.expire_all()
    assert session.get(Issue, 2).status == IssueStatus.SENT
    assert len(smtp_server.received) == 2


def test_a_cancel_never_loses_a_week_the_run_takes_the_items(app, service, runner, smtp_server):
    session = service
    assert _digest(app, runner, "build").exit_code == 0
    assert _digest(app, runner, "cancel", "1").exit_code == 0

    nxt = _digest(app, runner, "next")
    assert "Next scheduled run: 2026-12-07T08:00:00+09:00 (2026-W50)" in nxt.output
    assert "1 news, 0 openings" in nxt.output

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)
    session.expire_all()
    issue = session.scalar(select(Issue).where(Issue.status == IssueStatus.SENT))
    assert (issue.number, issue.period) == (2, "2026-W50")
    assert len(smtp_server.received) == 2


def test_a_run_with_too_few_items_sends_nothing_and_says_why(app, service, smtp_server):
    session = service
    app.config["MAILER_MIN_ITEMS"] = 2
    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)

    assert smtp_server.received == []
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Issue)) == 0
    event = session.scalars(select(JobEvent)).one()
    assert (event.kind, event.message) == (
        "empty_week",
        "2026-W50: the weekly run sent nothing: only 1 new item(s), fewer than "
        "MAILER_MIN_ITEMS (2).",
    )
    # The item waits: next week's run sends it with the new one.
    clock.freeze(MONDAY_W50 + timedelta(days=2))
    _add_item(session, "Osaka startup hiring", section="openings")
    clock.freeze(MONDAY_W51)
    schedule.weekly_digest_job(app)
    session.expire_all()
    issue = session.scalars(select(Issue)).one()
    assert (issue.period, issue.status, len(issue.items)) == ("2026-W51", "sent", 2)
    assert len(smtp_server.received) == 2


def test_digest_next_before_and_after_an_early_send(app, service, runner, smtp_server):
    session = service
    before = _digest(app, runner, "next")
    assert before.exit_code == 0, before.output
    assert before.output.splitlines() == [
        "Next scheduled run: 2026-12-07T08:00:00+09:00 (2026-W50)",
        "It builds and sends a new issue: 1 news, 0 openings.",
    ]
    _digest(app, runner, "build")
    built = _digest(app, runner, "next")
    assert "It sends issue #1 (built): 1 news, 0 openings." in built.output
    assert _digest(app, runner, "send").exit_code == 0

    after = _digest(app, runner, "next")
    assert after.output.splitlines() == [
        "Next scheduled run: 2026-12-07T08:00:00+09:00 (2026-W50)",  # not moved by the send
        "It sends nothing: no new items since the last issue.",
    ]
    clock.freeze(WEDNESDAY_W49)
    _add_item(session, "Osaka startup hiring", section="openings")
    assert (
        "It builds and sends a new issue: 0 news, 1 openings."
        in _digest(app, runner, "next").output
    )

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)
    monday = _digest(app, runner, "next")
    assert monday.output.splitlines() == [
        "Next scheduled run: 2026-12-14T08:00:00+09:00 (2026-W51)",
        "It sends nothing: no new items since the last issue.",
    ]
    listed = _digest(app, runner, "list").output.splitlines()
    assert listed == [
        "#2  2026-W50  scheduled  sent       items: 0 news, 1 openings  deliveries: 2 sent",
        "#1  2026-W50  extra      sent       items: 1 news, 0 openings  deliveries: 2 sent",
    ]


def test_digest_pause_resume_and_cancel_go_through_the_transitions(app, service, runner):
    session = service
    _digest(app, runner, "build")
    start_issue(session, 1)
    assert _digest(app, runner, "pause", "1").output == "Issue #1 paused.\n"
    refused = _digest(app, runner, "pause", "1")
    assert refused.exit_code == 1
    assert "issue #1 cannot be paused: cannot pause an issue that is paused" in refused.output
    assert _digest(app, runner, "resume", "1").output == "Issue #1 resumed.\n"
    assert _digest(app, runner, "cancel", "1").output == "Issue #1 cancelled.\n"
    session.expire_all()
    issue = session.get(Issue, 1)
    assert (issue.status, issue.status_reason) == ("cancelled", "by `digest cancel`")
    missing = _digest(app, runner, "resume", "9")
    assert missing.exit_code == 1 and "there is no issue #9" in missing.output


MONDAY_W52 = datetime(2026, 12, 21, 8, 0, tzinfo=JST)
MONDAY_W53 = datetime(2026, 12, 28, 8, 0, tzinfo=JST)
BACKLOG_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Kansai jobs</title><link>https://jobs.example.jp/</link>
<item><title>Opening from 2017</title><link>https://jobs.example.jp/2017</link>
<pubDate>Mon, 01 May 2017 09:00:00 +0900</pubDate></item>
<item><title>Fresh opening in Kobe</title><link>https://jobs.example.jp/kobe</link>
<pubDate>Mon, 14 Dec 2026 09:00:00 +0900</pubDate></item>
</channel></rss>"""


@pytest.fixture
def admin(app, client):
    """A client signed in as an admin (asked for before ``session``: see test_scheduled_drafts)."""
    clock.freeze(TUESDAY_W49 - timedelta(days=1))
    return signed_in_client(app, client)


def _attention(admin) -> bool:
    return "Needs attention" in admin.get("/admin/").get_data(as_text=True)


def test_a_month_of_weekly_issues_loses_no_week_and_raises_no_false_alarm(
    app, admin, session, runner, smtp_server, tmp_path
):
    clock.freeze(TUESDAY_W49)
    add_subscribers(session, 2)
    _add_item(session, "Shinkansen timetable change")
    assert not _attention(admin)  # a fresh install
    sent_at_runs = []

    def monday(moment):
        clock.freeze(moment)
        before = len(smtp_server.received)
        schedule.weekly_digest_job(app)
        sent_at_runs.append(len(smtp_server.received) - before)
        assert not _attention(admin)

    monday(MONDAY_W50)

    # W50: a test copy of the unbuilt preview, then a build, a cancel and a rebuild.
    clock.freeze(MONDAY_W50 + timedelta(days=1))
    _add_item(session, "Kyoto autumn leaves peak")
    post(admin, "/admin/next/test", {"addresses": "editor@example.com"})
    assert session.scalar(select(func.count()).select_from(Issue)) == 1
    post(admin, "/admin/next/build")
    assert _digest(app, runner, "cancel", "2").exit_code == 0
    post(admin, "/admin/next/build")
    monday(MONDAY_W51)

    # W51: a feed added mid-month (its backlog stays out) and an early send by hand.
    clock.freeze(MONDAY_W51 + timedelta(days=1))
    path = tmp_path / "jobs.xml"
    path.write_text(BACKLOG_FEED, encoding="utf-8")
    with app.app_context():
        args = ["feeds", "add", str(path), "--section", "openings", "--refresh"]
        added = runner.invoke(args=args)
    assert added.exit_code == 0, added.output
    assert _digest(app, runner, "build").exit_code == 0
    assert _digest(app, runner, "send").exit_code == 0
    clock.freeze(MONDAY_W51 + timedelta(days=3))
    _add_item(session, "Sapporo snow festival dates")
    monday(MONDAY_W52)

    clock.freeze(MONDAY_W52 + timedelta(days=2))
    _add_item(session, "Osaka startup hiring", section="openings")
    monday(MONDAY_W53)

    assert sent_at_runs == [2, 2, 2, 2]  # every Monday sent its issue to both readers
    session.expire_all()
    issues = session.scalars(select(Issue).order_by(Issue.number)).all()
    rows = [(i.number, i.period, i.kind, i.status, len(i.items)) for i in issues]
    assert rows == [
        (1, "2026-W50", "scheduled", "sent", 1),
        (2, "2026-W51", "scheduled", "cancelled", 0),
        (3, "2026-W51", "scheduled", "sent", 1),
        (4, "2026-W52", "extra", "sent", 1),
        (5, "2026-W52", "scheduled", "sent", 1),
        (6, "2026-W53", "scheduled", "sent", 1),
    ]
    backlog = session.scalar(select(Item).where(Item.title == "Opening from 2017"))
    assert (backlog.backlog, backlog.issue_id) == (True, None)
    subjects = [r.message()["Subject"] for r in smtp_server.received]
    assert len(smtp_server.received) == 2 * 5 + 1  # five issues to two readers, one test copy
    assert subjects.count(subjects[-1]) == 2


def test_digest_next_says_a_built_draft_with_preflight_errors_would_not_go_out(
    app, session, runner
):
    clock.freeze(TUESDAY_W49)
    session.add(Issue(number=1, period="2026-W50", subject="Broken", html="<p>hi</p>", text="hi"))
    session.commit()
    result = _digest(app, runner, "next")
    assert "It sends nothing: built issue #1 has preflight errors (" in result.output
    assert "no-unsubscribe" in result.output
