"""``flask digest send`` and ``flask send-pending`` through the CLI runner, both databases."""

from datetime import UTC, datetime

from sqlalchemy import select, update

from mailer import clock
from mailer.delivery import claim, engine
from mailer.delivery.transactional import queue_mail
from mailer.extensions import db
from mailer.models import Delivery, Issue
from tests.support.deliveries import add_subscribers, make_issue


def test_digest_send_sends_the_newest_draft_and_then_nothing(app, runner, smtp_server):
    with app.app_context():
        add_subscribers(db.session, ["ann@example.com", "bob@example.com"])
        make_issue(db.session, number=1, status="sent")
        make_issue(db.session, number=2)

    result = runner.invoke(args=["digest", "send"])

    assert result.exit_code == 0, result.output
    assert "Issue #2: queued 2 deliveries." in result.output
    assert "Issue #2: sent. This run: 2 sent, 0 deferred, 0 failed, 0 skipped" in result.output
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == [
        "ann@example.com",
        "bob@example.com",
    ]
    again = runner.invoke(args=["digest", "send"])
    assert again.exit_code == 0
    assert "Nothing to send" in again.output
    explicit = runner.invoke(args=["digest", "send", "2"])
    assert "Issue #2 was already sent; nothing to do." in explicit.output
    assert len(smtp_server.received) == 2


def test_digest_send_exits_nonzero_on_failures(app, runner, smtp_server):
    smtp_server.script("gone@example.com", "550 5.1.1 no such user")
    with app.app_context():
        add_subscribers(db.session, ["gone@example.com", "fine@example.com"])
        make_issue(db.session, number=7)

    result = runner.invoke(args=["digest", "send", "7"])

    assert result.exit_code == 1
    assert "1 deliveries failed" in result.output
    assert "Issue #7: sent." in result.output


def test_digest_send_exits_nonzero_when_the_issue_pauses_itself(app_config, request):
    from tests.support.smtpd import free_port

    app_config["MAILER_SMTP_PORT"] = free_port()  # connection refused
    app_config["MAILER_PAUSE_AFTER_ERRORS"] = 2
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    runner = app.test_cli_runner()
    with app.app_context():
        add_subscribers(db.session, [f"r{i}@example.com" for i in range(5)])
        make_issue(db.session)

    result = runner.invoke(args=["digest", "send"])

    assert result.exit_code == 1
    assert "issue #1 is paused: paused after 2 consecutive relay errors" in result.output
    assert "2 deferred deliveries will be retried" in result.output
    with app.app_context():
        assert db.session.scalar(select(Issue.status)) == "paused"


def test_digest_send_of_an_unknown_issue_is_an_error(app, runner):
    result = runner.invoke(args=["digest", "send", "42"])
    assert result.exit_code == 1
    assert "Error: cannot send: there is no issue #42" in result.output


def test_digest_send_with_nothing_waiting_says_so(app, runner):
    result = runner.invoke(args=["digest", "send"])
    assert result.exit_code == 0
    assert "Nothing to send: no issue is waiting to be sent" in result.output


def test_send_pending_drains_transactional_mail_once(app, runner, smtp_server):
    with app.app_context():
        body = b"Subject: confirm\r\n\r\nplease confirm\r\n"
        queue_mail(
            db.session, kind="confirm", recipient="new@example.com", body=body, subscriber_id=None
        )
        db.session.commit()

    result = runner.invoke(args=["send-pending"])

    assert result.exit_code == 0, result.output
    assert "Transactional: 1 sent, 0 deferred, 0 failed." in result.output
    assert [r.rcpt_tos for r in smtp_server.received] == [["new@example.com"]]
    assert "Transactional: 0 sent" in runner.invoke(args=["send-pending"]).output


def test_digest_send_says_when_another_sender_holds_the_deliveries(app, runner, smtp_server):
    moment = datetime(2026, 12, 7, 9, 41, 30, tzinfo=UTC)
    clock.freeze(moment)
    with app.app_context():
        add_subscribers(db.session, ["ann@example.com", "bob@example.com"])
        make_issue(db.session, number=3)
        engine.start_issue(db.session, 3)
        db.session.execute(
            update(Delivery).values(
                claimed_by="another-machine:0123abcd:4242:0:abcdef",
                claimed_until=moment + claim.LEASE,
            )
        )
        db.session.commit()

    result = runner.invoke(args=["digest", "send", "3"])
    pending = runner.invoke(args=["send-pending"])

    assert result.exit_code == 0, result.output
    assert "Issue #3: sending. This run: 0 sent" in result.output
    message = (
        "2 deliveries are leased by another sender until 09:46 UTC; "
        "they will be sent then (or by that sender)."
    )
    assert message in result.output
    assert message in pending.output
    assert smtp_server.received == []
