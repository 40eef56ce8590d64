"""The sender loop's one entry point: :func:`send_pending` drains what is due, once.

The worker's scheduler calls it every few seconds, ``flask send-pending`` once, and
``flask digest send`` after starting an issue. When nothing is due it costs two small
indexed queries. It never runs twice at once in one process (a lock; a second caller gets
``SendSummary(busy=True)`` at once); several processes or machines may run it together:
they split the work through the claims (:mod:`.sender.claims`).
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask
from sqlalchemy import func, select

from .. import clock
from ..digest import preflight, schedule
from ..extensions import db
from ..models import Delivery, DeliveryStatus, Issue, IssueStatus
from . import enqueue, message, transactional
from .errors import InvalidTransition, NothingToSend, PreflightFailed
from .issues import change_issue_status, resume_due
from .ledger import Tally
from .sender import claims, processes
from .sender.throttle import hourly_room_at

log = logging.getLogger(__name__)

_running = threading.Lock()
_transactional_running = threading.Lock()
_stop_requested = threading.Event()
MIN_ROWS_FOR_PROCESSES = 1000  # below this, starting processes costs more than it saves


@dataclass(frozen=True)
class SendProgress:
    """Where the send of one issue stands (absolute counts for the whole issue)."""

    issue_number: int
    total: int
    sent: int
    failed: int
    skipped: int
    deferred: int
    elapsed: float  # seconds since this run started on the issue
    sent_this_run: int

    @property
    def done(self) -> int:
        """Deliveries with a final status (sent, failed or skipped)."""
        return self.sent + self.failed + self.skipped


@dataclass
class SendSummary(Tally):
    """What one :func:`send_pending` run did: the senders' counts (:class:`Tally`) and more.

    ``issues`` maps each issue number worked on to its status at the end (e.g. "sent",
    "sending" while deferred deliveries wait, "paused"); ``errors`` lists sender failures.
    ``leased`` maps the number of an issue still sending to its due deliveries that another
    sender holds under a lease (:class:`.sender.claims.Leases`): this run could not send them.
    ``resumed`` lists the issues the relay had paused that this run resumed (their pause
    was over).
    """

    transactional_sent: int = 0
    transactional_deferred: int = 0
    transactional_failed: int = 0
    issues: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    leased: dict[int, claims.Leases] = field(default_factory=dict)
    busy: bool = False
    elapsed: float = 0.0
    resumed: list[int] = field(default_factory=list)

    @property
    def paused(self) -> list[int]:
        """Numbers of the issues that ended this run paused."""
        return [number for number, status in self.issues.items() if status == IssueStatus.PAUSED]


ProgressCallback = Callable[[SendProgress], None]


def send_pending(
    app: Flask,
    *,
    issue_number: int | None = None,
    progress: ProgressCallback | None = None,
    transactional: bool = True,
    factory: Callable[[object], Flask] | None = None,
) -> SendSummary:
    """Send the transactional mails and digest deliveries that are due now, once.

    Args:
        app: the Flask app (its config and database; an app context is pushed here).
        issue_number: only this issue's deliveries (it must be sending); None for every
            issue that is sending.
        progress: called every fraction of a second with a :class:`SendProgress`.
        transactional: also send the due transactional mail first
            (:func:`send_transactional`); the worker's jobs pass False, since its signups
            job does that every few seconds on its own.
        factory: the app factory (``mailer.create_app``), which sender processes call to
            build their own app; None keeps all the work in this process.

    Returns:
        A :class:`SendSummary`; ``busy=True`` (and nothing done) when another call is
        running in this process.

    Issues left with no queued or deferred delivery are marked sent. Errors of single
    messages never raise: they are written on their rows; a sender that fails (e.g. the
    database went away) is logged and listed in ``summary.errors``.
    """
    if not _running.acquire(blocking=False):
        return SendSummary(busy=True)
    _stop_requested.clear()
    started = time.monotonic()
    try:
        with app.app_context():
            summary = _drain(app, issue_number, progress, transactional, factory)
    finally:
        _running.release()
    summary.elapsed = time.monotonic() - started
    return summary


def stop_sending() -> None:
    """Ask a running :func:`send_pending` to stop soon (e.g. on the worker's SIGTERM).

    Each sender finishes the message it is sending, records it, gives back its leases and
    returns; the rest stays queued for the next run. Safe to call from any thread.
    """
    _stop_requested.set()


def issue_by_number(session, number: int) -> Issue | None:
    """Return the issue numbered ``number``, or None."""
    return session.scalars(select(Issue).where(Issue.number == number)).first()


def start_issue(
    session, number: int | None = None, *, config: Mapping | None = None, manual: bool = False
) -> tuple[Issue, int]:
    """Get issue ``number`` (default: the newest draft, sending or paused one) going.

    ``manual`` (Send now, ``digest send``; needs ``config``): a draft whose weekly run is
    still ahead goes out as an extra issue and never consumes that run
    (``digest.schedule.mark_manual_send``).

    A draft is enqueued (one INSERT ... SELECT) and started; a paused issue is resumed; a
    sending one is left as it is; a sent one is returned unchanged (nothing to do). Commits.
    With ``config`` (the app config), a draft is first checked as the admin's "Send now"
    checks it (``digest.preflight.check_issue``, SpamAssassin included): any error blocks
    the start (README, "Before a send"). Resuming or continuing a started issue is not
    checked again: its deliveries are already queued.

    Returns:
        (the issue, the number of deliveries queued now).

    Raises:
        NothingToSend: no issue has that number, or none is draft, sending or paused.
        InvalidTransition: the issue was cancelled, or changed status meanwhile.
        PreflightFailed: with ``config``, the draft's preflight reports errors; nothing
            was changed.
    """
    query = select(Issue)
    if number is None:
        waiting = (IssueStatus.DRAFT, IssueStatus.SENDING, IssueStatus.PAUSED)
        query = query.where(Issue.status.in_(waiting)).order_by(Issue.number.desc()).limit(1)
    else:
        query = query.where(Issue.number == number)
    issue = session.scalars(query).first()
    if issue is None:
        raise NothingToSend(
            f"there is no issue #{number}"
            if number is not None
            else "no issue is waiting to be sent (build one with `flask digest build`)"
        )
    queued = 0
    if issue.status == IssueStatus.DRAFT and config is not None:
        errors = preflight.blocking_errors(issue, config)
        if errors:
            raise PreflightFailed(issue.number, errors)
    if issue.status == IssueStatus.DRAFT:
        if manual and config is not None:
            schedule.mark_manual_send(session, config, issue, clock.now())
        queued = enqueue.enqueue_issue(session, issue)
        change_issue_status(session, issue, "start")
    elif issue.status == IssueStatus.PAUSED:
        change_issue_status(session, issue, "resume", reason="resumed by `digest send`")
    elif issue.status == IssueStatus.CANCELLED:
        raise InvalidTransition(f"issue #{issue.number} was cancelled")
    session.commit()
    return issue, queued


def waiting_for_hourly_cap(session, issue_id: int, config: Mapping) -> datetime | None:
    """When the issue's next delivery may go, if ``MAILER_SEND_HOURLY_CAP`` holds it back
    now (it has deliveries due, and the last hour's sends fill the cap); else None."""
    if not enqueue.has_due(session, issue_id):
        return None
    cap = int(config.get("MAILER_SEND_HOURLY_CAP", 0))
    return hourly_room_at(session.connection(), cap, clock.now())


def send_transactional(app: Flask) -> Tally | None:
    """Build the queued confirmation mails and send the transactional mails due now, once.

    In order: queued mails without a body are built
    (:func:`.transactional.compose_confirmations`), and every due transactional mail is sent.
    The worker's signups job calls it every ``MAILER_SENDER_INTERVAL`` seconds, after
    ``subscriptions.service.process_signup_requests`` and apart from the digest sends, so
    that a long send never holds up a confirmation mail; :func:`send_pending` calls it too.

    Args:
        app: the Flask app (an app context is pushed here).

    Returns:
        The counts of the mails sent, deferred and failed; None (nothing done) when another
        call is running in this process.
    """
    if not _transactional_running.acquire(blocking=False):
        return None
    try:
        with app.app_context():
            return _transactional(app)
    finally:
        _transactional_running.release()


def _transactional(app: Flask) -> Tally:
    try:
        transactional.compose_confirmations(db.session, app.config)
    finally:
        db.session.remove()
    with db.engine.connect() as conn:
        mail_due = transactional.has_due(conn)
    if not mail_due:
        return Tally()
    return transactional.send_due(db.engine, app.config)


def _drain(app: Flask, issue_number, progress, transactional: bool, factory) -> SendSummary:
    summary = SendSummary()
    try:
        # Sends the relay paused whose pause is over go on in this run (README, "Relay
        # pushback"): the worker's sender loop resumes them by itself.
        summary.resumed = resume_due(db.session, clock.now())
    finally:
        db.session.remove()
    mails = send_transactional(app) if transactional else None
    if mails is not None:
        summary.transactional_sent += mails.sent
        summary.transactional_deferred += mails.deferred
        summary.transactional_failed += mails.failed
    with db.engine.connect() as conn:
        query = select(Issue.id, Issue.number).where(Issue.status == IssueStatus.SENDING)
        if issue_number is not None:
            query = query.where(Issue.number == issue_number)
        issues = conn.execute(query.order_by(Issue.number)).all()
    for issue_id, number in issues:
        _send_issue(app, issue_id, number, summary, progress, factory)
        summary.issues[number] = _finish_if_done(issue_id)
        if summary.issues[number] == IssueStatus.SENDING:
            leases = _leases(issue_id)
            if leases is not None:
                summary.leased[number] = leases
    return summary


def _send_issue(app: Flask, issue_id: int, number: int, summary, progress, factory) -> None:
    session = db.session
    if not enqueue.has_deliveries(session, issue_id):
        # Started without enqueueing (or by an older caller): enqueue now, idempotently.
        enqueue.enqueue_issue(session, session.get(Issue, issue_id))
        session.commit()
    _release_dead_claims(issue_id)
    due = _due_count(issue_id)
    if not due:
        return
    if waiting_for_hourly_cap(session, issue_id, app.config) is not None:
        # Nothing may go before the sliding hour frees a slot: no start, no log line every
        # MAILER_SENDER_INTERVAL (the dashboard and `digest send` say when it goes on).
        session.remove()
        return
    more = "+" if due >= MIN_ROWS_FOR_PROCESSES else ""
    log.info("issue #%d: send started, %d%s deliveries due", number, due, more)
    report = _reporter(issue_id, number, progress)
    shares = processes.plan(app.config, db.engine.dialect.name)
    rate = processes.rate_share(app.config)
    use_processes = factory is not None and len(shares) > 1 and due >= MIN_ROWS_FOR_PROCESSES
    compiled = None
    if not use_processes:
        compiled = message.compile_variants(session.get(Issue, issue_id), app.config)
    session.remove()  # no transaction stays open while the senders work
    if use_processes:
        tally, errors = processes.run_processes(
            app, factory, issue_id, shares, rate=rate, stop=_stop_requested, report=report
        )
    else:
        tally, errors = processes.run_here(
            app, issue_id, compiled, sum(shares), rate=rate, stop=_stop_requested,
            report=report,
        )  # fmt: skip
    summary.add(tally)
    summary.errors += errors
    log.info(
        "issue #%d: send ended: %d sent, %d deferred, %d failed, %d skipped%s",
        number,
        tally.sent,
        tally.deferred,
        tally.failed,
        tally.skipped,
        f"; {len(errors)} sender error(s)" if errors else "",
    )


def _release_dead_claims(issue_id: int) -> None:
    # A restart after a crash on this machine resumes now, not when the crashed sender's
    # leases end (claims.release_dead_claims logs each release and says why it is safe).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        claims.release_dead_claims(conn, issue_id, clock.now())


def _leases(issue_id: int) -> claims.Leases | None:
    with db.engine.connect() as conn:
        return claims.leased_elsewhere(conn, issue_id, clock.now())


def _due_count(issue_id: int) -> int:
    # Counts up to MIN_ROWS_FOR_PROCESSES only: enough to choose this process or several.
    due = (
        select(Delivery.id)
        .where(Delivery.issue_id == issue_id, Delivery.status.in_(enqueue.PENDING))
        .limit(MIN_ROWS_FOR_PROCESSES)
        .subquery()
    )
    if not enqueue.has_due(db.session, issue_id):
        return 0
    return int(db.session.scalar(select(func.count()).select_from(due)) or 0)


def _reporter(issue_id: int, number: int, progress):
    if progress is None:
        return lambda tally: None
    start = enqueue.status_counts(db.session, issue_id)
    total = sum(start.values())
    began = time.monotonic()

    def report(tally: Tally) -> None:
        progress(
            SendProgress(
                issue_number=number,
                total=total,
                sent=start[DeliveryStatus.SENT] + tally.sent,
                failed=start[DeliveryStatus.FAILED] + tally.failed,
                skipped=start[DeliveryStatus.SKIPPED] + tally.skipped,
                deferred=tally.deferred,
                elapsed=time.monotonic() - began,
                sent_this_run=tally.sent,
            )
        )

    return report


def _finish_if_done(issue_id: int) -> str:
    """Mark the issue sent when nothing is queued or deferred; return its status."""
    session = db.session
    try:
        issue = session.get(Issue, issue_id, populate_existing=True)
        if issue.status == IssueStatus.SENDING and not enqueue.has_pending(session, issue_id):
            try:
                change_issue_status(session, issue, "finish")
                session.commit()
                log.info("Issue #%s sent", issue.number)
            except InvalidTransition:
                session.rollback()  # another worker finished it, or it was paused meanwhile
                session.refresh(issue)
        return issue.status
    finally:
        session.remove()
