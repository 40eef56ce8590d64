"""The bounce mailbox against a real Dovecot on loopback (IMAP and POP3): `bounces fetch`,
the worker's job, a digest sent with VERP whose bounce is polled; SQLite and PostgreSQL."""

import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from config import ConfigError
from mailer import create_app
from mailer import scheduler as schedule
from mailer.delivery import dispatch as engine
from mailer.models import Bounce, Subscriber
from tests.conftest import missing
from tests.support.bounces import arf, dsn, mailed, out_of_office
from tests.support.deliveries import add_subscribers, make_issue
from tests.support.dovecot import DOVECOT, Dovecot

GARBAGE = b"From: someone@example.org\r\nSubject: hello there\r\n\r\nJust saying hi.\r\n"


@pytest.fixture(scope="module")
def dovecot_server():
    """One Dovecot for this module's tests (each test empties the mailbox it used)."""
    if not os.path.exists(DOVECOT):
        missing("dovecot is not installed (Debian: dovecot-imapd dovecot-pop3d; .ci/run)")
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server):
    """The module's Dovecot with an empty INBOX and Done folder after the test."""
    yield dovecot_server
    dovecot_server.empty("INBOX", "Done")


@pytest.fixture
def app_config(app_config, dovecot):
    """The suite's config with the Dovecot mailbox (VERP off: the reports here are other
    MTAs' and carry no token of ours; with VERP on, a report without one changes nothing)."""
    return {**app_config, "MAILER_BOUNCE_MAILBOX": dovecot.imap_url}


def status_of(session, email: str) -> str:
    session.expire_all()
    return session.scalar(select(Subscriber.status).where(Subscriber.email == email))


def test_fetch_processes_deletes_and_flags_what_it_cannot_read(runner, session, dovecot):
    mailed(session, ["ann@example.com", "bob@example.com", "cat@example.com"])
    dovecot.append(dsn("ann@example.com"), arf("bob@example.com"),
                   out_of_office("cat@example.com"), GARBAGE)  # fmt: skip

    result = runner.invoke(args=["bounces", "fetch"])

    assert (result.exit_code, result.output) == (0, "3 processed, 1 kept (flagged)\n")
    assert status_of(session, "ann@example.com") == "bounced"
    assert status_of(session, "bob@example.com") == "unsubscribed"
    assert status_of(session, "cat@example.com") == "confirmed"
    assert {b.source for b in session.scalars(select(Bounce))} == {"mailbox"}
    assert dovecot.contents() == [(b"Subject: hello there", {"\\Flagged"})]
    # The flagged one is not read again; nothing else is left.
    assert runner.invoke(args=["bounces", "fetch"]).output == "0 processed, 0 kept (flagged)\n"


def test_processed_reports_move_to_the_done_folder(app_config, dovecot, request):
    app = create_app({**app_config, "MAILER_BOUNCE_MAILBOX_DONE": "Done"})
    with app.app_context():
        from mailer.extensions import db

        if db.engine.dialect.name == "sqlite":
            db.create_all()
        mailed(db.session, ["dan@example.com"])
        dovecot.append(dsn("dan@example.com", "4.2.2", action="delayed"))
        assert app.test_cli_runner().invoke(args=["bounces", "fetch"]).exit_code == 0
        assert [s for s, _ in dovecot.contents("Done")] == [
            b"Subject: Undelivered Mail Returned to Sender"
        ]
        assert dovecot.contents() == []
        row = db.session.scalars(select(Subscriber)).one()
        assert (row.status, row.soft_failures_in_row) == ("confirmed", 1)
        db.session.remove()
        db.engine.dispose()


def test_pop3_mailbox(app_config, dovecot):
    app = create_app({**app_config, "MAILER_BOUNCE_MAILBOX": dovecot.pop3_url})
    with app.app_context():
        from mailer.extensions import db

        if db.engine.dialect.name == "sqlite":
            db.create_all()
        mailed(db.session, ["eve@example.com"])
        dovecot.append(dsn("eve@example.com"), GARBAGE)
        result = app.test_cli_runner().invoke(args=["bounces", "fetch"])
        assert result.output == "1 processed, 1 kept (flagged)\n"
        assert status_of(db.session, "eve@example.com") == "bounced"
        assert [s for s, _ in dovecot.contents()] == [b"Subject: hello there"]
        db.session.remove()
        db.engine.dispose()


def test_a_digest_bounce_found_by_the_worker_job_suppresses_its_subscriber(
    app, session, smtp_server, dovecot
):
    app.config["MAILER_BOUNCE_ADDRESS"] = "bounces@news.example.jp"  # VERP on for this send
    add_subscribers(session, ["fay@example.com", "gus@example.com"])
    make_issue(session)
    engine.start_issue(session, 1)
    assert engine.send_pending(app).sent == 2
    sent = {r.rcpt_tos[0]: r.mail_from for r in smtp_server.received}
    # The relay accepted it, then the remote host refused it: a DSN to the VERP address,
    # naming a forwarded address (so only the VERP token can tell whose it is).
    dovecot.append(dsn("fay.old@mx.example.org", "5.1.1", to=sent["fay@example.com"]))

    schedule.bounce_mailbox_job(app)

    assert status_of(session, "fay@example.com") == "bounced"
    assert status_of(session, "gus@example.com") == "confirmed"
    assert dovecot.contents() == []


def test_the_worker_polls_every_bounce_poll_minutes(app):
    jobs = {job.id: job for job in schedule.build_scheduler(app).get_jobs()}
    job = jobs["bounce-mailbox"]
    assert job.func is schedule.bounce_mailbox_job
    assert job.trigger.interval == timedelta(minutes=10)
    assert (job.coalesce, job.max_instances) == (True, 1)


@pytest.mark.nodb
@pytest.mark.parametrize(
    "url",
    ["imap://u:p@mail.example.com/INBOX", "pop3://u:p@10.0.0.5", "https://u:p@x/", "imaps://x"],
)
def test_a_mailbox_url_that_would_leak_or_cannot_work_stops_the_start(url, tmp_path):
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_MAILBOX"):
        create_app({"MAILER_BOUNCE_MAILBOX": url, "MAILER_INSTANCE_DIR": str(tmp_path)})


@pytest.mark.nodb
def test_a_mail_server_that_does_not_answer_is_logged_by_the_job(tmp_path, caplog):
    from tests.support.smtpd import free_port

    closed = f"imap://u:p@127.0.0.1:{free_port()}/INBOX"
    app = create_app({"MAILER_BOUNCE_MAILBOX": closed, "MAILER_INSTANCE_DIR": str(tmp_path)})
    schedule.bounce_mailbox_job(app)
    assert "bounce mailbox: cannot read it" in caplog.text
    result = app.test_cli_runner().invoke(args=["bounces", "fetch"])
    assert result.exit_code == 1
    assert "cannot read MAILER_BOUNCE_MAILBOX" in result.output


def test_a_wrong_mailbox_password_is_one_line_not_a_traceback(app_config, dovecot):
    # Before: imap_tools' MailboxLoginError escaped as a traceback (a fresh user's test).
    user_and_password, _, place = dovecot.imap_url.removeprefix("imap://").partition("@")
    url = f"imap://{user_and_password.partition(':')[0]}:not-the-password@{place}"
    app = create_app({**app_config, "MAILER_BOUNCE_MAILBOX": url})
    result = app.test_cli_runner().invoke(args=["bounces", "fetch"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read MAILER_BOUNCE_MAILBOX: ")
    assert "Traceback" not in result.output
    with app.app_context():
        from mailer.extensions import db

        db.engine.dispose()
