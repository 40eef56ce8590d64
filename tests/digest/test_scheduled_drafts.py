"""A draft built by hand between two weekly runs is the one the next run sends.

The bug: "Build now" (or ``digest build``) on a Wednesday of W49 made a W49 draft, while the
Monday run of W50 looked for the W50 issue, found no new items and sent nothing, so the draft
waited forever although the next-issue page promised "the worker sends it at the scheduled
time". Real database (SQLite and PostgreSQL), real SMTP server on loopback, the clock set by
the test (``mailer.clock.freeze``).
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from mailer import clock
from mailer import scheduler as schedule
from mailer.content.items import create_item
from mailer.digest import schedule as weekly
from mailer.digest.periods import period_label
from mailer.models import Issue, IssueStatus, Item, JobEvent, SubscriberStatus
from tests.support.admin import add_subscribers, post, signed_in_client

JST = ZoneInfo("Asia/Tokyo")
MONDAY_W49 = datetime(2026, 11, 30, 8, 0, tzinfo=JST)  # a scheduled run (ISO week 2026-W49)
TUESDAY_W49 = datetime(2026, 12, 1, 9, 0, tzinfo=JST)
WEDNESDAY_W49 = datetime(2026, 12, 2, 10, 0, tzinfo=JST)
THURSDAY_W49 = datetime(2026, 12, 3, 12, 0, tzinfo=JST)
MONDAY_W50 = datetime(2026, 12, 7, 8, 0, tzinfo=JST)
MONDAY_W51 = datetime(2026, 12, 14, 8, 0, tzinfo=JST)
READERS = ["reader00000@example.com", "reader00001@example.com", "reader00002@example.com"]


def _add_item(session, title: str) -> Item:
    """A news item published an hour before now (committed)."""
    n = session.scalar(select(func.count()).select_from(Item)) + 1
    item = create_item(
        session,
        section="news",
        title=title,
        link=f"https://news.example.com/articles/{n}",
        summary="<p>Summary.</p>",
        published_at=clock.now() - timedelta(hours=1),
    )
    session.commit()
    return item


def _start_service(session) -> None:
    """Tuesday of W49: three confirmed readers, one pending signup and two items."""
    clock.freeze(TUESDAY_W49)
    add_subscribers(session, 3)
    add_subscribers(session, 1, status=SubscriberStatus.PENDING, prefix="pending")
    _add_item(session, "Shinkansen timetable change")
    _add_item(session, "Osaka startup hiring")


@pytest.fixture
def admin(app, client):
    """A client signed in as an admin; ask for it before ``session``.

    Flask-WTF caches the CSRF token on ``g``; inside the app context that ``session`` holds
    open, the sign-in's fresh session would never get the cached token back.
    """
    clock.freeze(MONDAY_W49 - timedelta(days=2))
    return signed_in_client(app, client)


def _build_by_hand(how: str, app, admin, runner, *args: str) -> None:
    if how == "admin":
        assert post(admin, "/admin/next/build").status_code == 302
    else:
        with app.app_context():
            result = runner.invoke(args=["digest", "build", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output


def _recipients(smtp_server) -> list[str]:
    return sorted(r.rcpt_tos[0] for r in smtp_server.received)


def _subjects(smtp_server) -> set[str]:
    return {r.message()["Subject"] for r in smtp_server.received}


def _events(session) -> list[tuple[str, str]]:
    rows = session.scalars(select(JobEvent).order_by(JobEvent.id))
    return [(event.kind, event.message) for event in rows]


@pytest.mark.parametrize("how", ["admin", "cli"])
def test_a_draft_built_midweek_is_sent_by_the_next_weekly_run(
    how, app, admin, session, runner, smtp_server
):
    _start_service(session)
    clock.freeze(WEDNESDAY_W49)
    _build_by_hand(how, app, admin, runner)
    draft = session.scalars(select(Issue)).one()
    # It belongs to the run that will send it: Monday of W50.
    assert (draft.period, draft.status) == ("2026-W50", IssueStatus.DRAFT)
    assert draft.period == "2026-W50" and "Monday, 7 December 2026" in draft.text
    clock.freeze(THURSDAY_W49)
    late = _add_item(session, "Kyoto autumn leaves peak")  # after the build

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)

    assert _recipients(smtp_server) == READERS  # confirmed only, one each
    assert _subjects(smtp_server) == {draft.subject}
    session.expire_all()
    assert session.get(Issue, draft.id).status == IssueStatus.SENT
    assert session.get(Item, late.id).issue_id is None  # waits for the next issue
    assert session.scalar(select(func.count()).select_from(Issue)) == 1
    assert _events(session) == []

    # Idempotent: the same week's run again (a re-fired job, a restart) sends nothing new.
    clock.freeze(MONDAY_W50 + timedelta(hours=1))
    schedule.weekly_digest_job(app)
    assert schedule.catch_up(app, schedule.build_scheduler(app)).action == "none"
    assert len(smtp_server.received) == 3
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Issue)) == 1

    # The item that came in after the build goes out with the next week's issue.
    smtp_server.clear()
    clock.freeze(MONDAY_W51)
    schedule.weekly_digest_job(app)
    session.expire_all()
    following = session.scalar(select(Issue).where(Issue.period == "2026-W51"))
    assert following.number == 2 and following.status == IssueStatus.SENT
    assert session.get(Item, late.id).issue_id == following.id
    assert _recipients(smtp_server) == READERS
    assert _subjects(smtp_server) == {following.subject}
    assert following.period == "2026-W51" and "Monday, 14 December 2026" in following.text


def test_a_draft_of_an_earlier_week_is_sent_once_and_the_week_counts_as_done(
    app, admin, session, runner, smtp_server
):
    # What "Build now" made before periods followed the schedule, and what an explicit
    # `digest build --period` still makes: a W49 draft, built after W49's run.
    _start_service(session)
    clock.freeze(WEDNESDAY_W49)
    _build_by_hand("cli", app, admin, runner, "--period", "2026-W49")
    draft = session.scalars(select(Issue)).one()
    assert draft.period == "2026-W49"
    clock.freeze(THURSDAY_W49)
    late = _add_item(session, "Kyoto autumn leaves peak")

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)

    assert _recipients(smtp_server) == READERS
    assert _subjects(smtp_server) == {draft.subject}  # as built, previewed and test-sent
    session.expire_all()
    assert session.get(Issue, draft.id).status == IssueStatus.SENT
    ((kind, message),) = _events(session)
    assert kind == "sent_draft"
    assert message.startswith("2026-W50: the weekly run sends draft #1 (2026-W49, built ")
    assert "items that came in after it was built go out with the next issue" in message

    # The week is done: a second run does not build a W50 issue from the late item.
    schedule.weekly_digest_job(app)
    assert weekly.check_last_week(session, app.config, MONDAY_W50 + timedelta(hours=1)) == (
        weekly.CatchUp("none", "2026-W50", MONDAY_W50)
    )
    session.expire_all()
    assert len(smtp_server.received) == 3
    assert session.scalar(select(func.count()).select_from(Issue)) == 1
    assert session.get(Item, late.id).issue_id is None
    assert [kind for kind, _ in _events(session)] == ["sent_draft"]

    clock.freeze(MONDAY_W51)
    schedule.weekly_digest_job(app)
    session.expire_all()
    assert session.get(Item, late.id).issue.period == "2026-W51"
    assert len(smtp_server.received) == 6


def test_only_the_newest_draft_is_sent_and_older_ones_are_reported(
    app, admin, session, runner, smtp_server
):
    _start_service(session)
    clock.freeze(WEDNESDAY_W49)
    _build_by_hand("cli", app, admin, runner, "--period", "2026-W47")
    _add_item(session, "Sapporo snow festival dates")
    _build_by_hand("cli", app, admin, runner, "--period", "2026-W48")
    older, newest = session.scalars(select(Issue).order_by(Issue.number)).all()

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)
    schedule.weekly_digest_job(app)  # a second run of the same week

    assert _recipients(smtp_server) == READERS
    assert _subjects(smtp_server) == {newest.subject}
    session.expire_all()
    assert session.get(Issue, newest.id).status == IssueStatus.SENT
    assert session.get(Issue, older.id).status == IssueStatus.DRAFT
    events = dict(_events(session))
    assert [kind for kind, _ in _events(session)] == ["sent_draft", "older_drafts"]
    assert events["older_drafts"].startswith(
        "2026-W50: draft issue(s) #1 (2026-W47) were not sent: the weekly run sends one "
        "issue, #2, and never an older draft."
    )

    # The stale draft never goes out in a later week in place of that week's issue.
    clock.freeze(THURSDAY_W49 + timedelta(days=7))
    late = _add_item(session, "Fukuoka ramen fair")
    clock.freeze(MONDAY_W51)
    schedule.weekly_digest_job(app)
    session.expire_all()
    assert session.get(Issue, older.id).status == IssueStatus.DRAFT
    assert session.get(Item, late.id).issue.status == IssueStatus.SENT
    assert len(smtp_server.received) == 6


def test_a_week_whose_run_was_missed_names_the_waiting_draft(
    app, admin, session, runner, smtp_server
):
    _start_service(session)
    clock.freeze(WEDNESDAY_W49)
    _build_by_hand("admin", app, admin, runner)

    clock.freeze(MONDAY_W50 + timedelta(days=1))  # the worker was down on Monday
    decision = schedule.catch_up(app, schedule.build_scheduler(app))

    assert decision.action == "missed"
    ((kind, message),) = _events(session)
    assert kind == "missed_week"
    assert message.endswith(
        "Draft #1 (2026-W50) still waits: send it with `flask --app wsgi digest send 1`, or "
        "the next weekly run sends it."
    )
    clock.freeze(MONDAY_W51)
    schedule.weekly_digest_job(app)
    assert _recipients(smtp_server) == READERS
    session.expire_all()
    assert session.scalar(select(Issue.status)) == IssueStatus.SENT


# --- what the admin pages promise -------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "label", "send"),
    [
        (MONDAY_W49 - timedelta(minutes=1), "Week 49, 2026", "2026-11-30 08:00 JST"),
        # No worker made the 08:00 run: the catch-up at its start sends it (within grace).
        (MONDAY_W49 + timedelta(seconds=1), "Week 49, 2026", "2026-11-30 08:00 JST"),
        (MONDAY_W49 + timedelta(hours=6, seconds=1), "Week 50, 2026", "2026-12-07 08:00 JST"),
        (datetime(2026, 12, 6, 14, 59, tzinfo=UTC), "Week 50, 2026", "2026-12-07 08:00 JST"),
    ],
)
def test_the_pages_label_the_next_issue_with_the_week_of_its_send(
    now, label, send, app, admin, session, smtp_server
):
    clock.freeze(MONDAY_W49 - timedelta(days=1))
    add_subscribers(session, 3)
    _add_item(session, "Shinkansen timetable change")
    clock.freeze(now)

    page = admin.get("/admin/next").get_data(as_text=True)
    dashboard = admin.get("/admin/").get_data(as_text=True)

    assert "The next issue is not built yet" in page
    subject = "Japan Weekly: Shinkansen timetable change"
    assert f'<span class="label">{label}</span> {subject}' in page
    assert f"Scheduled send: {send}" in page
    assert f"{label} · <strong>{subject}</strong>" in dashboard
    assert f'<p class="big">{send}</p>' in dashboard

    # What "Build now" makes is what the page showed, and the scheduled run sends it.
    post(admin, "/admin/next/build")
    issue = session.scalars(select(Issue)).one()
    assert period_label(issue.period) == label and issue.subject == subject
    clock.freeze(datetime.strptime(send, "%Y-%m-%d %H:%M JST").replace(tzinfo=JST))
    schedule.weekly_digest_job(app)
    assert _subjects(smtp_server) == {issue.subject}
    assert len(smtp_server.received) == 3


def test_an_issue_sent_ahead_by_hand_leaves_its_week_to_the_weekly_run(
    app, admin, session, smtp_server
):
    # Issue 12: an early "Send now" used up the W50 run (next send moved to W51).
    _start_service(session)
    post(admin, "/admin/next/build")  # Tuesday of W49: the W50 issue
    post(admin, "/admin/issues/1/send", {"confirm_recipients": "3"})  # sent ahead of its Monday run
    schedule.sender_job(app)
    assert len(smtp_server.received) == 3
    session.expire_all()
    assert session.get(Issue, 1).kind == "extra"
    assert ">extra</span>" in admin.get("/admin/issues").get_data(as_text=True)
    clock.freeze(WEDNESDAY_W49)
    _add_item(session, "Kyoto autumn leaves peak")

    page = admin.get("/admin/next").get_data(as_text=True)
    assert '<span class="label">Week 50, 2026</span> Japan Weekly: Kyoto autumn leaves peak' in page
    assert "Scheduled send: 2026-12-07 08:00 JST" in page
    post(admin, "/admin/next/build")
    session.expire_all()
    second = session.scalar(select(Issue).where(Issue.number == 2))
    assert (second.period, second.kind, second.status) == ("2026-W50", "scheduled", "draft")

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)  # the W50 run still sends the newer items
    assert len(smtp_server.received) == 6
    assert {r.message()["Subject"] for r in smtp_server.received[3:]} == {second.subject}


def test_the_next_issue_page_names_drafts_the_worker_will_not_send(app, admin, session, runner):
    _start_service(session)
    clock.freeze(WEDNESDAY_W49)
    _build_by_hand("cli", app, admin, runner, "--period", "2026-W48")
    _add_item(session, "Sapporo snow festival dates")
    _build_by_hand("cli", app, admin, runner)  # the W50 issue, #2

    page = admin.get("/admin/next").get_data(as_text=True)

    assert "Issue <strong>#2</strong> for 2026-W50 is built" in page
    assert "Scheduled send: 2026-12-07 08:00 JST" in page
    assert "Other drafts, which the worker does not send" in page
    assert '<a href="/admin/issues/1">#1 (2026-W48)</a>' in page
    # "Build (keeps this draft)" keeps it: no third issue.
    kept = post(admin, "/admin/next/build", follow_redirects=True)
    assert kept.status_code == 200
    assert "Issue #2 (2026-W50) is built." in kept.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Issue)) == 2


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("2026-W49", datetime(2026, 12, 4, 17, 30, tzinfo=JST)),  # this week's run
        ("2026-W47", datetime(2026, 12, 4, 17, 30, tzinfo=JST)),  # overdue: the next run
        ("2026-W52", datetime(2026, 12, 25, 17, 30, tzinfo=JST)),  # a later week's run
    ],
)
def test_run_time_of_a_period(period, expected):
    config = {
        "MAILER_DIGEST_DAY": "friday",
        "MAILER_DIGEST_TIME": "17:30",
        "MAILER_TIMEZONE": "Asia/Tokyo",
    }
    assert weekly.run_time_of(config, WEDNESDAY_W49, period) == expected


def test_a_build_after_a_missed_run_is_sent_by_the_catch_up(app, session, runner, smtp_server):
    # The fresh-user report: the worker was down at Monday 08:00 of W50; at 09:00 the
    # operator built an issue, which was labelled W51 and took every item; the worker
    # started at 09:30, caught up W50, found no new items and nobody got a digest.
    _start_service(session)
    clock.freeze(MONDAY_W50 + timedelta(hours=1))
    with app.app_context():
        built = runner.invoke(args=["digest", "build"], catch_exceptions=False)
    assert "Issue #1 for 2026-W50 built" in built.output, built.output

    clock.freeze(MONDAY_W50 + timedelta(hours=1, minutes=30))
    decision = schedule.catch_up(app, schedule.build_scheduler(app))
    assert decision == weekly.CatchUp("run", "2026-W50", MONDAY_W50)
    schedule.weekly_digest_job(app)  # what the scheduler runs at once after a "run"

    assert _recipients(smtp_server) == READERS
    session.expire_all()
    issue = session.scalars(select(Issue)).one()
    assert (issue.period, issue.status) == ("2026-W50", IssueStatus.SENT)
    assert _events(session) == []


def test_a_build_past_the_grace_of_a_missed_run_is_next_weeks(app, session):
    _start_service(session)
    clock.freeze(MONDAY_W50 + timedelta(hours=6, seconds=1))  # MAILER_MISFIRE_GRACE: 6 h
    assert weekly.build_period(session, app.config, clock.now()) == "2026-W51"


def test_the_weekly_run_does_not_send_a_draft_with_preflight_errors(
    app, session, runner, smtp_server
):
    _start_service(session)
    clock.freeze(WEDNESDAY_W49)
    with app.app_context():
        result = runner.invoke(args=["digest", "build"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    draft = session.scalars(select(Issue)).one()
    draft.html = draft.html.replace("</body>", '<a href="javascript:alert(1)">x</a></body>')
    session.commit()

    clock.freeze(MONDAY_W50)
    schedule.weekly_digest_job(app)
    schedule.weekly_digest_job(app)  # a re-fired run records it once

    assert smtp_server.received == []
    session.expire_all()
    assert session.get(Issue, draft.id).status == IssueStatus.DRAFT
    ((kind, message),) = _events(session)
    assert kind == "preflight_blocked"
    assert message.startswith(
        "2026-W50: issue #1 was not sent at the weekly run: the preflight check found "
        "errors: [unsafe-uri] javascript: URI in the HTML: javascript:alert(1)."
    )
