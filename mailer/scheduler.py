"""The worker's schedule: APScheduler 3 jobs that are thin entry points over the services.

Only ``flask --app wsgi worker`` builds and starts a scheduler (never ``create_app``: every
gunicorn worker would run its own; APScheduler's FAQ says to run one scheduler process).
Several workers may still run against one PostgreSQL database: the weekly issue is unique per
period and deliveries are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``.

Jobs (fixed ids, ``coalesce=True``, ``max_instances=1``, a misfire grace of MAILER_MISFIRE_GRACE
seconds instead of APScheduler's default of one second):

- ``weekly-digest``: send the newest waiting draft, or build the period's issue, queue it
  and send it (MAILER_DIGEST_DAY at MAILER_DIGEST_TIME in MAILER_TIMEZONE; the day is given to
  APScheduler as a name: APScheduler 3 reads crontab day numbers with Monday as 0, one off
  from crontab's Sunday 0). See :func:`weekly_digest_job`.
- ``feed-refresh``: refresh every feed (every MAILER_FEED_REFRESH_MINUTES, first at start).
- ``sender-loop``: drain due digest deliveries (every MAILER_SENDER_INTERVAL s).
- ``signups``: turn stored signup requests into subscribers, then build and send the
  confirmation mails (every MAILER_SENDER_INTERVAL s; a job of its own so that a long digest
  send, which holds ``sender-loop``, never delays a confirmation mail).
- ``purge-pending``: delete signups never confirmed after MAILER_PENDING_PURGE_DAYS, and
  the ids of bounce events taken over 30 days ago (daily).
- ``bounce-mailbox``: poll MAILER_BOUNCE_MAILBOX for bounce and complaint reports (every
  MAILER_BOUNCE_POLL_MINUTES; only when the mailbox is set).

A worker that was down at send time catches up at start (:func:`catch_up`). The calendar
and the rule of which issue a run sends live in the digest room (``digest.schedule``).
"""

import logging
import poplib
from imaplib import IMAP4

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy.orm import Session

from . import clock, create_app
from .content.feeds import refresh_all, refresh_requested
from .delivery import (
    PreflightFailed,
    fetch_mailbox,
    purge_receipts,
    send_pending,
    send_transactional,
    start_issue,
)
from .digest import schedule
from .digest.periods import period_for
from .digest.schedule import CatchUp
from .extensions import db
from .subscriptions.service import process_signup_requests, purge_stale_pending

log = logging.getLogger(__name__)

WEEKLY_DIGEST_JOB = "weekly-digest"
FEED_REFRESH_JOB = "feed-refresh"
SENDER_JOB = "sender-loop"
SIGNUP_JOB = "signups"
PURGE_PENDING_JOB = "purge-pending"
BOUNCE_MAILBOX_JOB = "bounce-mailbox"
REFRESH_REQUESTS_JOB = "feed-refresh-requests"
PURGE_TIME = (3, 17)  # hour, minute in MAILER_TIMEZONE: a quiet time, off the full hour
# Jobs whose next run is due while the last one still works (a long send holds sender-loop):
# the skip is expected, not news, and APScheduler would warn about it every few seconds.
QUIET_WHEN_BUSY = (SENDER_JOB, SIGNUP_JOB, FEED_REFRESH_JOB)


class SkippedRunFilter(logging.Filter):
    """Drop APScheduler's "skipped: maximum number of running instances reached" warning for
    the jobs in :data:`QUIET_WHEN_BUSY`; a skipped weekly digest still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False (drop) for a skipped run of a job that is expected to overlap."""
        if "maximum number of running instances" not in str(record.msg):
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return getattr(job, "id", None) not in QUIET_WHEN_BUSY


def quiet_skipped_runs() -> None:
    """Install :class:`SkippedRunFilter` on APScheduler's scheduler logger, once."""
    logger = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, SkippedRunFilter) for f in logger.filters):
        logger.addFilter(SkippedRunFilter())


