"""Writing what happened to each message onto its Delivery row, and the consequences.

Each function is one short statement on an autocommit connection, run right after the
relay's reply, so that a crash loses at most the messages in flight. The reply code and text
are always kept on the row. Rules (from the config, see :class:`Rules`):

- 2xx: sent.
- 4xx, 421, timeouts, dropped connections: deferred with exponential backoff until the
  row's retry window (``MAILER_RETRY_FOR`` from its first temporary failure) is over, then
  failed. A delivery that fails that way is one soft failure of its subscriber.
- 5xx to the recipient: failed at once; one hard bounce of its subscriber.
- A subscriber reaching ``MAILER_BOUNCE_LIMIT`` hard bounces, or ``MAILER_SOFT_BOUNCE_LIMIT``
  soft failures in a row, is suppressed (status bounced) through the subscriptions room.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..models import Delivery, DeliveryStatus, Issue, JobEvent, Subscriber
from ..subscriptions.service import mark_bounced
from .claim import Claimed
from .errors import InvalidTransition
from .retry import REPLY_LIMIT, backoff
from .states import change_issue_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rules:
    """The retry, bounce and pause limits, read from the config with :meth:`from_config`."""

    retry_for: timedelta
    bounce_limit: int
    soft_bounce_limit: int
    pause_after_errors: int

    @classmethod
    def from_config(cls, config: Mapping) -> "Rules":
        """Read ``MAILER_RETRY_FOR`` (seconds), the bounce limits and the pause limit."""
        return cls(
            retry_for=timedelta(seconds=int(config["MAILER_RETRY_FOR"])),
            bounce_limit=max(1, int(config["MAILER_BOUNCE_LIMIT"])),
            soft_bounce_limit=max(1, int(config["MAILER_SOFT_BOUNCE_LIMIT"])),
            pause_after_errors=max(1, int(config["MAILER_PAUSE_AFTER_ERRORS"])),
        )


def _row(delivery_id: int):
    return update(Delivery).where(Delivery.id == delivery_id)


def reset_soft_failures(conn: Connection, subscriber_id: int) -> None:
    """A message to the subscriber was accepted: their soft failures are no longer in a row."""
    conn.execute(
        update(Subscriber).where(Subscriber.id == subscriber_id).values(soft_failures_in_row=0)
    )


def mark_skipped(conn: Connection, row: Claimed, reason: str, now: datetime) -> None:
    """Record that ``row`` was not sent on purpose (e.g. the subscriber left meanwhile)."""
    conn.execute(
        _row(row.delivery_id).values(
            status=DeliveryStatus.SKIPPED, last_reply=reason, updated_at=now, claimed_until=None
        )
    )


def defer(
    conn: Connection, row: Claimed, code: int | None, text: str, now: datetime, rules: Rules
) -> str:
    """Defer ``row`` after a temporary failure, or fail it once its retry window is over.

    Returns:
        The new status: "deferred" or "failed".
    """
    retry_until = row.retry_until or now + rules.retry_for
    values = {
        "attempts": row.attempts + 1,
        "last_code": code,
        "last_reply": text[:REPLY_LIMIT],
        "updated_at": now,
        "claimed_until": None,
        "retry_until": retry_until,
    }
    if now >= retry_until:
        conn.execute(_row(row.delivery_id).values(status=DeliveryStatus.FAILED, **values))
        return DeliveryStatus.FAILED
    next_at = now + backoff(row.attempts + 1)
    conn.execute(
        _row(row.delivery_id).values(
            status=DeliveryStatus.DEFERRED, next_attempt_at=next_at, **values
        )
    )
    return DeliveryStatus.DEFERRED


def fail(conn: Connection, row: Claimed, code: int | None, text: str, now: datetime) -> None:
    """Fail ``row`` for good (a 5xx reply, or an address the relay cannot take)."""
    conn.execute(
        _row(row.delivery_id).values(
            status=DeliveryStatus.FAILED,
            attempts=row.attempts + 1,
            last_code=code,
            last_reply=text[:REPLY_LIMIT],
            updated_at=now,
            claimed_until=None,
        )
    )


def count_bounce(conn: Connection, row: Claimed, reply: str, rules: Rules, hard: bool) -> bool:
    """Count a hard bounce (``hard``) or a soft failure of ``row``'s subscriber.

    Returns:
        True when this pushed the subscriber over its limit and they are now suppressed.
    """
    column = Subscriber.hard_bounces if hard else Subscriber.soft_failures_in_row
    limit = rules.bounce_limit if hard else rules.soft_bounce_limit
    count = conn.scalar(
        update(Subscriber)
        .where(Subscriber.id == row.subscriber_id)
        .values({column: column + 1})
        .returning(column)
    )
    if count is None or count < limit:
        return False
    return suppress(conn, row.subscriber_id, reply)


def suppress(conn: Connection, subscriber_id: int, reply: str) -> bool:
    """Mark the subscriber bounced through ``subscriptions.service.mark_bounced`` (commits).

    Returns:
        True when the status changed (False when they had already left or bounced).
    """
    with Session(bind=conn.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return False
        changed = mark_bounced(session, subscriber, reply=reply)
        session.commit()
    return changed


def count_relay_error(conn: Connection, issue_id: int, text: str, rules: Rules) -> int:
    """Add one to the issue's consecutive relay errors; pause the issue at the limit.

    Returns:
        The streak after this error. The pause (and its log line and JobEvent) happens once:
        only the process whose compare-and-set moves the issue from sending to paused does it.
    """
    streak = conn.scalar(
        update(Issue)
        .where(Issue.id == issue_id)
        .values(error_streak=Issue.error_streak + 1)
        .returning(Issue.error_streak)
    )
    if streak is not None and streak >= rules.pause_after_errors:
        pause_for_relay(conn, issue_id, streak, text)
    return streak or 0


def clear_relay_errors(conn: Connection, issue_id: int) -> None:
    """Reset the issue's streak of consecutive relay errors (the relay answered again)."""
    conn.execute(
        update(Issue).where(Issue.id == issue_id, Issue.error_streak > 0).values(error_streak=0)
    )


def pause_for_relay(conn: Connection, issue_id: int, streak: int, text: str) -> bool:
    """Pause the issue after ``streak`` relay errors, log it and record a JobEvent, once."""
    reason = f"paused after {streak} consecutive relay errors; last: {text}"[:REPLY_LIMIT]
    with Session(bind=conn.engine) as session:
        issue = session.get(Issue, issue_id)
        try:
            change_issue_status(session, issue, "pause", reason=reason)
        except InvalidTransition:
            return False  # already paused or cancelled by someone else: they logged it
        session.add(JobEvent(kind="send_paused", message=f"Issue #{issue.number} {reason}"))
        session.commit()
        log.error("Issue #%s %s", issue.number, reason)
    return True
