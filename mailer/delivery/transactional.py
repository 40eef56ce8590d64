"""Transactional mail (e.g. the signup confirmation): queued as rows, sent by the sender loop.

A row is claimed by moving its ``next_attempt_at`` past a short lease in one UPDATE (with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never send the same mail, and a
worker that dies mid-send leaves the mail due again when the lease ends. Retries follow the
digest's rules (4xx: backoff until ``MAILER_RETRY_FOR`` after queueing; 5xx: failed at once)
and the reply is kept on the row; no bounce counting.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .. import clock
from ..models import DeliveryStatus, TransactionalMail
from .errors import RecipientNotSupported, RelayError
from .retry import REPLY_LIMIT, backoff
from .smtp import RelaySettings, SmtpConnection, SmtpReply

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
BATCH = 100


def queue_mail(
    session: Session, *, kind: str, recipient: str, body: bytes, subscriber_id: int | None
) -> TransactionalMail:
    """Add a transactional mail to the queue; does not commit (the caller's transaction does).

    Args:
        kind: what it is, e.g. "confirm" (at most 32 characters).
        recipient: the envelope recipient.
        body: the complete RFC 5322 message (CRLF line ends), e.g. from
            ``mime.build_transactional``.
        subscriber_id: the subscriber it concerns, if any (deleted with them).

    Returns:
        The new row (added to ``session``); it goes out at the next sender run, or at its
        ``next_attempt_at`` when the caller sets one.

    Raises:
        ValueError: empty recipient or body, or a kind longer than 32 characters.
    """
    if not recipient or not body:
        raise ValueError("a transactional mail needs a recipient and a body")
    if not kind or len(kind) > 32:
        raise ValueError(f"kind must be 1 to 32 characters, got {kind!r}")
    mail = TransactionalMail(
        kind=kind,
        recipient=recipient,
        body=bytes(body),
        subscriber_id=subscriber_id,
        status=DeliveryStatus.QUEUED,
        attempts=0,
    )
    session.add(mail)
    return mail


@dataclass
class TransactionalTally:
    """What one run did with transactional mail."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0


def _due(now: datetime):
    # A row without a body waits for its composer (e.g. subscriptions' compose_confirmations).
    pending = TransactionalMail.status.in_(
        (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)
    ) & TransactionalMail.body.is_not(None)
    due = or_(TransactionalMail.next_attempt_at.is_(None), TransactionalMail.next_attempt_at <= now)
    return pending, due


def has_due(conn: Connection) -> bool:
    """True when a transactional mail is due now (one indexed query: cheap when idle)."""
    pending, due = _due(clock.now())
    first = conn.execute(select(TransactionalMail.id).where(pending, due).limit(1)).first()
    return first is not None


def _claim(conn: Connection, now: datetime) -> list[tuple]:
    pending, due = _due(now)
    candidates = (
        select(TransactionalMail.id)
        .where(pending, due)
        .order_by(TransactionalMail.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    ids = list(
        conn.scalars(
            update(TransactionalMail)
            .where(TransactionalMail.id.in_(candidates.scalar_subquery()))
            .values(next_attempt_at=now + LEASE)
            .returning(TransactionalMail.id)
        )
    )
    if not ids:
        return []
    query = select(
        TransactionalMail.id,
        TransactionalMail.recipient,
        TransactionalMail.body,
        TransactionalMail.attempts,
        TransactionalMail.created_at,
    ).where(TransactionalMail.id.in_(ids))
    return list(conn.execute(query.order_by(TransactionalMail.id)))


def send_due(engine: Engine, config: Mapping) -> TransactionalTally:
    """Send every transactional mail that is due now over one connection; returns the counts.

    Stops at the first relay error (the relay is down: the other claimed mails wait for
    their lease, ``LEASE``, and are retried by a later run).
    """
    tally = TransactionalTally()
    relay = SmtpConnection(RelaySettings.from_config(config))
    retry_for = timedelta(seconds=int(config["MAILER_RETRY_FOR"]))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:
            while rows := _claim(conn, clock.now()):
                for row in rows:
                    if not _send_one(conn, relay, row, retry_for, tally):
                        return tally
        finally:
            relay.close()
    return tally


def _send_one(conn, relay: SmtpConnection, row, retry_for: timedelta, tally) -> bool:
    mail_id, recipient, body, attempts, created_at = row
    try:
        reply = relay.send(recipient, body)
    except RelayError as exc:
        log.warning("relay error for transactional mail %s: %s", mail_id, exc)
        _record(conn, row, SmtpReply(exc.code or 0, exc.text), retry_for, tally)
        return False
    except RecipientNotSupported as exc:
        reply = SmtpReply(553, str(exc))
    _record(conn, row, reply, retry_for, tally)
    return True


def _record(conn, row, reply: SmtpReply, retry_for: timedelta, tally) -> None:
    mail_id, _recipient, _body, attempts, created_at = row
    now = clock.now()
    values = {
        "attempts": attempts + 1,
        "last_code": reply.code or None,
        "last_reply": reply.text[:REPLY_LIMIT],
    }
    if reply.ok:
        # next_attempt_at: when it actually went out (the signup room counts mails per hour).
        values.update(status=DeliveryStatus.SENT, sent_at=now, next_attempt_at=now)
        tally.sent += 1
    elif (reply.temporary or reply.code == 0) and now < created_at + retry_for:
        values.update(status=DeliveryStatus.DEFERRED, next_attempt_at=now + backoff(attempts + 1))
        tally.deferred += 1
    else:
        values.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        tally.failed += 1
    conn.execute(update(TransactionalMail).where(TransactionalMail.id == mail_id).values(**values))