def build_scheduler(app: Flask) -> BlockingScheduler:
    """Return a BlockingScheduler (not started) with the jobs bound to ``app`` (six, and
    ``bounce-mailbox`` when ``MAILER_BOUNCE_MAILBOX`` is set).

    Raises:
        ValueError: a schedule setting of ``app.config`` is malformed; the message names it.
    """
    config = app.config
    quiet_skipped_runs()
    scheduler = BlockingScheduler(timezone=config["MAILER_TIMEZONE"])
    # Set on each job rather than as job_defaults, which APScheduler applies only at start.
    options = {
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": int(config["MAILER_MISFIRE_GRACE"]),
        "args": [app],
    }
    add = scheduler.add_job
    add(weekly_digest_job, schedule.weekly_trigger(config), id=WEEKLY_DIGEST_JOB, **options)
    every_minutes = IntervalTrigger(minutes=int(config["MAILER_FEED_REFRESH_MINUTES"]))
    add(feed_refresh_job, every_minutes, id=FEED_REFRESH_JOB, next_run_time=clock.now(), **options)
    every_seconds = IntervalTrigger(seconds=int(config["MAILER_SENDER_INTERVAL"]))
    add(sender_job, every_seconds, id=SENDER_JOB, **options)
    add(signup_job, every_seconds, id=SIGNUP_JOB, **options)
    add(refresh_requests_job, every_seconds, id=REFRESH_REQUESTS_JOB, **options)
    hour, minute = PURGE_TIME
    daily = CronTrigger(hour=hour, minute=minute, timezone=config["MAILER_TIMEZONE"])
    add(purge_pending_job, daily, id=PURGE_PENDING_JOB, **options)
    if config.get("MAILER_BOUNCE_MAILBOX"):
        polls = IntervalTrigger(minutes=int(config["MAILER_BOUNCE_POLL_MINUTES"]))
        add(bounce_mailbox_job, polls, id=BOUNCE_MAILBOX_JOB, **options)
    return scheduler


def catch_up(app: Flask, scheduler: BlockingScheduler) -> CatchUp:
    """At worker start: run :func:`check_last_week` and, for "run", fire the weekly job now.

    The weekly job itself is moved to now (not a second job), so ``max_instances=1`` still
    keeps a catch-up and a regular run from overlapping.
    """
    with app.app_context():
        decision = schedule.check_last_week(db.session, app.config, clock.now())
        db.session.commit()
    if decision.action == "run":
        scheduler.modify_job(WEEKLY_DIGEST_JOB, next_run_time=clock.now())
    return decision


def weekly_digest_job(app: Flask) -> None:
    """Start the issue of the last scheduled weekly run and send it; idempotent per week.

    The run of scheduled time T (period P, T's ISO week) starts one issue, the first of:

    1. the draft :func:`draft_to_send` picks for P: the newest one, built by hand since the
       last send ("Build now" on the admin's next-issue page, ``digest build``), which the
       page promised the worker sends at T. It goes out as it was built, previewed and
       test-sent; items that came in after the build are in no issue yet, so the next issue
       carries them. A draft of an earlier period (an explicit ``--period``, one built
       before periods followed the schedule, one whose run was missed) is recorded as a
       ``sent_draft`` JobEvent of P;
    2. P's issue, built now from the items new since the last issue; with fewer than
       MAILER_MIN_ITEMS of them nothing is sent, and an ``empty_week`` JobEvent of P says why.

    An extra issue (sent by hand ahead of its run) or a draft cancelled before its send does
    not make P's week done: this run still sends what is new.

    Other drafts of P or earlier stay drafts: subscribers get one digest a week, never a
    burst of stale ones. They are logged and named in an ``older_drafts`` JobEvent of P
    (dashboard) for an operator to send or cancel. The week is done once P's issue left
    "draft" or a ``sent_draft`` event of P exists, so a second run (re-fired job, restart,
    second worker) starts nothing new. An issue of P that left "draft" is not started again
    (an operator may have paused or cancelled it); the sender loop goes on with one that is
    sending. A draft whose preflight check finds errors is not started (README, "Before a
    send"): logged and recorded once per period as a ``preflight_blocked`` JobEvent of P.
    """
    with app.app_context():
        scheduled = schedule.last_weekly_time(app.config, clock.now())
        period = period_for(scheduled, app.config["MAILER_TIMEZONE"])
        chosen = schedule.issue_to_start(db.session, app.config, period)
        if chosen is None:
            db.session.commit()  # the JobEvents recorded on the way
            return
        # JobEvents recorded on the way are committed with the start, or not at all.
        try:
            issue, queued = start_issue(db.session, chosen.number, config=app.config)
        except PreflightFailed as exc:
            db.session.rollback()  # the week is not done: the sent_draft event must not stay
            _record_preflight_blocked(db.session, period, exc)
            db.session.commit()
            return
        number = issue.number
        log.info(
            "weekly digest: issue %s (%s) queued for %d subscribers at the run of %s",
            number,
            issue.period,
            queued,
            period,
        )
    _log_summary(
        send_pending(app, issue_number=number, transactional=False, factory=create_app),
        _logged_leases(app),
    )


