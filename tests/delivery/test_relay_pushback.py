"""Relay pushback (issue 16): a relay that refuses everything from us pauses the send with its
reason, charges no subscriber, and the send resumes by itself once the pause is over.

A real SMTP server on loopback (tests/support/smtpd.py) is scripted to refuse every recipient
("*") for a while and then accept; SQLite and PostgreSQL; the time is moved with the settable
clock, never waited for.
"""

import html
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailer import clock, scheduler
from mailer.delivery import dispatch
from mailer.delivery import enqueue as queue
from mailer.delivery import issues as states
from mailer.delivery.ledger import Rules
from mailer.delivery.smtp.settings import is_pushback
from mailer.delivery.transactional import queue_mail
from mailer.extensions import db
from mailer.models import Delivery, Issue, JobEvent, Subscriber, TransactionalMail
from tests.support.admin import post, signed_in_client
from tests.support.deliveries import (
    add_subscribers,
    deliveries_by_email,
    make_issue,
    message_ids,
)

T0 = datetime(2026, 12, 7, 9, 10, tzinfo=UTC)
QUOTA = "452 4.5.3 Daily sending quota exceeded"
PUSHBACK_REPLIES = [QUOTA, "421 4.7.0 Try again later", "451 4.7.1 rate limited"]


def emails(count: int) -> list[str]:
    return [f"p{i:03d}@example.com" for i in range(count)]


def the_issue(session) -> Issue:
    session.expire_all()
    return session.scalars(select(Issue)).one()


def assert_every_message_arrived_once(smtp_server, addresses) -> None:
    """Each address got exactly one message, and no Message-ID came twice."""
    for address in addresses:
        assert len(smtp_server.messages_to(address)) == 1, address
    ids = message_ids(smtp_server.received)
    assert len(ids) == len(set(ids)) == len(addresses)


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (452, "4.5.3 Daily sending quota exceeded", True),
        (421, "4.7.0 Try again later, closing connection", True),
        (451, "4.7.1 rate limited", True),
        (450, "Too many messages, slow down", True),
        (421, "Too many concurrent SMTP connections", True),
        (451, "4.7.1 greylisted, try later", False),  # about this recipient
        (451, "4.7.1 try later", False),
        (452, "4.2.2 Mailbox full, quota exceeded", False),  # the recipient's mailbox
        (421, "4.3.2 shutting down", False),  # a relay error, retried as one
        (550, "5.7.1 rate limited", False),  # permanent: a bounce
        (None, "connection refused", False),
    ],
)
def test_which_replies_are_the_relay_pushing_back(code, text, expected):
    assert is_pushback(code, text) is expected


def test_each_pause_of_a_send_lasts_twice_as_long_up_to_an_hour():
    first = timedelta(minutes=15)
    lengths = [states.pause_length(n, first) for n in range(1, 6)]
    assert lengths == [timedelta(minutes=m) for m in (15, 30, 60, 60, 60)]


