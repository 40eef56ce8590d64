"""Read-only statistics for the admin pages (the services' contracts have no stats queries).

Nothing here writes. Counts are grouped in SQL so that a list of a million subscribers costs
one scan, never a million Python objects.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ..models import (
    Bounce,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)

RATE_WINDOW = timedelta(minutes=10)
# "Needs attention" above these (Gmail's and Yahoo's bulk-sender rules watch both).
HARD_BOUNCE_WARNING = 0.02
COMPLAINT_WARNING = 0.001


@dataclass(frozen=True)
class IssueStats:
    """Delivery counts of one issue, with hard bounces, complaints and attributed unsubscribes.

    ``bounces``: refused by the relay (5xx); ``reported``: sent, then reported as a hard
    bounce (a DSN, a provider event); ``complaints``: sent, then reported as spam.
    """

    issue_id: int
    counts: dict[str, int]
    bounces: int
    unsubscribes: int
    reported: int = 0
    complaints: int = 0

    @property
    def total(self) -> int:
        """All Delivery rows of the issue (one per subscriber it was queued for)."""
        return sum(self.counts.values())

    def count(self, status: str) -> int:
        """Deliveries in ``status`` (a :class:`DeliveryStatus` value)."""
        return self.counts.get(status, 0)

    @property
    def bounce_rate(self) -> float | None:
        """Hard bounces (relay 5xx and later reports) per delivery attempted to the end (sent +
        failed), or None."""
        done = self.count(DeliveryStatus.SENT) + self.count(DeliveryStatus.FAILED)
        return (self.bounces + self.reported) / done if done else None

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per message sent, or None before any was sent."""
        sent = self.count(DeliveryStatus.SENT)
        return self.complaints / sent if sent else None

    @property
    def unsubscribe_rate(self) -> float | None:
        """Unsubscribes after this issue per message sent, or None before any was sent."""
        sent = self.count(DeliveryStatus.SENT)
        return self.unsubscribes / sent if sent else None


def subscriber_counts(session: Session) -> dict[str, int]:
    """Return {status: count} for every subscriber status (0 for an empty one)."""
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    counts = dict.fromkeys(SubscriberStatus.ALL, 0)
    counts.update({status: number for status, number in rows})
    return counts


def unsubscribe_reasons(session: Session, reasons: Mapping[str, str]) -> list[tuple[str, int]]:
    """Return [(label, count)] of the reasons people gave when they left, in ``reasons``'
    order (every reason, 0 when none), then "No reason given" for the other unsubscribes."""
    rows = session.execute(
        select(ConsentEvent.reason, func.count())
        .where(ConsentEvent.action == "unsubscribed")
        .group_by(ConsentEvent.reason)
    )
    found = {reason: number for reason, number in rows}
    counted = [(label, found.get(key, 0)) for key, label in reasons.items()]
    unknown = sum(number for reason, number in found.items() if reason not in reasons)
    return counted + [("No reason given", unknown)]


