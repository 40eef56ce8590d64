"""What needs an operator, read for the dashboard's "Needs attention" list: failing feeds,
an unreachable relay, paused or crawling sends, refused confirmation mails, weekly runs that
sent nothing, missed weeks and signups waiting for the worker. Read-only.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import (
    Delivery,
    DeliveryStatus,
    Feed,
    Issue,
    IssueStatus,
    JobEvent,
    SignupRequest,
    TransactionalMail,
)

WARNING_WINDOW = timedelta(days=14)  # how far back the worker's events are shown
FEED_FAILING_FOR = timedelta(days=1)


def failing_feeds(session: Session, now: datetime) -> list[Feed]:
    """Return the feeds whose last refresh failed and that have had no success for more than
    ``FEED_FAILING_FOR`` (since their last success, or since they were added)."""
    since = func.coalesce(Feed.last_success_at, Feed.created_at)
    query = select(Feed).where(Feed.last_error.is_not(None), since < now - FEED_FAILING_FOR)
    return list(session.scalars(query.order_by(Feed.id)))


def unreachable_relay(session: Session) -> tuple[int, str | None]:
    """Return (how many, the last reply) of the mails waiting because the relay could not be
    reached (deferred with no SMTP code: the connection failed or was refused).

    Digest deliveries of a sending issue and transactional mails (confirmations) both count.
    """
    waiting = []
    for model, extra in (
        (Delivery, [Issue.status == IssueStatus.SENDING]),
        (TransactionalMail, []),
    ):
        query = select(func.count(), func.max(model.last_reply)).where(
            model.status == DeliveryStatus.DEFERRED, model.last_code.is_(None), *extra
        )
        if model is Delivery:
            query = query.join(Issue, Issue.id == Delivery.issue_id)
        waiting.append(session.execute(query).one())
    count = sum(number for number, _reply in waiting)
    reply = next((reply for number, reply in waiting if number), None)
    return count, reply


def run_events(session: Session, period: str) -> list[JobEvent]:
    """Return the events of the weekly run of ``period`` that sent nothing, and why
    (``empty_week``, ``preflight_blocked``)."""
    query = select(JobEvent).where(
        JobEvent.kind.in_(("empty_week", "preflight_blocked")),
        JobEvent.message.like(f"{period}:%"),
    )
    return list(session.scalars(query.order_by(JobEvent.id)))


def paused_issues(session: Session) -> list[Issue]:
    """Return the issues whose send is paused."""
    query = select(Issue).where(Issue.status == IssueStatus.PAUSED).order_by(Issue.number)
    return list(session.scalars(query))


# Temporary refusals in a row that make a send "crawl" on the dashboard (the throttle's burst):
# one or two are a full mailbox or two, not the relay.
CRAWL_AFTER = 3


def refused_issues(session: Session) -> list[Issue]:
    """Return the issues still sending while the relay refuses their messages (at least
    ``CRAWL_AFTER`` temporary refusals in a row, short of the pushback pause): a send that
    crawls."""
    query = select(Issue).where(
        Issue.status == IssueStatus.SENDING, Issue.refusal_streak >= CRAWL_AFTER
    )
    return list(session.scalars(query.order_by(Issue.number)))


@dataclass(frozen=True)
class MailWait:
    """Transactional mails (confirmations) the relay refused for now, waiting to be retried."""

    count: int
    next_try: datetime
    last_reply: str


def refused_mail(session: Session, now: datetime) -> MailWait | None:
    """Return the transactional mails deferred by a temporary refusal and not due yet (how
    many, the next try, the newest refusal), or None when there are none."""
    waiting = (
        TransactionalMail.status == DeliveryStatus.DEFERRED,
        TransactionalMail.next_attempt_at > now,
        TransactionalMail.last_code.between(400, 499),
    )
    mail = TransactionalMail
    count, next_try, newest = session.execute(
        select(func.count(), func.min(mail.next_attempt_at), func.max(mail.id)).where(*waiting)
    ).one()
    if not count:
        return None
    code, text = session.execute(
        select(TransactionalMail.last_code, TransactionalMail.last_reply).where(
            TransactionalMail.id == newest
        )
    ).one()
    return MailWait(count, next_try, f"{code} {text}")


def recent_missed_weeks(session: Session, now: datetime) -> list[JobEvent]:
    """Return the worker's ``missed_week`` events of the last two weeks, newest first."""
    query = select(JobEvent).where(
        JobEvent.kind == "missed_week", JobEvent.created_at >= now - WARNING_WINDOW
    )
    return list(session.scalars(query.order_by(JobEvent.created_at.desc())))


def recent_job_events(session: Session, now: datetime, limit: int = 5) -> list[JobEvent]:
    """Return the worker's latest events of the last two weeks (any kind), newest first."""
    query = select(JobEvent).where(JobEvent.created_at >= now - WARNING_WINDOW)
    return list(session.scalars(query.order_by(JobEvent.id.desc()).limit(limit)))


# Signups are handled by the worker every few seconds; one waiting longer means it is not.
SIGNUP_WAIT_WARNING = timedelta(minutes=2)


def waiting_signups(session: Session, now: datetime) -> tuple[int, datetime | None]:
    """Return (how many, since when) stored signups have waited longer than
    ``SIGNUP_WAIT_WARNING`` for the worker's signups job; (0, None) when none have."""
    count, oldest = session.execute(
        select(func.count(), func.min(SignupRequest.requested_at)).where(
            SignupRequest.requested_at < now - SIGNUP_WAIT_WARNING
        )
    ).one()
    return count, oldest


def sending_issues(session: Session) -> list[Issue]:
    """Return the issues whose send is under way (status sending), oldest first."""
    query = select(Issue).where(Issue.status == IssueStatus.SENDING).order_by(Issue.number)
    return list(session.scalars(query))