@pytest.mark.parametrize("reply", PUSHBACK_REPLIES)
def test_a_quota_refusal_pauses_the_send_and_the_worker_resumes_it(
    app_config, request, reply, caplog
):
    caplog.set_level(logging.INFO, logger="mailer")
    app_config["MAILER_SMTP_CONNECTIONS"] = 2
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    addresses = emails(30)
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, addresses)
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)
        smtp_server.script("*", reply)

        summary = dispatch.send_pending(app)

        issue = the_issue(db.session)
        assert (summary.sent, summary.paused, summary.relay_errors) == (0, [1], 0)
        assert (issue.status, issue.status_reason) == ("paused", "relay-pushback")
        assert issue.relay_reply == reply
        assert issue.resume_at == T0 + timedelta(minutes=15)
        assert issue.pushback_pauses == 1
        # It stopped at once: at most a message or two per connection met the refusal.
        assert 1 <= len(smtp_server.refused) <= 4
        rows = deliveries_by_email(db.session)
        held = [row for row in rows.values() if row.status == "deferred"]
        assert len(held) == summary.deferred == len(smtp_server.refused)
        for row in held:  # no attempt charged, no retry window started, due on resume
            assert (row.attempts, row.retry_until, row.next_attempt_at) == (0, None, None)
            assert f"{row.last_code} {row.last_reply}" == reply
        assert {row.status for row in rows.values()} == {"queued", "deferred"}
        soft = db.session.scalars(select(Subscriber.soft_failures_in_row)).all()
        assert set(soft) == {0}
        events = db.session.scalars(select(JobEvent)).all()
        assert [e.kind for e in events] == ["relay_pushback"]
        assert reply in events[0].message
        # Logged once per pause, not once per refused message.
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            f"Issue #1 paused by the relay (relay-pushback): {reply}; the worker resumes it "
            "at 2026-12-07 09:25 UTC"
        ]

        # Before the pause is over the worker leaves it alone: no more refusals.
        clock.freeze(T0 + timedelta(minutes=14))
        scheduler.sender_job(app)
        assert the_issue(db.session).status == "paused"
        refused = len(smtp_server.refused)

        smtp_server.unscript("*")  # the quota window is over: the relay accepts again
        clock.freeze(T0 + timedelta(minutes=15, seconds=1))
        scheduler.sender_job(app)

        issue = the_issue(db.session)
        assert issue.status == "sent"
        assert (issue.resume_at, issue.refusal_streak) == (None, 0)
        assert len(smtp_server.refused) == refused
        assert_every_message_arrived_once(smtp_server, addresses)
        counts = queue.status_counts(db.session, issue.id)
        assert counts == {"queued": 0, "sent": 30, "deferred": 0, "failed": 0, "skipped": 0}
        attempts = db.session.scalars(select(Delivery.attempts)).all()
        assert set(attempts) == {1}  # the refusals cost nobody an attempt
        assert set(db.session.scalars(select(Subscriber.soft_failures_in_row)).all()) == {0}
        assert set(db.session.scalars(select(Subscriber.status)).all()) == {"confirmed"}


def test_refusals_in_a_row_pause_the_send_and_give_back_their_attempts(app_config, request):
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app_config["MAILER_PUSHBACK_AFTER"] = 5
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    addresses = emails(12)
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, addresses)
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)
        # Nothing in this text says quota or rate: only the run of refusals tells.
        smtp_server.script("*", "451 4.3.0 temporarily unavailable, try later")

        summary = dispatch.send_pending(app)

        issue = the_issue(db.session)
        assert (issue.status, issue.status_reason) == ("paused", "relay-pushback")
        assert issue.relay_reply == "451 4.3.0 temporarily unavailable, try later"
        assert len(smtp_server.refused) == summary.deferred == 5
        held = [row for row in deliveries_by_email(db.session).values() if row.status != "queued"]
        assert len(held) == 5
        for row in held:
            assert (row.status, row.attempts, row.retry_until, row.next_attempt_at) == (
                "deferred",
                0,
                None,
                None,
            )

        # A second pause of the same send lasts twice as long.
        clock.freeze(T0 + timedelta(minutes=15))
        scheduler.sender_job(app)
        issue = the_issue(db.session)
        assert (issue.status, issue.pushback_pauses) == ("paused", 2)
        assert issue.resume_at == T0 + timedelta(minutes=15 + 30)
        assert len(smtp_server.refused) == 10

        smtp_server.unscript("*")
        clock.freeze(T0 + timedelta(minutes=45))
        scheduler.sender_job(app)
        assert the_issue(db.session).status == "sent"
        assert_every_message_arrived_once(smtp_server, addresses)
        assert set(db.session.scalars(select(Delivery.attempts)).all()) == {1}


def test_a_full_mailbox_is_deferred_alone_while_the_rest_go_on(app_config, request):
    app_config["MAILER_SMTP_CONNECTIONS"] = 2
    app_config["MAILER_PUSHBACK_AFTER"] = 3
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    addresses = emails(20)
    full = addresses[7]
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, addresses)
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)
        smtp_server.script(full, "452 4.2.2 Mailbox full, quota exceeded")

        summary = dispatch.send_pending(app)

        issue = the_issue(db.session)
        assert (summary.sent, summary.deferred, summary.paused) == (19, 1, [])
        assert (issue.status, issue.status_reason, issue.refusal_streak) == ("sending", None, 0)
        row = deliveries_by_email(db.session)[full]
        assert (row.status, row.attempts, row.last_code) == ("deferred", 1, 452)
        assert row.next_attempt_at == T0 + timedelta(minutes=1)  # its own backoff
        assert row.retry_until is not None
        assert_every_message_arrived_once(smtp_server, [a for a in addresses if a != full])
        assert db.session.scalars(select(JobEvent)).all() == []


def test_one_full_mailbox_retried_alone_never_pauses_the_send(app_config, request):
    app_config["MAILER_PUSHBACK_AFTER"] = 3
    app_config["MAILER_RETRY_FOR"] = 7200
    app_config["MAILER_SOFT_BOUNCE_LIMIT"] = 1
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    addresses = emails(4)
    full = addresses[-1]  # the last one: nothing is accepted after its refusals
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, addresses)
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)
        smtp_server.script(full, "452 4.2.2 Mailbox full")
        dispatch.send_pending(app)
        moment = T0
        for _retry in range(6):  # its own backoff: 1, 2, 4, 8, 16, 32 minutes
            moment = deliveries_by_email(db.session)[full].next_attempt_at or moment
            clock.freeze(moment)
            scheduler.sender_job(app)
            issue = the_issue(db.session)
            assert issue.status in ("sending", "sent")
            assert issue.refusal_streak <= 1

        row = deliveries_by_email(db.session)[full]
        assert (row.status, row.attempts) == ("deferred", 7)
        assert row.next_attempt_at == T0 + timedelta(minutes=127)
        clock.freeze(row.next_attempt_at)  # past its retry window (2 h): it fails
        scheduler.sender_job(app)
        row = deliveries_by_email(db.session)[full]
        assert (row.status, row.attempts) == ("failed", 8)
        assert the_issue(db.session).status == "sent"
        assert db.session.get(Subscriber, row.subscriber_id).status == "bounced"  # soft limit
        assert len(smtp_server.refused) == 8
        assert db.session.scalars(select(JobEvent.kind)).all() == []


def test_resume_time_of_a_send_that_reached_the_hourly_cap_is_the_next_hour(app, session):
    clock.freeze(T0)
    add_subscribers(session, emails(2))
    issue = make_issue(session)
    dispatch.start_issue(session, 1)
    session.execute(
        Delivery.__table__.update().values(status="sent", sent_at=T0 - timedelta(minutes=5))
    )
    session.commit()
    rules = Rules.from_config({**app.config, "MAILER_SEND_HOURLY_CAP": 2})
    connection = session.connection()
    assert states.resume_time(connection, T0, 1, rules) == datetime(2026, 12, 7, 10, tzinfo=UTC)
    roomy = Rules.from_config({**app.config, "MAILER_SEND_HOURLY_CAP": 3})
    assert states.resume_time(connection, T0, 2, roomy) == T0 + timedelta(minutes=30)
    assert issue.id is not None


