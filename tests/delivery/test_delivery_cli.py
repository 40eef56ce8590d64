"""``flask digest send`` and ``flask send-pending`` through the CLI runner, both databases."""

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from mailer import clock
from mailer.delivery import dispatch as engine
from mailer.delivery import issues as states
from mailer.delivery.sender import claims as claim
from mailer.delivery.transactional import queue_mail
from mailer.extensions import db
from mailer.models import Delivery, Issue, IssueStatus
from tests.support.deliveries import ISSUE_HTML, add_subscribers, wait_for
from tests.support.deliveries import make_issue as make_bare_issue

# The helper's issue has no item, a preflight error; a real one has one in a section.
READY_HTML = ISSUE_HTML.replace(
    "<h1>Japan Weekly</h1>",
    '<h1>Japan Weekly</h1><div class="section-news"><h3 class="item-title">'
    '<a href="https://example.com/news/1">Tokyo rents rise again</a></h3></div>',
)


def make_issue(session, number: int = 1, status: str = IssueStatus.DRAFT) -> Issue:
    """An issue that passes the preflight check (no errors), committed."""
    issue = make_bare_issue(session, number=number, status=status)
    issue.html = READY_HTML
    session.commit()
    return issue


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


def test_digest_send_refuses_a_draft_with_preflight_errors(app, runner, smtp_server):
    # The fresh-user report: an empty issue (`digest build --force`) went to everyone.
    with app.app_context():
        add_subscribers(db.session, [f"r{i}@example.com" for i in range(3)])
        make_bare_issue(db.session, number=1)  # no items: preflight error [empty-issue]

    for args in (["digest", "send"], ["digest", "send", "1"]):
        result = runner.invoke(args=args)

        assert result.exit_code == 1, result.output
        assert (
            "Error: issue #1 not sent: preflight error [empty-issue] the issue has no items"
            in result.output
        )
        assert "queued" not in result.output
    assert smtp_server.received == []
    with app.app_context():
        assert db.session.scalar(select(Issue.status)) == IssueStatus.DRAFT
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_digest_send_resumes_a_paused_issue_without_a_new_preflight(app, runner, smtp_server):
    # Its deliveries are queued already: resuming it is finishing a started send.
    with app.app_context():
        add_subscribers(db.session, ["ann@example.com"])
        issue = make_bare_issue(db.session, number=1)
        engine.start_issue(db.session, 1)
        states.change_issue_status(db.session, issue, "pause", reason="by test")
        db.session.commit()

    result = runner.invoke(args=["digest", "send", "1"])

    assert result.exit_code == 0, result.output
    assert "Issue #1: sent." in result.output
    assert [r.rcpt_tos for r in smtp_server.received] == [["ann@example.com"]]


def test_digest_send_exits_nonzero_when_an_admin_cancels_the_send(app_config, request):
    app_config["MAILER_SMTP_CONNECTIONS"] = 1
    app = request.getfixturevalue("app")
    smtp_server = request.getfixturevalue("smtp_server")
    runner = app.test_cli_runner()
    emails = [f"c{i}@example.com" for i in range(10)]
    smtp_server.script("c1@example.com", "hang:1", times=1)  # time for the cancel to land
    with app.app_context():
        add_subscribers(db.session, emails)
        make_issue(db.session, number=4)
    results = []
    send = threading.Thread(target=lambda: results.append(runner.invoke(args=["digest", "send"])))
    send.start()
    wait_for(lambda: len(smtp_server.received) >= 1, "the first message")
    with app.app_context():
        issue = db.session.scalars(select(Issue)).one()
        states.change_issue_status(db.session, issue, "cancel", reason="by admin@example.com")
        db.session.commit()
    send.join()

    (result,) = results
    assert result.exit_code == 1, result.output
    assert "Issue #4: cancelled." in result.output
    assert "Error: issue #4 was cancelled during the send: by admin@example.com" in result.output
    assert len(smtp_server.received) < len(emails)
