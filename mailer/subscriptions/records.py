"""Subscriber rows: lookup by address, the status transitions (in one table), consent events.

Status changes are conditional UPDATEs (``... WHERE status IN (allowed sources)``), so two
concurrent requests cannot both make the same change and both record it.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..models import ConsentEvent, Subscriber, SubscriberStatus, Suppression
from .addresses import email_hash
from .errors import InvalidTransition

PENDING = SubscriberStatus.PENDING
CONFIRMED = SubscriberStatus.CONFIRMED
UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED
BOUNCED = SubscriberStatus.BOUNCED


@dataclass(frozen=True)
class Rule:
    """One action: its target status, the statuses it changes, the ones where it is a no-op."""

    target: str
    changes: frozenset[str]
    unchanged: frozenset[str]


# The allowed transitions of Subscriber.status, all of them. A status missing from both sets
# refuses the action (e.g. a confirm link cannot bring back someone who unsubscribed).
TRANSITIONS: dict[str, Rule] = {
    # A new signup request (web form): leavers start over with double opt-in.
    "request": Rule(PENDING, frozenset({UNSUBSCRIBED, BOUNCED}), frozenset({PENDING, CONFIRMED})),
    # The person pressed "confirm" (double opt-in), or an operator recorded outside consent.
    "confirm": Rule(CONFIRMED, frozenset({PENDING}), frozenset({CONFIRMED})),
    # A leaver who signed up again confirmed from their mailbox (the link of that signup),
    # or an operator re-added them with --resubscribe and a reason.
    "reconfirm": Rule(CONFIRMED, frozenset({UNSUBSCRIBED, BOUNCED}), frozenset({CONFIRMED})),
    "unsubscribe": Rule(
        UNSUBSCRIBED, frozenset({PENDING, CONFIRMED, BOUNCED}), frozenset({UNSUBSCRIBED})
    ),
    "bounce": Rule(BOUNCED, frozenset({PENDING, CONFIRMED}), frozenset({BOUNCED, UNSUBSCRIBED})),
}


def _stamps(action: str, now: datetime) -> dict:
    if action == "request":
        # A new subscription version: links of the earlier one stop working.
        return {"version": Subscriber.version + 1}
    if action in ("confirm", "reconfirm"):
        # A confirmed mailbox works: the delivery room's bounce counters start again.
        return {"confirmed_at": now, "hard_bounces": 0, "soft_failures_in_row": 0}
    if action == "unsubscribe":
        return {"unsubscribed_at": now}
    return {}


def change_status(
    session: Session, subscriber: Subscriber, action: str, now: datetime, version: int | None = None
) -> bool:
    """Apply ``action`` (a key of :data:`TRANSITIONS`) to ``subscriber``; does not commit.

    Args:
        version: when given, change the row only if it still has this subscription version.

    Returns:
        True when this call changed the status (record a consent event then); False when the
        status already was the target (or another request changed it at the same moment).

    Raises:
        InvalidTransition: the current status does not allow ``action``.
    """
    rule = TRANSITIONS[action]
    if subscriber.status not in rule.changes | rule.unchanged:
        raise InvalidTransition(f"cannot {action} a subscriber who is {subscriber.status}")
    statement = update(Subscriber).where(
        Subscriber.id == subscriber.id, Subscriber.status.in_(rule.changes)
    )
    if version is not None:
        statement = statement.where(Subscriber.version == version)
    values = {"status": rule.target, **_stamps(action, now)}
    result = session.execute(statement.values(values).execution_options(synchronize_session=False))
    session.refresh(subscriber)
    return result.rowcount == 1


def find_subscriber(session: Session, normalized_email: str) -> Subscriber | None:
    """Return the subscriber whose address equals ``normalized_email`` ignoring case, or None.

    Both sides are lower-cased by the database, exactly as the unique index on lower(email)
    does (SQLite's lower() folds ASCII only; Python's would disagree on other letters).
    """
    return session.execute(
        select(Subscriber).where(func.lower(Subscriber.email) == func.lower(normalized_email))
    ).scalar_one_or_none()


def record_event(
    session: Session,
    subscriber: Subscriber,
    action: str,
    now: datetime,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    source: str | None = None,
    detail: str | None = None,
    sections: str | None = None,
    reason: str | None = None,
) -> ConsentEvent:
    """Add a ConsentEvent for ``subscriber`` (what, when, IP, user agent, source); no commit.

    ``sections``: the topics chosen with it; ``reason``: why someone left, when they said.
    """
    event = ConsentEvent(
        subscriber_id=subscriber.id,
        action=action,
        created_at=now,
        ip_address=clipped(ip, 64),
        user_agent=clipped(user_agent, 512),
        source=clipped(source, 512),
        detail=detail,
        sections=sections,
        reason=reason,
    )
    session.add(event)
    return event


def clipped(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters (its column's size); None for None or ""."""
    return value[:limit] if value else None


def is_suppressed(session: Session, secret_key: str, normalized_email: str) -> bool:
    """Return True when the address's keyed hash is on the suppression list."""
    digest = email_hash(secret_key, normalized_email)
    found = session.execute(select(Suppression.id).where(Suppression.email_hash == digest))
    return found.first() is not None


def lift_suppression(session: Session, secret_key: str, normalized_email: str) -> None:
    """Take the address off the suppression list (an operator's --resubscribe; not committed)."""
    digest = email_hash(secret_key, normalized_email)
    session.execute(delete(Suppression).where(Suppression.email_hash == digest))


def awaiting_reconfirmation(session: Session, subscriber: Subscriber) -> bool:
    """True when an unsubscribed or bounced subscriber signed up again and has not confirmed.

    Their status stays as it was until they confirm (issue 11: a stranger's signup must not
    undo an unsubscribe); the last consent event is then ``resubscribe_requested``. Tokens
    are checked for the current version before this is asked, so only the link mailed for
    that signup gets here.
    """
    if subscriber.status not in (UNSUBSCRIBED, BOUNCED):
        return False
    last = session.scalar(
        select(ConsentEvent.action)
        .where(ConsentEvent.subscriber_id == subscriber.id)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return last == "resubscribe_requested"


def requested_sections(session: Session, subscriber: Subscriber) -> str | None:
    """The topics chosen with the subscriber's latest signup request (``Section.key`` form),
    or None when it named none. A leaver who signs up again keeps their old topics until the
    mailed link confirms; then the ones chosen on that form apply."""
    return session.scalar(
        select(ConsentEvent.sections)
        .where(
            ConsentEvent.subscriber_id == subscriber.id,
            ConsentEvent.action == "resubscribe_requested",
        )
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