def test_digest_send_returns_with_status_3_the_reason_and_when_it_goes_on(app, runner, smtp_server):
    clock.freeze(T0)
    addresses = emails(10)
    with app.app_context():
        add_subscribers(db.session, addresses)
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)  # started; `digest send` goes on with it
    smtp_server.script("*", QUOTA)

    result = runner.invoke(args=["digest", "send"])

    assert result.exit_code == 3, result.output
    assert "Issue #1: paused." in result.output
    assert f"paused by the relay (relay-pushback): {QUOTA}" in result.output
    assert "resumes it by itself at 2026-12-07 09:25 UTC (in 15 min)" in result.output
    assert "flask --app wsgi digest resume 1" in result.output
    assert "no subscriber was charged a soft bounce" in result.output

    resumed = runner.invoke(args=["digest", "resume", "1"])  # the admin does not wait

    assert resumed.exit_code == 0, resumed.output
    with app.app_context():
        issue = the_issue(db.session)
        assert (issue.status, issue.resume_at) == ("sending", None)
        held = db.session.scalars(select(Delivery).where(Delivery.status == "deferred")).all()
        assert held and all(row.next_attempt_at == T0 for row in held)  # due at once
    smtp_server.unscript("*")

    again = runner.invoke(args=["digest", "send", "1"])

    assert again.exit_code == 0, again.output
    assert "Issue #1: sent." in again.output
    assert_every_message_arrived_once(smtp_server, addresses)


def test_digest_send_held_back_by_the_hourly_cap_returns_with_status_3(app_config, request):
    app_config["MAILER_SEND_HOURLY_CAP"] = 3
    app = request.getfixturevalue("app")
    runner = app.test_cli_runner()
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, emails(5))
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)

    result = runner.invoke(args=["digest", "send"])

    assert result.exit_code == 3, result.output
    assert "Issue #1: sending." in result.output
    assert "waits for MAILER_SEND_HOURLY_CAP (3 messages an hour)" in result.output
    assert "goes on at 2026-12-07 10:10 UTC (in 60 min)" in result.output


def test_digest_pause_resume_and_cancel(app, runner, smtp_server):
    with app.app_context():
        add_subscribers(db.session, emails(2))
        make_issue(db.session)
        dispatch.start_issue(db.session, 1)

    assert runner.invoke(args=["digest", "pause", "1"]).exit_code == 0
    with app.app_context():
        issue = the_issue(db.session)
        assert (issue.status, issue.status_reason) == ("paused", "by `digest pause`")
    again = runner.invoke(args=["digest", "pause", "1"])
    assert again.exit_code == 1
    assert "issue #1 cannot be paused: cannot pause an issue that is paused" in again.output
    assert runner.invoke(args=["digest", "resume", "1"]).exit_code == 0
    assert runner.invoke(args=["digest", "cancel", "1"]).exit_code == 0
    with app.app_context():
        assert the_issue(db.session).status == "cancelled"
        assert set(db.session.scalars(select(Delivery.status)).all()) == {"skipped"}
    missing = runner.invoke(args=["digest", "resume", "9"])
    assert (missing.exit_code, "there is no issue #9" in missing.output) == (1, True)
    assert smtp_server.received == []


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def test_the_dashboard_shows_a_send_the_relay_paused_and_a_crawling_one(
    app_config, request, smtp_server
):
    app_config["MAILER_PUSHBACK_AFTER"] = 50
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    admin = signed_in_client(app, app.test_client())
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, emails(6))
        make_issue(db.session, number=1)
        make_issue(db.session, number=2)
        dispatch.start_issue(db.session, 1)
        smtp_server.script("*", "451 4.3.0 try later")  # a crawl: refused, not yet paused
        dispatch.send_pending(app)
        assert the_issue_numbered(db.session, 1).refusal_streak == 6

        page = html.unescape(admin.get("/admin/").get_data(as_text=True))
        assert (
            "The relay is refusing the messages of issue #1 (6 in a row so far), so the send "
            "crawls: 451 4.3.0 try later. Refused messages are retried from 2026-12-07 18:11 JST"
        ) in page

        states.change_issue_status(db.session, the_issue_numbered(db.session, 1), "cancel")
        db.session.commit()
        dispatch.start_issue(db.session, 2)
        smtp_server.unscript("*")
        smtp_server.script("*", QUOTA)
        dispatch.send_pending(app)
        assert the_issue_numbered(db.session, 2).status == "paused"

    page = html.unescape(admin.get("/admin/").get_data(as_text=True))
    assert (
        f"The send of issue #2 is paused by the relay (relay-pushback): {QUOTA}. The worker "
        "resumes it by itself at 2026-12-07 18:25 JST; resume it now or cancel it on its page."
    ) in page
    assert "is refusing the messages" not in page
    detail = html.unescape(admin.get("/admin/issues/2").get_data(as_text=True))
    assert f"The relay's last refusal: <code>{QUOTA}</code>" in detail
    assert "resumes by itself at 2026-12-07 18:25 JST" in detail

    # The admin does not wait for the pause to end: Resume, and the refused go out at once.
    smtp_server.unscript("*")
    smtp_server.clear()
    assert post(admin, "/admin/issues/2/resume").status_code == 302
    with app.app_context():
        issue = the_issue_numbered(db.session, 2)
        assert (issue.status, issue.resume_at) == ("sending", None)
        scheduler.sender_job(app)
        assert the_issue_numbered(db.session, 2).status == "sent"
    assert_every_message_arrived_once(smtp_server, emails(6))
    page = html.unescape(admin.get("/admin/").get_data(as_text=True))
    assert "is paused by the relay" not in page  # (the worker events still list it)


