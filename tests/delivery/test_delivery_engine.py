"""The delivery engine end to end: real SMTP server on loopback, SQLite and PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from mailer import clock
from mailer.delivery import dispatch as engine
from mailer.delivery import enqueue as queue
from mailer.delivery import issues as states
from mailer.delivery import message as mime
from mailer.delivery.errors import InvalidTransition, NothingToSend
from mailer.extensions import db
from mailer.models import (
    ConsentEvent,
    Delivery,
    Issue,
    JobEvent,
    Subscriber,
    SubscriberStatus,
    TransactionalMail,
)
from mailer.subscriptions.service import unsubscribe_subscriber
from mailer.subscriptions.tokens import read_unsubscribe_token
from tests.support.deliveries import (
    add_subscribers,
    deliveries_by_email,
    make_issue,
    message_ids,
    wait_for,
)

T0 = clock.now().replace(microsecond=0)


def start(session, number=1):
    """Enqueue and start issue ``number`` the way `digest send` does."""
    issue, queued = engine.start_issue(session, number)
    return issue, queued


def test_send_mails_each_confirmed_subscriber_once(app, session, smtp_server):
    confirmed = ["ann@example.com", "bob@example.org", "chie@example.jp"]
    add_subscribers(session, confirmed)
    add_subscribers(session, ["pending@example.com"], SubscriberStatus.PENDING)
    add_subscribers(session, ["left@example.com"], SubscriberStatus.UNSUBSCRIBED)
    make_issue(session)
    _issue, queued = start(session)
    assert queued == 3

    summary = engine.send_pending(app)

    assert (summary.sent, summary.failed, summary.deferred) == (3, 0, 0)
    assert summary.issues == {1: "sent"}
    received = smtp_server.received
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(confirmed)
    assert len(set(message_ids(received))) == 3
    for item in received:
        message = item.message()
        assert message["To"] == item.rcpt_tos[0]
        token = message["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
        claim = read_unsubscribe_token(app.config["SECRET_KEY"], token)
        subscriber = session.get(Subscriber, claim.subscriber_id)
        assert subscriber.email == item.rcpt_tos[0]
        # The bytes that arrived are the full reference build (dot-stuffing undone by SMTP).
        issue = session.scalars(select(Issue)).one()
        url = message["List-Unsubscribe"].strip("<>")
        expected = mime.build_message(issue, subscriber.id, subscriber.email, url, app.config)
        assert item.data == expected
    rows = deliveries_by_email(session)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.last_code == 250 and r.sent_at is not None for r in rows.values())
    assert session.scalar(select(Issue.status)) == "sent"

    again = engine.send_pending(app)
    assert (again.sent, again.issues) == (0, {})
    assert len(smtp_server.received) == 3


def test_451_deferred_then_sent_550_failed_with_reply(app, session, smtp_server):
    clock.freeze(T0)
    emails = ["ok1@example.com", "grey@example.com", "gone@example.com", "ok2@example.com"]
    add_subscribers(session, emails)
    smtp_server.script("grey@example.com", "451 4.7.1 greylisted, try later", times=1)
    smtp_server.script("gone@example.com", "550 5.1.1 no such user here")
    make_issue(session)
    start(session)

    first = engine.send_pending(app)

    assert (first.sent, first.deferred, first.failed) == (2, 1, 1)
    assert first.issues == {1: "sending"}
    rows = deliveries_by_email(session)
    grey, gone = rows["grey@example.com"], rows["gone@example.com"]
    assert (grey.status, grey.last_code, grey.attempts) == ("deferred", 451, 1)
    assert grey.last_reply == "4.7.1 greylisted, try later"
    assert grey.next_attempt_at == T0 + timedelta(minutes=1)
    assert (gone.status, gone.last_code, gone.last_reply) == (
        "failed",
        550,
        "5.1.1 no such user here",
    )
    assert session.get(Subscriber, gone.subscriber_id).status == "bounced"
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "ok1@example.com",
        "ok2@example.com",
    ]

    assert engine.send_pending(app).sent == 0  # not due yet
    clock.freeze(T0 + timedelta(minutes=1, seconds=1))
    second = engine.send_pending(app)

    assert (second.sent, second.issues) == (1, {1: "sent"})
    assert deliveries_by_email(session)["grey@example.com"].status == "sent"
    assert len(smtp_server.messages_to("grey@example.com")) == 1
    assert smtp_server.messages_to("gone@example.com") == []
    third = engine.send_pending(app)
    assert (third.sent, len(smtp_server.received)) == (0, 3)


def test_every_failure_mode_ends_in_the_right_state(app_config, smtp_server, request):
    app_config["MAILER_SMTP_TIMEOUT"] = 1.0
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    clock.freeze(T0)
    scripts = {
        "closing@example.com": ("421 4.3.2 shutting down", 1),
        "grey@example.com": ("451 4.7.1 try later", None),
        "full@example.com": ("452 4.2.2 mailbox full", None),
        "unknown@example.com": ("550 5.1.1 unknown user", None),
        "quota@example.com": ("552 5.2.2 over quota", None),
        "dropped@example.com": ("drop", 1),
        "slow@example.com": ("hang:3", 1),
    }
    normal = [f"n{i}@example.com" for i in range(8)]
    emails = normal[:3] + list(scripts) + normal[3:]
    with app.app_context():
        add_subscribers(db.session, emails)
        for address, (reply, times) in scripts.items():
            smtp_server.script(address, reply, times=times)
        make_issue(db.session)
        start(db.session)

        summary = engine.send_pending(app)

        rows = deliveries_by_email(db.session)
        states_now = {email: (rows[email].status, rows[email].last_code) for email in scripts}
        assert states_now == {
            "closing@example.com": ("deferred", 421),
            "grey@example.com": ("deferred", 451),
            "full@example.com": ("deferred", 452),
            "unknown@example.com": ("failed", 550),
            "quota@example.com": ("failed", 552),
            "dropped@example.com": ("deferred", None),
            "slow@example.com": ("deferred", None),
        }
        assert "timed out" in rows["slow@example.com"].last_reply
        assert "closed" in rows["dropped@example.com"].last_reply
        assert all(rows[e].status == "sent" for e in normal)
        assert (summary.sent, summary.relay_errors) == (8, 3)
        accepted = {r.rcpt_tos[0] for r in smtp_server.received}
        sent = {email for email, row in rows.items() if row.status == "sent"}
        assert sent <= accepted
        refused = set(scripts) - {"slow@example.com"}  # the slow one may still land late
        assert not accepted & refused

        clock.freeze(T0 + timedelta(minutes=5))
        engine.send_pending(app)
        rows = deliveries_by_email(db.session)
        for email in ("closing@example.com", "dropped@example.com", "slow@example.com"):
            assert rows[email].status == "sent", email
        assert (rows["grey@example.com"].status, rows["grey@example.com"].attempts) == (
            "deferred",
            2,
        )
        assert session_issue_status(db.session) == "sending"


def session_issue_status(session) -> str:
    session.expire_all()
    return session.scalar(select(Issue.status))


def test_retry_window_ends_in_failure_and_soft_bounce_suppression(app_config, request):
    app_config["MAILER_RETRY_FOR"] = 600
    app_config["MAILER_SOFT_BOUNCE_LIMIT"] = 1
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    smtp_server.script("full@example.com", "452 4.2.2 mailbox full")
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, ["full@example.com", "fine@example.com"])
        make_issue(db.session)
        start(db.session)
        engine.send_pending(app)
        row = deliveries_by_email(db.session)["full@example.com"]
        assert (row.status, row.retry_until) == ("deferred", T0 + timedelta(seconds=600))

        clock.freeze(T0 + timedelta(seconds=601))
        summary = engine.send_pending(app)

        row = deliveries_by_email(db.session)["full@example.com"]
        assert (row.status, row.last_code, row.attempts) == ("failed", 452, 2)
        assert summary.suppressed == 1
        subscriber = db.session.get(Subscriber, row.subscriber_id)
        assert (subscriber.status, subscriber.soft_failures_in_row) == ("bounced", 1)
        event_ = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == "bounced"))
        assert "452" in event_.one().detail
        assert summary.issues == {1: "sent"}


def test_unsubscribe_during_a_send_is_not_mailed(app_config, request):
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    emails = [f"u{i}@example.com" for i in range(8)]
    smtp_server.script("u2@example.com", "hang:1", times=1)  # holds the sender a moment
    with app.app_context():
        ids = add_subscribers(db.session, emails)
        make_issue(db.session)
        start(db.session)
    worker = threading.Thread(target=engine.send_pending, args=(app,))
    worker.start()
    wait_for(lambda: len(smtp_server.received) >= 2, "the first two messages")
    with app.app_context():
        leaving = db.session.get(Subscriber, ids[6])
        unsubscribe_subscriber(db.session, leaving, source="test")
        db.session.commit()
    worker.join()

    with app.app_context():
        rows = deliveries_by_email(db.session)
        assert rows["u6@example.com"].status == "skipped"
        assert rows["u6@example.com"].last_reply == "not sent: the subscriber is unsubscribed now"
        assert all(rows[e].status == "sent" for e in emails if e != "u6@example.com")
        assert session_issue_status(db.session) == "sent"
    assert smtp_server.messages_to("u6@example.com") == []


def test_pause_mid_send_then_resume_sends_the_rest_once(app_config, request):
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    emails = [f"p{i}@example.com" for i in range(10)]
    smtp_server.script("p3@example.com", "hang:1", times=1)
    with app.app_context():
        add_subscribers(db.session, emails)
        make_issue(db.session)
        start(db.session)
    worker = threading.Thread(target=engine.send_pending, args=(app,))
    worker.start()
    wait_for(lambda: len(smtp_server.received) >= 3, "the first three messages")
    with app.app_context():
        issue = db.session.scalars(select(Issue)).one()
        states.change_issue_status(db.session, issue, "pause", reason="by test")
        db.session.commit()
    worker.join()

    with app.app_context():
        rows = deliveries_by_email(db.session)
        sent_before = sorted(e for e, r in rows.items() if r.status == "sent")
        # The pause lands while p3 is on the wire (or just before it); the sender checks each
        # row one message ahead (its envelope is pipelined), so p4 may go out too, no more.
        assert sent_before in (emails[:3], emails[:4], emails[:5])
        assert all(r.claimed_until is None for r in rows.values())  # leases given back
        assert engine.send_pending(app).sent == 0  # paused: nothing goes out
        issue = db.session.scalars(select(Issue)).one()
        states.change_issue_status(db.session, issue, "resume")
        db.session.commit()
        summary = engine.send_pending(app)
        assert (summary.sent, summary.issues) == (10 - len(sent_before), {1: "sent"})
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == sorted(emails)


def test_cancel_mid_send_skips_the_rest(app_config, request):
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    emails = [f"c{i}@example.com" for i in range(10)]
    smtp_server.script("c1@example.com", "hang:1", times=1)
    with app.app_context():
        add_subscribers(db.session, emails)
        make_issue(db.session)
        start(db.session)
    worker = threading.Thread(target=engine.send_pending, args=(app,))
    worker.start()
    wait_for(lambda: len(smtp_server.received) >= 1, "the first message")
    with app.app_context():
        issue = db.session.scalars(select(Issue)).one()
        states.change_issue_status(db.session, issue, "cancel")
        db.session.commit()
    worker.join()

    with app.app_context():
        rows = deliveries_by_email(db.session)
        statuses = [rows[e].status for e in emails]
        # c1 is on the wire when the cancel lands (or just before it); c2 was checked one
        # message ahead and may go out too, no more.
        sent = statuses.count("sent")
        assert sent in (1, 2, 3) and statuses == ["sent"] * sent + ["skipped"] * (10 - sent)
        assert engine.send_pending(app).sent == 0
        assert session_issue_status(db.session) == "cancelled"
    assert len(smtp_server.received) == statuses.count("sent")


def test_retry_failed_requeues_and_sends(app_config, request):
    app_config["MAILER_BOUNCE_LIMIT"] = 2  # one 550 does not suppress here
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    smtp_server.script("once@example.com", "550 5.7.1 blocked for now", times=1)
    with app.app_context():
        add_subscribers(db.session, ["once@example.com", "fine@example.com"])
        make_issue(db.session)
        start(db.session)
        assert engine.send_pending(app).issues == {1: "sent"}
        issue = db.session.scalars(select(Issue)).one()
        assert deliveries_by_email(db.session)["once@example.com"].status == "failed"
        assert db.session.scalar(select(Subscriber.hard_bounces).where(
            Subscriber.email == "once@example.com")) == 1  # fmt: skip

        states.change_issue_status(db.session, issue, "retry_failed")
        db.session.commit()
        assert issue.status == "sending"
        summary = engine.send_pending(app)

        assert (summary.sent, summary.issues) == (1, {1: "sent"})
        assert deliveries_by_email(db.session)["once@example.com"].status == "sent"
        with pytest.raises(InvalidTransition, match="no failed deliveries"):
            states.change_issue_status(db.session, db.session.get(Issue, issue.id), "retry_failed")
    assert len(smtp_server.messages_to("once@example.com")) == 1
    assert len(smtp_server.messages_to("fine@example.com")) == 1


def test_issue_pauses_itself_after_consecutive_relay_errors(app_config, request):
    from tests.support.smtpd import free_port

    app_config["MAILER_SMTP_PORT"] = free_port()  # nothing listens there: connection refused
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app_config["MAILER_PAUSE_AFTER_ERRORS"] = 3
    app = request.getfixturevalue("app")
    with app.app_context():
        add_subscribers(db.session, [f"r{i}@example.com" for i in range(10)])
        make_issue(db.session)
        start(db.session)

        summary = engine.send_pending(app)

        assert (summary.relay_errors, summary.deferred, summary.paused) == (3, 3, [1])
        issue = db.session.scalars(select(Issue)).one()
        assert issue.status == "paused"
        assert issue.error_streak == 3
        assert "3 consecutive relay errors" in issue.status_reason
        counts = queue.status_counts(db.session, issue.id)
        assert (counts["deferred"], counts["queued"]) == (3, 7)
        rows = db.session.scalars(select(Delivery)).all()
        assert all(r.claimed_until is None for r in rows)
        events = db.session.scalars(select(JobEvent)).all()
        assert [e.kind for e in events] == ["send_paused"]
        assert engine.send_pending(app).relay_errors == 0  # paused: no more attempts


def test_expired_lease_makes_a_claimed_batch_claimable(app, session, smtp_server):
    from mailer.delivery.sender import claims as claim

    clock.freeze(T0)
    add_subscribers(session, ["a@example.com", "b@example.com"])
    issue = make_issue(session)
    start(session)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        taken = claim.claim_batch(conn, issue_id=issue.id, worker="dead", size=10, now=T0)
    assert len(taken) == 2

    assert engine.send_pending(app).sent == 0  # leased by a worker that died
    clock.freeze(T0 + claim.LEASE + timedelta(seconds=1))
    summary = engine.send_pending(app)

    assert (summary.sent, summary.issues) == (2, {1: "sent"})
    assert len(smtp_server.received) == 2


def test_enqueue_is_one_insert_select_and_idempotent(app, session):
    add_subscribers(session, [f"e{i}@example.com" for i in range(50)])
    add_subscribers(session, ["pending@example.com"], SubscriberStatus.PENDING)
    issue = make_issue(session)
    assert issue.id  # loaded now, so that only enqueue's statements are counted
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        added = queue.enqueue_issue(session, issue)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    session.commit()

    assert added == 50
    # One INSERT ... SELECT, then the set-based skips (paused subscribers, topics without
    # items): a fixed number of statements, whatever the number of subscribers.
    assert len(statements) <= 4
    assert all(
        " ".join(sql.split()).upper().startswith(("UPDATE", "SELECT")) for sql in statements[1:]
    )
    sql = " ".join(statements[0].split()).upper()
    assert sql.startswith("INSERT INTO DELIVERY") and " SELECT " in sql
    assert "ON CONFLICT" in sql
    assert queue.enqueue_issue(session, issue) == 0
    assert queue.status_counts(session, issue.id)["queued"] == 50


def test_hourly_cap_holds_across_runs(app_config, request):
    app_config["MAILER_SEND_HOURLY_CAP"] = 2
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    clock.freeze(T0)
    with app.app_context():
        add_subscribers(db.session, [f"h{i}@example.com" for i in range(5)])
        make_issue(db.session)
        start(db.session)
        assert engine.send_pending(app).sent == 2
        assert engine.send_pending(app).sent == 0
        clock.freeze(T0 + timedelta(hours=1, seconds=1))
        assert engine.send_pending(app).sent == 2


def test_transactional_mail_sent_retried_and_failed(app, session, smtp_server):
    from mailer.delivery.transactional import queue_mail

    clock.freeze(T0)
    smtp_server.script("later@example.com", "451 4.3.0 later", times=1)
    smtp_server.script("never@example.com", "550 5.1.1 no such user")
    for address in ("now@example.com", "later@example.com", "never@example.com"):
        queue_mail(session, kind="confirm", recipient=address, body=b"Subject: hi\r\n\r\nhi\r\n",
                   subscriber_id=None)  # fmt: skip
    session.commit()

    summary = engine.send_pending(app)

    assert (summary.transactional_sent, summary.transactional_deferred) == (1, 1)
    assert summary.transactional_failed == 1
    rows = {m.recipient: m for m in session.scalars(select(TransactionalMail))}
    assert (rows["later@example.com"].status, rows["later@example.com"].last_code) == (
        "deferred",
        451,
    )
    assert (rows["never@example.com"].status, rows["never@example.com"].last_reply) == (
        "failed",
        "5.1.1 no such user",
    )
    clock.freeze(T0 + timedelta(minutes=2))
    assert engine.send_pending(app).transactional_sent == 1
    assert len(smtp_server.messages_to("later@example.com")) == 1
    assert engine.send_pending(app).transactional_sent == 0


def test_a_second_call_in_the_same_process_returns_busy(app):
    assert engine._running.acquire(blocking=False)
    try:
        assert engine.send_pending(app).busy is True
    finally:
        engine._running.release()


def test_start_issue_picks_and_refuses(app, session):
    with pytest.raises(NothingToSend):
        engine.start_issue(session)
    make_issue(session, number=1, status="sent")
    make_issue(session, number=2, status="cancelled")
    with pytest.raises(NothingToSend):
        engine.start_issue(session)
    with pytest.raises(InvalidTransition, match="cancelled"):
        engine.start_issue(session, 2)
    issue, queued = engine.start_issue(session, 1)
    assert (issue.status, queued) == ("sent", 0)


def test_a_relay_without_pipelining_and_the_per_connection_cap(app_config, request):
    from tests.support.smtpd import ScriptedSMTPServer

    with ScriptedSMTPServer(pipelining=False) as plain:
        app_config.update(
            MAILER_SMTP_PORT=plain.port,
            MAILER_SMTP_CONNECTIONS=1,
            MAILER_SMTP_MESSAGES_PER_CONNECTION=3,
        )
        app = request.getfixturevalue("app")
        plain.script("gone@example.com", "550 5.1.1 no such user")
        plain.script("grey@example.com", "451 4.7.1 later", times=1)
        emails = [f"m{i}@example.com" for i in range(7)]
        with app.app_context():
            add_subscribers(db.session, emails[:2] + ["gone@example.com", "grey@example.com"])
            add_subscribers(db.session, emails[2:])
            make_issue(db.session)
            start(db.session)
            summary = engine.send_pending(app)
            rows = deliveries_by_email(db.session)
        received = plain.received

    assert (summary.sent, summary.failed, summary.deferred) == (7, 1, 1)
    assert (rows["gone@example.com"].status, rows["grey@example.com"].status) == (
        "failed",
        "deferred",
    )
    assert sorted(r.rcpt_tos[0] for r in received) == emails
    per_connection = [r.connection for r in received]
    assert [per_connection.count(c) for c in dict.fromkeys(per_connection)] == [3, 3, 1]
