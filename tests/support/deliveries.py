"""Helpers for the delivery tests: issues and subscribers in bulk, and a sender subprocess."""

import json
import os
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mailer import clock
from mailer.digest.render import RECIPIENT_MARKER, UNSUBSCRIBE_URL_MARKER
from mailer.models import Delivery, Issue, IssueStatus, Subscriber, SubscriberStatus

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("send_runner.py")

ISSUE_TEXT = (
    "Japan Weekly\n\nTokyo rents rise again\nhttps://example.com/news/1\n\n"
    ".a line that starts with a dot\n\n"
    f"Sent to {RECIPIENT_MARKER}. Unsubscribe: {UNSUBSCRIBE_URL_MARKER}\n"
)
ISSUE_HTML = (
    '<html><body><h1>Japan Weekly</h1><p><a href="https://example.com/news/1">'
    "東京の家賃がまた上昇</a></p>"
    f'<p>Sent to {RECIPIENT_MARKER}. <a href="{UNSUBSCRIBE_URL_MARKER}">Unsubscribe</a></p>'
    "</body></html>\n"
)


def make_issue(session, number: int = 1, status: str = IssueStatus.DRAFT) -> Issue:
    """Add and commit an issue with markers in both parts."""
    issue = Issue(
        number=number,
        period=f"2026-W{number:02d}",
        status=status,
        subject=f"Japan Weekly #{number}",
        text=ISSUE_TEXT,
        html=ISSUE_HTML,
    )
    session.add(issue)
    session.commit()
    return issue


def add_subscribers(session, emails, status: str = SubscriberStatus.CONFIRMED) -> list[int]:
    """Insert subscribers (one executemany) and commit; return their ids in order."""
    now = clock.now()
    rows = [{"email": e, "status": status, "version": 1, "created_at": now} for e in emails]
    session.execute(insert(Subscriber), rows)
    session.commit()
    found = session.execute(
        select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(list(emails)))
    )
    ids = dict(found.all())
    return [ids[e] for e in emails]


def many_subscribers(session, count: int, domain: str = "example.net") -> list[str]:
    """Insert ``count`` confirmed subscribers ``s00000@domain`` ...; return their addresses."""
    emails = [f"s{i:05d}@{domain}" for i in range(count)]
    add_subscribers(session, emails)
    return emails


def deliveries_by_email(session) -> dict[str, Delivery]:
    """Every Delivery row keyed by its subscriber's address (fresh from the database)."""
    session.expire_all()
    query = select(Subscriber.email, Delivery).join(
        Delivery, Delivery.subscriber_id == Subscriber.id
    )
    return {email: delivery for email, delivery in session.execute(query).all()}


def message_ids(received) -> list[str]:
    """The Message-ID of every received message (header parsing only)."""
    ids = []
    for item in received:
        headers = message_from_bytes(item.data.split(b"\r\n\r\n", 1)[0], policy=policy.compat32)
        ids.append(headers["Message-ID"])
    return ids


def start_runner(config: dict, *, frozen=None, start_file=None) -> subprocess.Popen:
    """Start ``send_runner.py`` (send_pending in its own process group) with ``config``.

    ``frozen``: an aware datetime the runner's clock is frozen at. ``start_file``: the runner
    prints "ready" and waits until this file exists before sending.
    """
    payload = dict(config)
    if frozen is not None:
        payload["_FROZEN"] = frozen.isoformat()
    if start_file is not None:
        payload["_START_FILE"] = str(start_file)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(RUNNER), json.dumps(payload)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(predicate, what: str) -> None:
    """Poll ``predicate`` (a background send is running); fail with ``what`` if it never holds."""
    deadline = time.monotonic() + 60
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.005)