def the_issue_numbered(session, number: int) -> Issue:
    session.expire_all()
    return session.scalars(select(Issue).where(Issue.number == number)).one()


def test_confirmation_mails_the_relay_refuses_wait_and_are_never_dropped(
    app, session, smtp_server, admin_client
):
    clock.freeze(T0)
    addresses = ["c1@example.com", "c2@example.com", "c3@example.com"]
    for address in addresses:
        queue_mail(session, kind="confirm", recipient=address, body=b"Subject: hi\r\n\r\nhi\r\n",
                   subscriber_id=None)  # fmt: skip
    session.commit()
    smtp_server.script("*", QUOTA)

    scheduler.signup_job(app)

    assert len(smtp_server.refused) == 1  # it stopped at the first pushback
    rows = {m.recipient: m for m in session.scalars(select(TransactionalMail))}
    first = rows["c1@example.com"]
    assert (first.status, first.last_code, first.last_reply) == (
        "deferred",
        452,
        "4.5.3 Daily sending quota exceeded",
    )
    for row in rows.values():  # no attempt, no retry window: the relay's quota drops nobody
        assert (row.attempts, row.retry_until) == (0, None)
        assert row.next_attempt_at == T0 + timedelta(minutes=15)
    page = html.unescape(admin_client.get("/admin/").get_data(as_text=True))
    assert (
        f"1 confirmation mail(s) wait because the relay refused them: {QUOTA}. They are "
        "tried again from 2026-12-07 18:25 JST; none is dropped."
    ) in page

    clock.freeze(T0 + timedelta(minutes=14))
    scheduler.signup_job(app)
    assert len(smtp_server.refused) == 1  # not before the wait is over

    # Still refused: the next wait is twice as long (as long as the mails have waited).
    clock.freeze(T0 + timedelta(minutes=15))
    scheduler.signup_job(app)
    session.expire_all()
    waits = set(session.scalars(select(TransactionalMail.next_attempt_at)).all())
    assert waits == {T0 + timedelta(minutes=30)}

    smtp_server.unscript("*")
    clock.freeze(T0 + timedelta(minutes=30))
    scheduler.signup_job(app)

    session.expire_all()
    mails = session.scalars(select(TransactionalMail)).all()
    assert {(m.status, m.attempts) for m in mails} == {("sent", 1)}
    assert_every_message_arrived_once_raw(smtp_server, addresses)


def assert_every_message_arrived_once_raw(smtp_server, addresses) -> None:
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(addresses)
