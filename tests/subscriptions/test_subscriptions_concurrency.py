"""Simultaneous requests against a live server (threads): one row, at most one mail.

Runs on SQLite and PostgreSQL: the unique index on lower(email) and the conditional UPDATE
of the per-address gate must hold whichever request gets there first.
"""

import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from sqlalchemy import func, select

from mailer.models import ConsentEvent, Subscriber
from tests.support.signup import (
    LiveServer,
    confirm_path,
    confirmation_mails,
    run_signup_job,
    subscriber,
)

THREADS = 8


@pytest.fixture
def app_config(app_config):
    app_config["MAILER_SIGNUP_RATE_LIMIT"] = "10000/minute"
    app_config["MAILER_TOKEN_RATE_LIMIT"] = "10000/minute"
    return app_config


def _post(url: str, data: dict) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _at_once(url: str, bodies: list[dict]) -> list[tuple[int, bytes]]:
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = _post(url, bodies[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_simultaneous_signups_for_one_address_give_one_row_and_one_mail(app, session):
    addresses = [f"race{n}@example.com" for n in range(4)]
    with LiveServer(app) as server:
        for address in addresses:
            # Different spellings of one mailbox, all at once.
            spellings = [address, address.upper(), f" {address}", address.title()] * 2
            results = _at_once(f"{server.url}/subscribe", [{"email": s} for s in spellings])
            assert {status for status, _ in results} == {200}
            assert len({body for _, body in results}) == 1  # the same answer for all
    run_signup_job(session)
    for address in addresses:
        count = session.scalar(select(func.count()).where(func.lower(Subscriber.email) == address))
        assert count == 1, address
        assert len(confirmation_mails(session, subscriber_email(session, address))) == 1
        sub = session.scalar(select(Subscriber).where(func.lower(Subscriber.email) == address))
        actions = session.scalars(
            select(ConsentEvent.action).where(ConsentEvent.subscriber_id == sub.id)
        ).all()
        assert actions == ["signup_requested"]


def subscriber_email(session, address: str) -> str:
    return session.scalar(
        select(Subscriber.email).where(func.lower(Subscriber.email) == address.lower())
    )


def test_simultaneous_confirms_record_one_consent_event(app, client, session):
    client.post("/subscribe", data={"email": "twice@example.com"})
    path = confirm_path(session, "twice@example.com")
    with LiveServer(app) as server:
        results = _at_once(server.url + path, [{}] * THREADS)
    assert {status for status, _ in results} == {200}
    assert all(b"re subscribed" in body for _, body in results)
    sub = subscriber(session, "twice@example.com")
    assert sub.status == "confirmed"
    actions = session.scalars(
        select(ConsentEvent.action).where(ConsentEvent.subscriber_id == sub.id)
    ).all()
    assert actions == ["signup_requested", "confirmed"]
