"""The delivery room's shared rules, each written once: the retry window (counted from the
first temporary failure, for digests and transactional mail alike), the Delivery and
TransactionalMail transition tables, the base header list of every mail, and the
refused-envelope rule. Real SMTP server on loopback; SQLite and PostgreSQL.
"""

from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from mailer import clock
from mailer.delivery import ledger, message, transactional
from mailer.delivery.dispatch import send_transactional
from mailer.delivery.errors import RelayError
from mailer.delivery.retry import after_temporary_failure
from mailer.delivery.smtp.settings import SmtpReply, envelope_refusal
from mailer.extensions import db
from mailer.models import Delivery, TransactionalMail
from mailer.templating import RenderedMail
from tests.support.deliveries import add_subscribers, make_issue

BASE = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version"]


def test_a_transactional_mail_queued_long_ago_gets_its_whole_retry_window(app, smtp_server):
    # Before: the window counted from queueing, so a mail that waited (an hourly cap, a
    # worker that was down) longer than MAILER_RETRY_FOR failed at its first 4xx.
    smtp_server.script("late@example.com", "451 4.3.0 try later", times=1)
    window = timedelta(seconds=int(app.config["MAILER_RETRY_FOR"]))
    with app.app_context():
        transactional.queue_mail(
            db.session, kind="confirm", recipient="late@example.com",
            body=b"Subject: hi\r\n\r\nhello\r\n", subscriber_id=None,
        )  # fmt: skip
        db.session.commit()
    clock.freeze(clock.now() + window + timedelta(hours=1))

    first = send_transactional(app)
    with app.app_context():
        mail = db.session.scalars(select(TransactionalMail)).one()
        assert (first.deferred, first.failed, mail.status) == (1, 0, "deferred")
        assert mail.retry_until == clock.now() + window
        db.session.remove()
    clock.freeze(mail.next_attempt_at)
    second = send_transactional(app)

    assert (second.sent, second.failed) == (1, 0)
    assert [r.rcpt_tos for r in smtp_server.received] == [["late@example.com"]]


def test_after_the_window_a_transactional_mail_fails_by_the_same_rule_as_a_delivery(
    app, smtp_server
):
    smtp_server.script("gone@example.com", "451 4.3.0 try later")
    window = timedelta(seconds=int(app.config["MAILER_RETRY_FOR"]))
    with app.app_context():
        transactional.queue_mail(
            db.session, kind="confirm", recipient="gone@example.com",
            body=b"Subject: hi\r\n\r\nhello\r\n", subscriber_id=None,
        )  # fmt: skip
        db.session.commit()
    started = clock.now()
    clock.freeze(started)
    send_transactional(app)
    clock.freeze(started + window)
    last = send_transactional(app)

    with app.app_context():
        mail = db.session.scalars(select(TransactionalMail)).one()
    expected = after_temporary_failure(1, started + window, clock.now(), window)
    assert (last.failed, mail.status, expected.status) == (1, "failed", "failed")
    assert mail.attempts == 2 and mail.next_attempt_at is None


def test_a_status_change_from_a_status_its_table_does_not_allow_changes_nothing(app):
    with app.app_context():
        (subscriber_id,) = add_subscribers(db.session, ["s@example.com"])
        issue = make_issue(db.session)
        row = Delivery(issue_id=issue.id, subscriber_id=subscriber_id, status="sent", attempts=1)
        db.session.add(row)
        db.session.commit()
        for action in ("skip", "defer", "fail", "requeue"):
            statement = ledger.delivery_transition(action).where(Delivery.id == row.id)
            assert db.session.execute(statement).rowcount == 0, action
        db.session.commit()
        db.session.refresh(row)
        assert row.status == "sent"


def test_mail_transition_skips_only_a_queued_mail(app):
    with app.app_context():
        mail = transactional.queue_mail(
            db.session, kind="confirm", recipient="a@example.com", body=b"x", subscriber_id=None
        )
        db.session.commit()
        sent = transactional.mail_transition("sent", mail.id)
        assert db.session.execute(sent).rowcount == 1
        skip = transactional.mail_transition("skip", mail.id)
        assert db.session.execute(skip).rowcount == 0
        db.session.commit()
        db.session.refresh(mail)
        assert mail.status == "sent"
        with pytest.raises(KeyError):
            transactional.mail_transition("finish", mail.id)


def test_every_mail_starts_with_the_one_base_header_list(app):
    config = app.config
    with app.app_context():
        issue = make_issue(db.session)
        digest = message.build_message(issue, 1, "r@example.com", "https://x/unsubscribe/t", config)
        copy = message.build_test_message(issue, "admin@example.com", config)
        mail = RenderedMail(subject="Confirm", text="Please confirm.", html="")
        confirmation = message.build_transactional("new@example.com", mail, config)
    for raw in (digest, copy, confirmation):
        names = [name for name, _ in message_from_bytes(raw, policy=policy.default).items()]
        assert names[: len(BASE)] == BASE
        assert all(names.count(name) == 1 for name in BASE)
    confirmation_names = message_from_bytes(confirmation, policy=policy.default).keys()
    assert "Auto-Submitted" in confirmation_names and "List-Id" not in confirmation_names


@pytest.mark.nodb
def test_the_refused_envelope_rule():
    ok, refused, later = SmtpReply(250, "ok"), SmtpReply(550, "no user"), SmtpReply(451, "later")
    assert envelope_refusal(ok, refused, None) is refused
    assert envelope_refusal(ok, ok, later) is later
    assert envelope_refusal(ok, refused, SmtpReply(503, "no rcpt")) is refused
    with pytest.raises(RelayError, match="sender refused: bad sender"):
        envelope_refusal(SmtpReply(553, "bad sender"), None, None)