def _record_preflight_blocked(session: Session, period: str, failure: PreflightFailed) -> None:
    # README "Before a send": any preflight error blocks a send, the scheduled one too.
    number = failure.number
    errors = "; ".join(f"[{f.code}] {f.message}" for f in failure.errors)
    message = (
        f"{period}: issue #{number} was not sent at the weekly run: the preflight check "
        f"found errors: {errors}. Fix them and rebuild it (its page in the admin lists "
        f'them), then send it with "Send now" or `flask --app wsgi digest send {number}`.'
    )
    log.warning("weekly digest: %s", message)
    schedule.record_once(session, "preflight_blocked", period, message)


def feed_refresh_job(app: Flask) -> None:
    """Refresh every feed; one broken feed is recorded on its row and the others go on."""
    with app.app_context():
        results = refresh_all(db.session)
    log.info(
        "feed refresh: %d feeds, %d new items, %d failed",
        len(results),
        sum(r.new_items for r in results),
        sum(1 for r in results if r.error),
    )


def refresh_requests_job(app: Flask) -> None:
    """Refresh the feeds an admin asked for with "Refresh now" (nothing when none is queued)."""
    with app.app_context():
        results = refresh_requested(db.session)
    if results:
        log.info(
            "requested feed refresh: %d feeds, %d failed",
            len(results),
            sum(1 for r in results if r.error),
        )


def sender_job(app: Flask) -> None:
    """Send the due digest deliveries, queued and deferred (signups job: the rest)."""
    summary = send_pending(app, transactional=False, factory=create_app)
    _log_summary(summary, _logged_leases(app))


def _logged_leases(app: Flask) -> dict:
    return app.extensions.setdefault("mailer.logged_leases", {})


def signup_job(app: Flask) -> None:
    """Handle stored signups (subscriptions), then build and send the due transactional mails
    (delivery)."""
    with app.app_context():
        try:
            process_signup_requests(db.session, app.config)
        finally:
            db.session.remove()
    tally = send_transactional(app)
    if tally is not None and (tally.sent or tally.deferred or tally.failed):
        log.info(
            "transactional mails: %d sent, %d deferred, %d failed",
            tally.sent,
            tally.deferred,
            tally.failed,
        )


def _log_summary(summary, logged_leases: dict) -> None:
    # logged_leases: issue number -> the lease end last logged for it (kept on the app).
    # Each send's start and end (with its counts) are logged by the delivery room, once.
    if summary.busy:
        return  # another job of this process is sending; it drains the same queue
    for error in summary.errors:
        log.warning("sender: %s", error)
    for number, leases in summary.leased.items():
        # Once per lease end, not every few seconds while it lasts.
        if logged_leases.get(number) != leases.until:
            logged_leases[number] = leases.until
            log.info(
                "issue #%d: %d deliveries are leased by another sender until %s UTC; they "
                "will be sent then (or by that sender)",
                number,
                leases.count,
                f"{leases.until:%H:%M}",
            )


def purge_pending_job(app: Flask) -> None:
    """Delete pending signups older than MAILER_PENDING_PURGE_DAYS days (never confirmed),
    and the ids of bounce events taken more than 30 days ago (replays are long over)."""
    with app.app_context():
        purged = purge_stale_pending(db.session, int(app.config["MAILER_PENDING_PURGE_DAYS"]))
        db.session.commit()
        receipts = purge_receipts(db.engine)  # ids of bounce events taken over 30 days ago
    if receipts:
        log.info("purged %d ids of bounce events taken over 30 days ago", receipts)
    if purged:
        log.info("purged %d stale pending signups", purged)


def bounce_mailbox_job(app: Flask) -> None:
    """Poll the bounce mailbox once; a mail server that does not answer is logged (next poll)."""
    from imap_tools.errors import ImapToolsError  # here: imap_tools loads only to poll

    with app.app_context():
        try:
            summary = fetch_mailbox(db.engine, app.config)
        except (OSError, IMAP4.error, poplib.error_proto, ImapToolsError) as exc:
            log.warning("bounce mailbox: cannot read it: %s", exc)
            return
    if summary.processed or summary.kept:
        log.info("bounce mailbox: %d processed, %d kept", summary.processed, summary.kept)
