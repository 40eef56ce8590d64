"""Bounces: what a refused message does to its subscriber, and suppression.

This package holds bounces and complaints: here the counting every source goes through;
:mod:`.verp` (the signed envelope sender), :mod:`.reports` (reading a mailed report),
:mod:`.process` (the one processor), :mod:`.mailbox`, :mod:`.webhooks`, :mod:`.sns` and
:mod:`.views` (the ways in).

The relay's own replies count here directly: a 5xx to a recipient is one hard bounce
(``MAILER_BOUNCE_LIMIT`` of them suppress the address); a message that failed after its
retry window of 4xx replies is one soft failure (``MAILER_SOFT_BOUNCE_LIMIT`` in a row
suppress it); an accepted message ends the row of soft failures. Suppression is the
subscriptions room's ``mark_bounced``. Delivery reports and provider events count through
these same functions (:mod:`.process`).
"""

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ...models import Subscriber
from ...subscriptions.service import mark_bounced


def reset_soft_failures(conn: Connection, subscriber_id: int) -> None:
    """A message to the subscriber was accepted: their soft failures are no longer in a row."""
    conn.execute(
        update(Subscriber).where(Subscriber.id == subscriber_id).values(soft_failures_in_row=0)
    )


def count_bounce(conn: Connection, subscriber_id: int, reply: str, limit: int, hard: bool) -> bool:
    """Count a hard bounce (``hard``) or a soft failure of the subscriber; suppress at ``limit``.

    Args:
        conn: an autocommit connection. reply: the SMTP reply or report text kept with the
            suppression. limit: ``MAILER_BOUNCE_LIMIT`` (hard) or
            ``MAILER_SOFT_BOUNCE_LIMIT`` (soft), at least 1.

    Returns:
        True when this pushed the subscriber over its limit and they are now suppressed.
    """
    column = Subscriber.hard_bounces if hard else Subscriber.soft_failures_in_row
    count = conn.scalar(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values({column: column + 1})
        .returning(column)
    )
    if count is None or count < limit:
        return False
    return suppress(conn, subscriber_id, reply)


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
