"""Limits on confirmation mails: per address (race-free) and per hour for the whole service.

Per address: at most one confirmation mail per ``CONFIRMATION_INTERVAL`` and
``CONFIRMATIONS_PER_DAY`` a day (UTC days), however many requests arrive at once. The gate is a
single conditional UPDATE, so two concurrent requests cannot both pass it: on PostgreSQL the
second UPDATE waits for the first to commit and re-checks the WHERE clause on the new row;
on SQLite writers are serialized.

Per hour: at most ``MAILER_CONFIRMATIONS_PER_HOUR`` confirmation mails are scheduled per clock
hour (UTC). Past it, signups are still kept and their mail is queued with ``next_attempt_at``
in the first later hour that has room, so the sender sends it then (not dropped, not held
anywhere else). Concurrent signups may overshoot the cap by the few that race.
"""

from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..models import Subscriber, TransactionalMail

CONFIRMATION_INTERVAL = timedelta(minutes=10)
CONFIRMATIONS_PER_DAY = 5
CONFIRM_KIND = "confirm"
WELCOME_KIND = "welcome"  # the transactional mail after a confirmation (mailing.queue_welcome)
# How far ahead the hourly cap may push a mail before we stop looking for room.
MAX_HOURS_AHEAD = 24 * 14


def take_confirmation_slot(
    session: Session,
    subscriber_id: int,
    now: datetime,
    interval: timedelta = CONFIRMATION_INTERVAL,
) -> bool:
    """Claim the right to send one confirmation mail to the subscriber now.

    Args:
        interval: the least time since the last confirmation mail; ``CONFIRMATION_INTERVAL``
            (10 minutes) against repeated requests. A new subscription version (someone who
            left and signs up again) passes ``timedelta(0)``: the earlier mail's link no
            longer works, so the new mail is no repeat, and the daily cap still holds.

    Returns True (and records the send time and the day's count on the row) when the last
    confirmation is older than ``interval`` and fewer than 5 went out today (UTC); False
    otherwise. Does not commit: the claim holds only if the caller's transaction commits.
    """
    today = now.date().isoformat()
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at <= now - interval,
            ),
            or_(
                Subscriber.confirmation_day.is_(None),
                Subscriber.confirmation_day != today,
                Subscriber.confirmations_that_day < CONFIRMATIONS_PER_DAY,
            ),
        )
        .values(
            confirmation_sent_at=now,
            confirmations_that_day=case(
                (Subscriber.confirmation_day == today, Subscriber.confirmations_that_day + 1),
                else_=1,
            ),
            confirmation_day=today,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def schedule_confirmation(session: Session | Connection, now: datetime, per_hour: int) -> datetime:
    """Return when a new confirmation mail may go out under the hourly cap.

    Args:
        session: a Session or Connection (only reads).
        now: the current aware UTC time.
        per_hour: ``MAILER_CONFIRMATIONS_PER_HOUR``; 0 or less means no cap.

    Returns:
        ``now`` when this clock hour has room, else the start of the first later hour with
        fewer than ``per_hour`` confirmation mails scheduled in it.
    """
    if per_hour <= 0:
        return now
    start = _hour_start(now)
    planned = func.coalesce(TransactionalMail.next_attempt_at, TransactionalMail.created_at)
    # The usual case, room in this hour, is one COUNT; only a full hour reads the later ones.
    this_hour = session.execute(
        select(func.count()).where(
            TransactionalMail.kind == CONFIRM_KIND,
            planned >= start,
            planned < start + timedelta(hours=1),
        )
    ).scalar_one()
    if this_hour < per_hour:
        return now
    rows = session.execute(
        select(planned).where(TransactionalMail.kind == CONFIRM_KIND, planned >= start)
    ).scalars()
    per_bucket: dict[datetime, int] = {}
    for moment in rows:
        bucket = _hour_start(moment)
        per_bucket[bucket] = per_bucket.get(bucket, 0) + 1
    for hours in range(MAX_HOURS_AHEAD):
        bucket = start + timedelta(hours=hours)
        if per_bucket.get(bucket, 0) < per_hour:
            return now if hours == 0 else bucket
    return start + timedelta(hours=MAX_HOURS_AHEAD)
