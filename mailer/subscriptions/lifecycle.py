"""Status changes an operator or the delivery engine asks for, erasure, and the purge job."""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import clock
from ..models import ConsentEvent, Subscriber, Suppression
from .addresses import email_hash
from .errors import InvalidTransition
from .records import PENDING, change_status, record_event

log = logging.getLogger(__name__)


def unsubscribe_subscriber(
    session: Session,
    subscriber: Subscriber,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    source: str | None = "admin",
    version: int | None = None,
    reason: str | None = None,
) -> bool:
    """Unsubscribe ``subscriber`` and record the consent event; commits.

    The delivery engine re-checks the status before each message, so no further digest
    goes out, even from an issue already being sent. ``version``: act only if the row still
    has this subscription version. ``reason``: why they left, when they said
    (``preferences.REASONS``), kept on the event.

    Returns:
        True when the status changed now; False when already unsubscribed.
    """
    now = clock.now()
    if not change_status(session, subscriber, "unsubscribe", now, version=version):
        session.rollback()
        return False
    record_event(
        session,
        subscriber,
        "unsubscribed",
        now,
        ip=ip,
        user_agent=user_agent,
        source=source,
        reason=reason,
    )
    session.commit()
    return True


def erase_subscriber(session: Session, subscriber: Subscriber, *, secret_key: str | None = None):
    """Delete the subscriber with its consent events, deliveries and queued mails; commits.

    Only an HMAC-SHA256 of the normalized, lower-cased address stays, in Suppression
    (reason "erased"), so that an import or an operator cannot add it back by mistake
    (GDPR art. 17 erasure with a minimal suppression record).

    Args:
        secret_key: the key the hash is derived from (default: the app's SECRET_KEY).
    """
    secret_key = secret_key or current_app.config["SECRET_KEY"]
    digest = email_hash(secret_key, subscriber.email)
    subscriber_id = subscriber.id
    known = session.execute(select(Suppression.id).where(Suppression.email_hash == digest))
    try:
        if known.first() is None:
            session.add(Suppression(email_hash=digest, reason="erased", created_at=clock.now()))
            session.flush()
        _delete_subscriber_row(session, subscriber_id)
    except IntegrityError:
        # A concurrent erasure added the same hash first; delete the row without it.
        session.rollback()
        _delete_subscriber_row(session, subscriber_id)
    if subscriber in session:
        session.expunge(subscriber)  # its row is gone; keep the session from reloading it
    log.info("erased subscriber %s at their request", subscriber_id)


def _delete_subscriber_row(session: Session, subscriber_id: int) -> None:
    # The foreign keys cascade (ON DELETE CASCADE) to events, deliveries, transactional mails.
    session.execute(
        delete(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def mark_bounced(session: Session, subscriber: Subscriber, *, reply: str) -> bool:
    """Mark ``subscriber`` bounced (no further mail) with a consent event; does NOT commit.

    The delivery engine calls it inside its own transaction when the bounce limits are
    reached. ``reply`` is the SMTP reply (kept in the event's detail).

    Returns:
        True when the status changed; False when already bounced or unsubscribed.
    """
    now = clock.now()
    try:
        changed = change_status(session, subscriber, "bounce", now)
    except InvalidTransition:
        return False
    if changed:
        record_event(session, subscriber, "bounced", now, source="delivery", detail=reply[:2000])
    return changed


def record_complaint(
    session: Session, subscriber: Subscriber, *, source: str, detail: str | None = None
) -> bool:
    """A complaint ("this is spam": an ARF report, RFC 5965, or a provider's event): the
    subscriber is unsubscribed at once and a consent event "complaint" names its ``source``
    (receive, mailbox, or the provider); commits.

    Recorded even when they had already left (each complaint is a fact worth keeping).

    Returns:
        True when this unsubscribed them now; False when they were already unsubscribed.
    """
    now = clock.now()
    changed = change_status(session, subscriber, "unsubscribe", now)
    record_event(session, subscriber, "complaint", now, source=source, detail=detail)
    session.commit()
    return changed


def purge_stale_pending(session: Session, older_than_days: int) -> int:
    """Delete pending subscribers whose last signup request is older than the given days,
    if they were never confirmed and never unsubscribed or bounced (only mere signups).

    The last request is the last confirmation mail's time, else the row's creation time.
    Their consent events and queued mails go with them (foreign-key cascade). Commits.
    The scheduler calls it daily with ``MAILER_PENDING_PURGE_DAYS`` (default 30).

    Returns:
        The number of subscribers deleted.
    """
    cutoff = clock.now() - timedelta(days=older_than_days)
    last_request = func.coalesce(Subscriber.confirmation_sent_at, Subscriber.created_at)
    result = session.execute(
        delete(Subscriber)
        .where(
            Subscriber.status == PENDING,
            last_request < cutoff,
            # Never confirmed, never left: a row that once was more than a signup holds
            # consent history (and, left or bounced, a suppression) that must stay.
            Subscriber.confirmed_at.is_(None),
            Subscriber.unsubscribed_at.is_(None),
            Subscriber.hard_bounces == 0,
            ~Subscriber.events.any(
                ConsentEvent.action.in_(("confirmed", "unsubscribed", "bounced"))
            ),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount
