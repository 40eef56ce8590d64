"""Issue status: the allowed transitions, all in one function (:func:`change_issue_status`),
and the streak of relay errors that pauses a send (:func:`count_relay_error`).

```
draft --start--> sending --finish--> sent
                 sending --pause--> paused --resume--> sending
draft | sending | paused --cancel--> cancelled
sending | paused | sent --retry_failed--> sending   (failed deliveries queued again)
```
"""

import logging

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

log = logging.getLogger(__name__)

DRAFT, SENDING, PAUSED = IssueStatus.DRAFT, IssueStatus.SENDING, IssueStatus.PAUSED
SENT, CANCELLED = IssueStatus.SENT, IssueStatus.CANCELLED
CANCELLED_REPLY = "not sent: the issue was cancelled"


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
    if action == "start":
        return {"send_started_at": issue.send_started_at or now, "error_streak": 0}
    if action in ("resume", "retry_failed"):
        return {"error_streak": 0}
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
        statement = delivery_transition("requeue").values(
            next_attempt_at=None, retry_until=None, claimed_until=None, updated_at=now
        )
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
