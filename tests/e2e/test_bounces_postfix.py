"""End to end: a digest through a real Postfix on loopback that accepts the message and then
finds no such local user; its DSN to the VERP address lands in a real Dovecot mailbox; one
poll of `bounces fetch` suppresses exactly that subscriber. SQLite and PostgreSQL."""

import os
import time

import pytest
from sqlalchemy import select

from mailer.delivery import dispatch as engine
from mailer.models import Bounce, Delivery, Subscriber
from tests.conftest import missing
from tests.support.deliveries import add_subscribers, make_issue
from tests.support.dovecot import DOVECOT, Dovecot
from tests.support.postfix import POSTFIX, Postfix

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def servers():
    """A Dovecot and a Postfix that delivers the bounce domain into its Maildirs."""
    if not (os.path.exists(DOVECOT) and os.path.exists(POSTFIX)):
        missing("dovecot and postfix are needed (Debian: dovecot-imapd postfix; .ci/run)")
    dovecot = Dovecot().start()
    postfix = Postfix(dovecot.root / "mail")
    try:
        yield dovecot, postfix.start()
    finally:
        postfix.stop()
        dovecot.stop()


@pytest.fixture
def app_config(app_config, servers):
    """Mail goes to the Postfix; bounces to bounces+TOKEN@news.example.jp, read from Dovecot."""
    dovecot, postfix = servers
    return {
        **app_config,
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": postfix.port,
        "MAILER_BOUNCE_ADDRESS": "bounces@news.example.jp",
        "MAILER_BOUNCE_MAILBOX": dovecot.imap_url,
    }


def test_a_bounce_after_acceptance_suppresses_the_subscriber_after_one_poll(
    app, session, runner, servers
):
    dovecot, postfix = servers
    dovecot.empty("INBOX")
    add_subscribers(session, ["no-such-user@local.test"])
    make_issue(session)
    engine.start_issue(session, 1)

    assert engine.send_pending(app).sent == 1  # Postfix accepted it (250)

    deadline = time.monotonic() + 120  # Postfix delivers and bounces on its own schedule
    while not dovecot.contents():
        assert time.monotonic() < deadline, f"no DSN arrived; postfix log:\n{postfix.log()}"
        time.sleep(0.05)
    result = runner.invoke(args=["bounces", "fetch"])

    assert result.output == "1 processed, 0 kept (flagged)\n"
    session.expire_all()
    subscriber = session.scalars(select(Subscriber)).one()
    assert (subscriber.status, subscriber.hard_bounces) == ("bounced", 1)
    bounce = session.scalars(select(Bounce)).one()
    delivery = session.scalars(select(Delivery)).one()
    assert (bounce.kind, bounce.source, bounce.status_code) == ("hard", "mailbox", "5.1.1")
    assert bounce.delivery_id == delivery.id
    assert 'unknown user: "no-such-user"' in bounce.diagnostic
    assert dovecot.contents() == []