def week_starts(now: datetime, tz: str, weeks: int) -> list[datetime]:
    """Return the starts (Monday 00:00 in ``tz``, as UTC) of the last ``weeks`` weeks, oldest
    first; the last one is the current week."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    days = [monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    return [datetime.combine(day, time(), tzinfo=zone).astimezone(UTC) for day in days]


def weekly_confirmations(
    session: Session, *, now: datetime, tz: str, weeks: int = 12
) -> list[tuple[str, int]]:
    """Return [(ISO week label "W49", subscribers confirmed that week)], oldest first.

    One query: a conditional sum per week over the rows confirmed since the first week.
    """
    starts = week_starts(now, tz, weeks)
    ends = [*starts[1:], now + timedelta(seconds=1)]
    column = Subscriber.confirmed_at
    sums = [
        func.sum(case((and_(column >= start, column < end), 1), else_=0))
        for start, end in zip(starts, ends, strict=True)
    ]
    row = session.execute(select(*sums).where(column >= starts[0])).one()
    zone = ZoneInfo(tz)
    labels = [f"W{start.astimezone(zone).isocalendar().week:02d}" for start in starts]
    return [(label, int(value or 0)) for label, value in zip(labels, row, strict=True)]


def recent_issues(session: Session, limit: int = 5) -> list[Issue]:
    """Return the newest issues (highest number first)."""
    return list(session.scalars(select(Issue).order_by(Issue.number.desc()).limit(limit)))


def issue_by_number(session: Session, number: int) -> Issue | None:
    """Return the issue numbered ``number`` as it is in the database now, or None.

    ``populate_existing``: a copy already in the session is refreshed, so that a status
    change starts from the status a worker may have set a moment ago.
    """
    query = select(Issue).where(Issue.number == number).execution_options(populate_existing=True)
    return session.scalars(query).first()


def _next_start(session: Session, issue: Issue) -> datetime | None:
    query = select(func.min(Issue.send_started_at)).where(Issue.number > issue.number)
    return session.scalar(query)


def _unsubscribes_after(session: Session, issue: Issue) -> int:
    # Attribution by time: a recipient of this issue who unsubscribed between its send and the
    # next issue's send (the unsubscribe token does not name the issue).
    if issue.send_started_at is None:
        return 0
    conditions = [
        Delivery.issue_id == issue.id,
        Delivery.status == DeliveryStatus.SENT,
        Subscriber.status == SubscriberStatus.UNSUBSCRIBED,
        Subscriber.unsubscribed_at >= issue.send_started_at,
    ]
    if (until := _next_start(session, issue)) is not None:
        conditions.append(Subscriber.unsubscribed_at < until)
    query = select(func.count()).select_from(Delivery).join(Subscriber).where(*conditions)
    return session.scalar(query) or 0


def issue_stats(session: Session, issues: list[Issue]) -> dict[int, IssueStats]:
    """Return {issue id: IssueStats} for ``issues`` (two grouped queries plus one per issue)."""
    ids = [issue.id for issue in issues]
    counts: dict[int, dict[str, int]] = {issue_id: {} for issue_id in ids}
    grouped = (
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(ids))
        .group_by(Delivery.issue_id, Delivery.status)
    )
    for issue_id, status, number in session.execute(grouped):
        counts[issue_id][status] = number
    hard = (
        select(Delivery.issue_id, func.count())
        .where(
            Delivery.issue_id.in_(ids),
            Delivery.status == DeliveryStatus.FAILED,
            Delivery.last_code.between(500, 599),
        )
        .group_by(Delivery.issue_id)
    )
    bounces = dict(session.execute(hard).tuples().all())
    reports = _reported(session, ids)
    return {
        issue.id: IssueStats(
            issue.id,
            counts[issue.id],
            bounces.get(issue.id, 0),
            _unsubscribes_after(session, issue),
            reports.get((issue.id, "hard"), 0),
            reports.get((issue.id, "complaint"), 0),
        )
        for issue in issues
    }


def _reported(session: Session, ids: list[int]) -> dict[tuple[int, str], int]:
    # {(issue id, kind): deliveries} of sent messages later reported hard or as spam.
    query = (
        select(Delivery.issue_id, Bounce.kind, func.count(func.distinct(Bounce.delivery_id)))
        .join(Delivery, Delivery.id == Bounce.delivery_id)
        .where(
            Delivery.issue_id.in_(ids),
            Delivery.status == DeliveryStatus.SENT,
            Bounce.kind.in_(("hard", "complaint")),
        )
        .group_by(Delivery.issue_id, Bounce.kind)
    )
    return {(issue_id, kind): number for issue_id, kind, number in session.execute(query)}


@dataclass(frozen=True)
class Progress:
    """How far a send is: counts, the recent rate and the time left.

    ``per_minute`` is the messages sent per minute over the last ``RATE_WINDOW`` (ten
    minutes), or since the send started when that is less (``rate_since_start``); None when
    it is not measured: the issue is not sending, or less than a minute of sending has
    passed. ``eta`` is None when unknown.
    """

    stats: IssueStats
    per_minute: float | None
    eta: timedelta | None
    rate_since_start: bool = False

    @property
    def remaining(self) -> int:
        """Deliveries still to go (queued or deferred for a retry)."""
        return self.stats.count(DeliveryStatus.QUEUED) + self.stats.count(DeliveryStatus.DEFERRED)

    @property
    def percent(self) -> int:
        """Deliveries finished (sent, failed or skipped) as a whole percentage of the total."""
        total = self.stats.total
        return round(100 * (total - self.remaining) / total) if total else 0


# A rate measured over seconds says little ("0 per minute" right after the first message).
MIN_RATE_SPAN = timedelta(minutes=1)


def issue_progress(session: Session, issue: Issue, now: datetime) -> Progress:
    """Return the progress of ``issue`` at ``now`` (aware).

    The rate counts the messages sent in the last ten minutes (``RATE_WINDOW``), or since the
    send started when that is less: a ten-minute divisor just after the start would show
    "0 per minute" after the first messages. It is measured only while the issue is sending,
    once ``MIN_RATE_SPAN`` of sending has passed; the time left follows from it.
    """
    stats = issue_stats(session, [issue])[issue.id]
    span = _rate_span(issue, now)
    if span is None:
        return Progress(stats, None, None)
    recent = session.scalar(
        select(func.count()).where(
            Delivery.issue_id == issue.id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= now - span,
        )
    )
    per_minute = (recent or 0) / (span.total_seconds() / 60)
    since_start = span < RATE_WINDOW
    progress = Progress(stats, per_minute, None, since_start)
    if per_minute > 0:
        eta = timedelta(minutes=progress.remaining / per_minute)
        progress = Progress(stats, per_minute, eta, since_start)
    return progress


def _rate_span(issue: Issue, now: datetime) -> timedelta | None:
    # How far back the rate is measured; None while there is no meaningful rate.
    if issue.status != IssueStatus.SENDING or issue.send_started_at is None:
        return None
    span = min(now - issue.send_started_at, RATE_WINDOW)
    return span if span >= MIN_RATE_SPAN else None


# A feed failing for less than this may be a server's bad hour: the next refreshes retry it.
