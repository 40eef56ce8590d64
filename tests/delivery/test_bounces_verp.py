"""VERP envelope senders: each message's MAIL FROM, as the real SMTP test server saw it."""

import pytest
from sqlalchemy import select

from config import ConfigError
from mailer import create_app
from mailer.delivery import dispatch as engine
from mailer.delivery import message as mime
from mailer.delivery.bounces.verp import DELIVERY, MAIL, Verp, VerpRef
from mailer.delivery.transactional import queue_mail
from mailer.models import Issue, Subscriber, TransactionalMail
from tests.support.deliveries import add_subscribers, deliveries_by_email, make_issue

BOUNCE_ADDRESS = "bounces@news.example.jp"


@pytest.fixture
def app_config(app_config):
    """The suite's config with ``MAILER_BOUNCE_ADDRESS`` set."""
    return {**app_config, "MAILER_BOUNCE_ADDRESS": BOUNCE_ADDRESS}


def test_each_digest_message_has_its_own_signed_verp_sender(app, session, smtp_server):
    emails = ["ann@example.com", "bob@example.org", "chie@example.jp"]
    add_subscribers(session, emails)
    make_issue(session)
    engine.start_issue(session, 1)

    assert engine.send_pending(app).sent == 3

    verp = Verp(app.config)
    rows = deliveries_by_email(session)
    issue = session.scalars(select(Issue)).one()
    senders = set()
    for item in smtp_server.received:
        row = rows[item.rcpt_tos[0]]
        assert (
            item.mail_from
            == f"bounces+d{row.id}-{verp.token(DELIVERY, row.id)[-10:]}@news.example.jp"
        )
        assert verp.read(item.mail_from) == VerpRef(DELIVERY, row.id)
        senders.add(item.mail_from)
        # Headers (From, Message-ID, ...) are the reference build's: only the envelope moved.
        message = item.message()
        assert message["From"] == "Japan Weekly <newsletter@example.com>"
        url = message["List-Unsubscribe"].strip("<>")
        subscriber = session.get(Subscriber, row.subscriber_id)
        assert item.data == mime.build_message(
            issue, subscriber.id, subscriber.email, url, app.config
        )
    assert len(senders) == 3


def test_transactional_mail_has_its_own_verp_sender(app, session, smtp_server):
    queue_mail(session, kind="confirm", recipient="new@example.com",
               body=b"Subject: hi\r\n\r\nhi\r\n", subscriber_id=None)  # fmt: skip
    session.commit()

    assert engine.send_pending(app).transactional_sent == 1

    mail_id = session.scalars(select(TransactionalMail.id)).one()
    (item,) = smtp_server.received
    assert Verp(app.config).read(item.mail_from) == VerpRef(MAIL, mail_id)
    assert item.mail_from.startswith(f"bounces+m{mail_id}-")


def test_a_wrong_tag_or_another_key_reads_as_nothing(app):
    verp = Verp(app.config)
    good = verp.sender(DELIVERY, 42)
    assert verp.read(good) == VerpRef(DELIVERY, 42)
    assert verp.read(good.upper()) == VerpRef(DELIVERY, 42)  # a relay that folded the case
    local, domain = good.split("@")
    forged_tag = local[:-1] + ("0" if local[-1] != "0" else "1")
    assert verp.read(f"{forged_tag}@{domain}") is None
    assert verp.read(good.replace("+d42-", "+d43-")) is None  # another row, same tag
    assert verp.read("bounces@news.example.jp") is None
    other = Verp({**app.config, "SECRET_KEY": "another-secret-key"})
    assert other.read(good) is None
    rotated = Verp(
        {**app.config, "SECRET_KEY": "new-key", "SECRET_KEY_FALLBACKS": ["test-secret-key"]}
    )
    assert rotated.read(good) == VerpRef(DELIVERY, 42)


def test_without_a_bounce_address_mail_from_is_the_from_address(app):
    verp = Verp({**app.config, "MAILER_BOUNCE_ADDRESS": ""})
    assert verp.sender(DELIVERY, 1) == "newsletter@example.com"


@pytest.mark.parametrize("bad", ["bounces", "bounces+x@news.example.jp", "b@localhost", "bö@x.jp"])
def test_a_bad_bounce_address_stops_the_start(bad, tmp_path):
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_ADDRESS"):
        create_app({"MAILER_BOUNCE_ADDRESS": bad, "MAILER_INSTANCE_DIR": str(tmp_path)})
