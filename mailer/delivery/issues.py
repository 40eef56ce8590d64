"""Issue status: the allowed transitions, all in one function (:func:`change_issue_status`),
the streak of relay errors that pauses a send (:func:`count_relay_error`), and the relay's
pushback: a pause with the reason ``relay-pushback`` that the worker ends by itself
(:func:`count_refusal`, :func:`pause_for_pushback`, :func:`resume_due`).

```
draft --start--> sending --finish--> sent
                 sending --pause--> paused --resume--> sending
draft | sending | paused --cancel--> cancelled
sending | paused | sent --retry_failed--> sending   (failed deliveries queued again)
```
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .. import clock
from ..digest.build import release_items
from ..models import Delivery, DeliveryStatus, Issue, IssueStatus, JobEvent
from .errors import InvalidTransition
from .ledger import Rules, Transition, delivery_transition
from .retry import REPLY_LIMIT
from .sender.throttle import hourly_allowance

log = logging.getLogger(__name__)

DRAFT, SENDING, PAUSED = IssueStatus.DRAFT, IssueStatus.SENDING, IssueStatus.PAUSED
SENT, CANCELLED = IssueStatus.SENT, IssueStatus.CANCELLED
CANCELLED_REPLY = "not sent: the issue was cancelled"


PUSHBACK = "relay-pushback"  # Issue.status_reason of a send the relay paused
RESUMED_REASON = "resumed by the worker after the relay's pushback pause"
LONGEST_PAUSE = timedelta(hours=1)
CLEAR_STREAKS = {"error_streak": 0, "refusal_streak": 0, "resume_at": None}

TRANSITIONS: dict[str, Transition] = {
    "start": Transition(frozenset({DRAFT}), SENDING),
    "pause": Transition(frozenset({SENDING}), PAUSED),
    "resume": Transition(frozenset({PAUSED}), SENDING),
    "cancel": Transition(frozenset({DRAFT, SENDING, PAUSED}), CANCELLED),
    "retry_failed": Transition(frozenset({SENDING, PAUSED, SENT}), SENDING),
    "finish": Transition(frozenset({SENDING}), SENT),
}


def change_issue_status(
    session: Session, issue: Issue, action: str, reason: str | None = None
) -> None:
    """Apply ``action`` to ``issue`` and its deliveries; does not commit (the caller does).

    Args:
        session: the session ``issue`` belongs to.
        issue: the issue, as loaded; its status is the one the change starts from.
        action: "start", "pause", "resume", "cancel", "retry_failed" or "finish".
        reason: kept in ``Issue.status_reason`` (e.g. "relay unreachable: ...", "by admin").

    The change is a compare-and-set (``UPDATE ... WHERE status = <loaded status>``), so of two
    workers or an admin and a worker changing the same issue at once exactly one succeeds: a
    pause is recorded and logged once. "cancel" marks the queued and deferred deliveries
    skipped; "retry_failed" queues the failed ones again with a fresh retry window.
    Starting does not enqueue: call ``queue.enqueue_issue`` in the same transaction.

    Raises:
        InvalidTransition: unknown action; the status does not allow it (e.g. pausing a sent
            issue); "retry_failed" without failed deliveries; or another process changed the
            status first.
    """
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise InvalidTransition(f"unknown action {action!r}; one of {', '.join(TRANSITIONS)}")
    current = issue.status
    if current not in rule.sources:
        raise InvalidTransition(f"cannot {action.replace('_', ' ')} an issue that is {current}")
    if action == "retry_failed" and not _has_failed(session, issue.id):
        raise InvalidTransition("the issue has no failed deliveries to retry")
    now = clock.now()
    values = {"status": rule.target, "status_reason": reason, **_stamps(issue, action, now)}
    result = session.execute(
        update(Issue)
        .where(Issue.id == issue.id, Issue.status == current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(issue)
        raise InvalidTransition(f"the issue changed meanwhile: it is {issue.status} now")
    _update_deliveries(session, issue.id, action, now)
    if action == "cancel" and current == IssueStatus.DRAFT:
        release_items(session, issue.id)  # never sent: its items go out with the next issue
    for key, value in values.items():
        # Already written by the UPDATE: refresh the loaded object without dirtying it.
        set_committed_value(issue, key, value)


def _stamps(issue: Issue, action: str, now) -> dict:
    # A fresh start forgets earlier pushback pauses; any resume ends the current one.
    if action == "start":
        return {
            "send_started_at": issue.send_started_at or now,
            **CLEAR_STREAKS,
            "pushback_pauses": 0,
        }
    if action in ("resume", "retry_failed"):
        return dict(CLEAR_STREAKS)
    if action == "cancel":
        return {"resume_at": None}
    if action == "finish":
        return {"sent_at": issue.sent_at or now}
    return {}


def _has_failed(session: Session, issue_id: int) -> bool:
    query = select(
        exists().where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.FAILED)
    )
    return bool(session.scalar(query))


def _update_deliveries(session: Session, issue_id: int, action: str, now) -> None:
    if action == "cancel":
        statement = delivery_transition("skip").values(
            last_reply=CANCELLED_REPLY, claimed_until=None, updated_at=now
        )
    elif action == "retry_failed":
        release_held(session, issue_id, now)
        statement = delivery_transition("requeue").values(
            next_attempt_at=None, retry_until=None, claimed_until=None, updated_at=now
        )
    elif action == "resume":
        release_held(session, issue_id, now)
        return
    else:
        return
    session.execute(
        statement.where(Delivery.issue_id == issue_id).execution_options(synchronize_session=False)
    )


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


def clear_relay_errors(conn: Connection, issue_id: int, refusals: bool = False) -> None:
    """Reset the issue's streak of relay errors (the relay answers again) and, with
    ``refusals`` (it took a message), its streak of temporary refusals too."""
    if refusals:
        statement = update(Issue).where(
            Issue.id == issue_id, (Issue.error_streak > 0) | (Issue.refusal_streak > 0)
        )
        statement = statement.values(error_streak=0, refusal_streak=0)
    else:
        statement = update(Issue).where(Issue.id == issue_id, Issue.error_streak > 0)
        statement = statement.values(error_streak=0)
    conn.execute(statement)


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


# -- relay pushback ------------------------------------------------------------------------


def count_refusal(conn: Connection, issue_id: int, reply: str) -> int:
    """Add one to the issue's temporary refusals in a row and keep ``reply`` as the last one.

    The count is shared by every connection and process of the send; an accepted message
    ends it (:func:`clear_relay_errors`). Returns the count after this refusal.
    """
    streak = conn.scalar(
        update(Issue)
        .where(Issue.id == issue_id)
        .values(refusal_streak=Issue.refusal_streak + 1, relay_reply=reply[:REPLY_LIMIT])
        .returning(Issue.refusal_streak)
    )
    return streak or 0


def pause_length(pauses: int, first: timedelta) -> timedelta:
    """How long the ``pauses``-th pushback pause of a send lasts: ``first`` (from
    ``MAILER_PUSHBACK_PAUSE``), doubled for each further pause, at most ``LONGEST_PAUSE``."""
    return min(first * 2 ** max(0, pauses - 1), LONGEST_PAUSE)


def resume_time(conn: Connection, now: datetime, pauses: int, rules: Rules) -> datetime:
    """When a send the relay paused (its ``pauses``-th pushback pause) is resumed.

    With ``MAILER_SEND_HOURLY_CAP`` reached (the messages of the last hour fill it), the
    refusal is the provider's hourly quota: the start of the next hour (UTC), when such
    quotas refill. Otherwise :func:`pause_length` from ``now``.
    """
    if hourly_allowance(conn, rules.hourly_cap, now) == 0:
        return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return now + pause_length(pauses, rules.pushback_pause)


def pause_for_pushback(conn: Connection, issue_id: int, reply: str, rules: Rules) -> bool:
    """Pause a sending issue because the relay pushed back (reason ``relay-pushback``).

    Keeps ``reply`` (e.g. "452 4.5.3 Daily sending quota exceeded") and the time the worker
    resumes it (:func:`resume_time`) on the issue; logs it and records a JobEvent once: only
    the process whose compare-and-set pauses the issue does. Commits on its own session.

    Returns:
        True when this call paused the issue (False: it was no longer sending).
    """
    now = clock.now()
    with Session(bind=conn.engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.status != SENDING:
            return False
        pauses = issue.pushback_pauses + 1
        resume_at = resume_time(session.connection(), now, pauses, rules)
        try:
            change_issue_status(session, issue, "pause", reason=PUSHBACK)
        except InvalidTransition:
            return False  # paused or cancelled by someone else meanwhile
        session.execute(
            update(Issue)
            .where(Issue.id == issue_id)
            .values(relay_reply=reply[:REPLY_LIMIT], resume_at=resume_at, pushback_pauses=pauses)
        )
        message = (
            f"Issue #{issue.number} paused by the relay ({PUSHBACK}): {reply}; the worker "
            f"resumes it at {resume_at:%Y-%m-%d %H:%M} UTC"
        )
        session.add(JobEvent(kind="relay_pushback", message=message[:REPLY_LIMIT]))
        session.commit()
    log.warning("%s", message)
    return True


def release_held(session: Session | Connection, issue_id: int | None, now: datetime) -> int:
    """Make the deliveries held back by a pushback due now (``issue_id`` None: of every
    sending issue); returns how many.

    A delivery the relay pushed back on is deferred with no ``next_attempt_at``
    (:func:`.ledger.hold`): no claim takes it until the issue is resumed, and then it goes
    first, not after its own backoff.
    """
    if issue_id is None:
        issue_ids = select(Issue.id).where(Issue.status == SENDING).scalar_subquery()
        which = Delivery.issue_id.in_(issue_ids)
    else:
        which = Delivery.issue_id == issue_id
    result = session.execute(
        update(Delivery)
        .where(which, Delivery.status == DeliveryStatus.DEFERRED)
        .where(Delivery.next_attempt_at.is_(None))
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def resume_due(session: Session, now: datetime) -> list[int]:
    """Resume every issue the relay paused whose ``resume_at`` has come; commits each.

    The worker's sender loop calls it before each run. Also makes due any delivery held back
    by a pushback of an issue that is sending again (resumed by any other way). Returns the
    numbers of the issues resumed; each is logged once (compare-and-set: of two workers, one
    resumes it).
    """
    query = select(Issue).where(
        Issue.status == PAUSED, Issue.status_reason == PUSHBACK, Issue.resume_at <= now
    )
    resumed = []
    for issue in session.scalars(query.order_by(Issue.number)).all():
        try:
            change_issue_status(session, issue, "resume", reason=RESUMED_REASON)
            session.commit()
        except InvalidTransition:
            session.rollback()
            continue
        log.info("Issue #%s resumed after the relay's pushback pause", issue.number)
        resumed.append(issue.number)
    if release_held(session, None, now):
        session.commit()
    else:
        session.rollback()
    return resumed
