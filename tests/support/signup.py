"""Helpers for the subscriptions tests: signing up, finding the links in queued or sent mail."""

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from mailer.delivery.transactional import compose_confirmations
from mailer.models import ConsentEvent, Subscriber, TransactionalMail
from mailer.subscriptions.service import process_signup_requests

_CONFIRM_RE = re.compile(r"https?://[^\s<>\"]+/confirm/[A-Za-z0-9_.\-]+")


def parse(body: bytes) -> EmailMessage:
    """Parse a raw message with the modern policy."""
    return message_from_bytes(body, policy=policy.default)


def text_part(message: EmailMessage) -> str:
    """The text/plain part of a message (decoded)."""
    return message.get_body(preferencelist=("plain",)).get_content()


def confirm_url_in(message: EmailMessage) -> str:
    """The one confirm URL in the text part (the HTML part must carry the same one)."""
    found = set(_CONFIRM_RE.findall(text_part(message)))
    html = message.get_body(preferencelist=("html",))
    if html is not None:
        assert found == set(_CONFIRM_RE.findall(html.get_content())), "text and HTML differ"
    assert len(found) == 1, found
    return found.pop()


def path_of(url: str) -> str:
    """The path of an absolute URL, for the test client."""
    return urlsplit(url).path


def run_signup_job(session) -> list:
    """Do what the worker's signup job does with stored signup requests (web signups only
    store a request): make them subscribers with queued mails. Returns the results."""
    results = process_signup_requests(session, current_app.config)
    session.expire_all()
    return results


def confirmation_mails(session, email: str | None = None) -> list[TransactionalMail]:
    """Queued/sent confirmation mails, oldest first (optionally for one recipient).

    The web request only stores the signup; like the worker's signup job, this first turns
    stored requests into subscribers and queued mails and builds the mails' bodies.
    """
    process_signup_requests(session, current_app.config)
    compose_confirmations(session, current_app.config)
    session.expire_all()
    query = select(TransactionalMail).where(TransactionalMail.kind == "confirm")
    if email is not None:
        query = query.where(TransactionalMail.recipient == email)
    return list(session.execute(query.order_by(TransactionalMail.id)).scalars())


def confirm_path(session, email: str) -> str:
    """The path of the confirm link in the latest confirmation mail queued for ``email``."""
    mails = confirmation_mails(session, email)
    assert mails, f"no confirmation mail for {email}"
    return path_of(confirm_url_in(parse(mails[-1].body)))


def subscriber(session, email: str) -> Subscriber | None:
    """The subscriber row for ``email`` (exact stored form), fresh from the database, once
    the worker's signup job has handled the stored signup requests."""
    process_signup_requests(session, current_app.config)
    session.expire_all()
    return session.execute(select(Subscriber).where(Subscriber.email == email)).scalar_one_or_none()


def events(session, subscriber_id: int) -> list[str]:
    """The consent event actions of a subscriber, oldest first."""
    query = select(ConsentEvent.action).where(ConsentEvent.subscriber_id == subscriber_id)
    return list(session.execute(query.order_by(ConsentEvent.id)).scalars())


def snapshot(session) -> tuple:
    """Everything the subscriptions room writes, to prove a request changed nothing (after
    the worker's signup job has handled any stored signup requests)."""
    process_signup_requests(session, current_app.config)
    session.expire_all()
    subs = session.execute(
        select(
            Subscriber.id,
            Subscriber.status,
            Subscriber.version,
            Subscriber.confirmed_at,
            Subscriber.unsubscribed_at,
            Subscriber.confirmation_sent_at,
            Subscriber.confirmations_that_day,
        ).order_by(Subscriber.id)
    ).all()
    counts = tuple(session.query(model).count() for model in (ConsentEvent, TransactionalMail))
    return tuple(subs), counts


class LiveServer:
    """The app served by werkzeug in a thread on a free loopback port (a context manager)."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = None

    def __enter__(self) -> "LiveServer":
        import threading

        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
