"""The worker's schedule: APScheduler 3 jobs that are thin entry points over the services.

Only ``flask --app wsgi worker`` builds and starts a scheduler (never ``create_app``: every
gunicorn worker would run its own; APScheduler's FAQ says to run one scheduler process).
Several workers may still run against one PostgreSQL database: the weekly issue is unique per
period and deliveries are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``.

Jobs (fixed ids, ``coalesce=True``, ``max_instances=1``, a misfire grace of MAILER_MISFIRE_GRACE
seconds instead of APScheduler's default of one second):

- ``weekly-digest``: build the period's issue, queue it and send it (MAILER_DIGEST_DAY at
  MAILER_DIGEST_TIME in MAILER_TIMEZONE; the day is given to APScheduler as a name: APScheduler
  3 reads crontab day numbers with Monday as 0, one off from crontab's Sunday 0).
- ``feed-refresh``: refresh every feed (every MAILER_FEED_REFRESH_MINUTES, first at start).
- ``sender-loop``: drain due deliveries and transactional mails (every MAILER_SENDER_INTERVAL s).
- ``signups``: turn stored signup requests into subscribers, then build and send the
  confirmation mails (every MAILER_SENDER_INTERVAL s; a job of its own so that a long digest
  send, which holds ``sender-loop``, never delays a confirmation mail).
- ``purge-pending``: delete signups never confirmed after MAILER_PENDING_PURGE_DAYS (daily).

A worker that was down at send time catches up at start (:func:`check_last_week`).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clock
from .content.feeds import refresh_all
from .delivery.engine import send_pending, send_transactional, start_issue
from .digest.build import build_issue
from .digest.periods import period_for
from .extensions import db
from .models import AdminUser, Feed, Issue, IssueStatus, JobEvent, Subscriber
from .subscriptions.service import purge_stale_pending

log = logging.getLogger(__name__)

WEEKLY_DIGEST_JOB = "weekly-digest"
FEED_REFRESH_JOB = "feed-refresh"
SENDER_JOB = "sender-loop"
SIGNUP_JOB = "signups"
PURGE_PENDING_JOB = "purge-pending"
PURGE_TIME = (3, 17)  # hour, minute in MAILER_TIMEZONE: a quiet time, off the full hour
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def digest_weekday(value: str) -> str:
    """Return APScheduler's three-letter weekday name ("mon") for MAILER_DIGEST_DAY.

    Args:
        value: a weekday name, full or three letters, any case ("Monday", "mon").

    Raises:
        ValueError: naming MAILER_DIGEST_DAY, for anything else; numbers are refused on
            purpose because crontab and APScheduler 3 number the days differently.
    """
    name = str(value).strip().lower()
    for day in _WEEKDAYS:
        if name in (day, day[:3]):
            return day[:3]
    raise ValueError(f"MAILER_DIGEST_DAY must be a weekday name such as monday, got {value!r}")


def digest_time(value: str) -> tuple[int, int]:
    """Return ``(hour, minute)`` of MAILER_DIGEST_TIME ("08:00", 24-hour clock).

    Raises:
        ValueError: naming MAILER_DIGEST_TIME, when it is not HH:MM with a valid hour/minute.
    """
    hour_text, sep, minute_text = str(value).strip().partition(":")
    if sep and hour_text.isdigit() and minute_text.isdigit() and len(minute_text) == 2:
        hour, minute = int(hour_text), int(minute_text)
        if hour < 24 and minute < 60:
            return hour, minute
    raise ValueError(f"MAILER_DIGEST_TIME must be HH:MM (24-hour clock), got {value!r}")


def weekly_trigger(config: Mapping) -> CronTrigger:
    """Return the weekly digest's CronTrigger (MAILER_DIGEST_DAY/_TIME in MAILER_TIMEZONE).

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    hour, minute = digest_time(config["MAILER_DIGEST_TIME"])
    return CronTrigger(
        day_of_week=digest_weekday(config["MAILER_DIGEST_DAY"]),
        hour=hour,
        minute=minute,
        timezone=config["MAILER_TIMEZONE"],
    )


def last_weekly_time(config: Mapping, now: datetime) -> datetime:
    """Return the latest scheduled weekly digest time at or before ``now`` (aware)."""
    trigger = weekly_trigger(config)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=8))
    while True:
        following = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if following > now:
            return fire
        fire = following


def build_scheduler(app: Flask) -> BlockingScheduler:
    """Return a BlockingScheduler (not started) with the five jobs bound to ``app``.

    Raises:
        ValueError: a schedule setting of ``app.config`` is malformed; the message names it.
    """
    config = app.config
    scheduler = BlockingScheduler(timezone=config["MAILER_TIMEZONE"])
    # Set on each job rather than as job_defaults, which APScheduler applies only at start.
    options = {
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": int(config["MAILER_MISFIRE_GRACE"]),
        "args": [app],
    }
    add = scheduler.add_job
    add(weekly_digest_job, weekly_trigger(config), id=WEEKLY_DIGEST_JOB, **options)
    every_minutes = IntervalTrigger(minutes=int(config["MAILER_FEED_REFRESH_MINUTES"]))
    add(feed_refresh_job, every_minutes, id=FEED_REFRESH_JOB, next_run_time=clock.now(), **options)
    every_seconds = IntervalTrigger(seconds=int(config["MAILER_SENDER_INTERVAL"]))
    add(sender_job, every_seconds, id=SENDER_JOB, **options)
    add(signup_job, every_seconds, id=SIGNUP_JOB, **options)
    hour, minute = PURGE_TIME
    daily = CronTrigger(hour=hour, minute=minute, timezone=config["MAILER_TIMEZONE"])
    add(purge_pending_job, daily, id=PURGE_PENDING_JOB, **options)
    return scheduler


@dataclass(frozen=True)
class CatchUp:
    """What a starting worker does about the last scheduled weekly digest.

    ``action`` is "run" (send it now), "missed" (too late: logged and recorded) or "none"
    (already built and sent or sending, or cancelled by an operator).
    """

    action: str
    period: str
    scheduled_at: datetime


def check_last_week(session: Session, config: Mapping, now: datetime) -> CatchUp:
    """Decide whether the last scheduled weekly digest still has to be sent, at start-up.

    The last scheduled time's period counts as handled once its issue left "draft", or when
    the weekly job ran and found no new items (a ``JobEvent(kind="empty_week")``). Otherwise
    it is sent now if ``now`` is within MAILER_MISFIRE_GRACE seconds of the scheduled time;
    later than that it is a missed week: logged, and recorded once per period as a
    ``JobEvent(kind="missed_week")`` for the dashboard (added to ``session``, not committed).
    A week scheduled before the service existed (see :func:`service_started_at`) is not
    missed: a fresh install has nothing to catch up, so the action is "none".
    """
    scheduled = last_weekly_time(config, now)
    period = period_for(scheduled, config["MAILER_TIMEZONE"])
    issue = session.scalar(select(Issue).where(Issue.period == period))
    if issue is not None and issue.status != IssueStatus.DRAFT:
        return CatchUp("none", period, scheduled)
    if issue is None and _has_event(session, "empty_week", period):
        return CatchUp("none", period, scheduled)
    if now - scheduled <= timedelta(seconds=int(config["MAILER_MISFIRE_GRACE"])):
        log.info("weekly digest of %s (due %s) was not sent: sending it now", period, scheduled)
        return CatchUp("run", period, scheduled)
    started = service_started_at(session)
    if started is None or started > scheduled:
        return CatchUp("none", period, scheduled)
    _record_missed_week(session, period, scheduled, now)
    return CatchUp("missed", period, scheduled)


def service_started_at(session: Session) -> datetime | None:
    """Return the earliest ``created_at`` of a feed, subscriber, issue or admin user, or None.

    No weekly digest was owed before it, so no earlier week can have been missed (aware UTC).
    """
    models = (Feed, Subscriber, Issue, AdminUser)
    firsts = [session.scalar(select(func.min(model.created_at))) for model in models]
    return min((first for first in firsts if first is not None), default=None)


def late_by(delay: timedelta) -> str:
    """Return ``delay`` in its two largest units, rounded ("6 days 14 hours"); never < 0."""
    seconds = max(delay.total_seconds(), 0)
    if seconds >= 86400:
        big, small = divmod(round(seconds / 3600), 24)
        names = ("day", "hour")
    else:
        big, small = divmod(round(seconds / 60), 60)
        names = ("hour", "minute")
    pairs = zip((big, small), names, strict=True)
    words = [f"{n} {name}{'s' * (n != 1)}" for n, name in pairs if n]
    return " ".join(words) or "0 minutes"


def _record_missed_week(session: Session, period: str, scheduled: datetime, now: datetime):
    message = (
        f"{period}: the weekly digest due {scheduled.isoformat()} was not sent because no "
        f"worker ran then, and {late_by(now - scheduled)} late is past MAILER_MISFIRE_GRACE. "
        f"Send it by hand with `flask --app wsgi digest build --period {period}` and "
        f"`flask --app wsgi digest send`, or let next week's issue carry its items."
    )
    log.warning("missed week: %s", message)
    if not _has_event(session, "missed_week", period):
        session.add(JobEvent(kind="missed_week", message=message))


def _has_event(session: Session, kind: str, period: str) -> bool:
    # The period leads the message of the scheduler's own events ("2026-W49: ...").
    found = select(JobEvent.id).where(JobEvent.kind == kind, JobEvent.message.like(f"{period}:%"))
    return session.scalar(found.limit(1)) is not None


def catch_up(app: Flask, scheduler: BlockingScheduler) -> CatchUp:
    """At worker start: run :func:`check_last_week` and, for "run", fire the weekly job now.

    The weekly job itself is moved to now (not a second job), so ``max_instances=1`` still
    keeps a catch-up and a regular run from overlapping.
    """
    with app.app_context():
        decision = check_last_week(db.session, app.config, clock.now())
        db.session.commit()
    if decision.action == "run":
        scheduler.modify_job(WEEKLY_DIGEST_JOB, next_run_time=clock.now())
    return decision


def weekly_digest_job(app: Flask) -> None:
    """Build the last scheduled period's issue (idempotent), queue it and send it.

    An issue that already left "draft" is not started again (an operator may have paused
    or cancelled it); the sender loop goes on with one that is sending.
    """
    with app.app_context():
        scheduled = last_weekly_time(app.config, clock.now())
        period = period_for(scheduled, app.config["MAILER_TIMEZONE"])
        issue = build_issue(db.session, period=period)
        if issue is None:
            log.info("weekly digest: no new items for %s, so no issue", period)
            if not _has_event(db.session, "empty_week", period):
                message = f"{period}: no new items at the weekly run, so no issue was built."
                db.session.add(JobEvent(kind="empty_week", message=message))
                db.session.commit()
            return
        if issue.status != IssueStatus.DRAFT:
            log.info("weekly digest: issue %s of %s is %s", issue.number, period, issue.status)
            return
        issue, queued = start_issue(db.session, issue.number)
        number = issue.number
        log.info("weekly digest: issue %s of %s queued for %d subscribers", number, period, queued)
    _log_summary(send_pending(app, issue_number=number), _logged_leases(app))


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


def sender_job(app: Flask) -> None:
    """Send what is due: queued and deferred deliveries and transactional mails."""
    _log_summary(send_pending(app), _logged_leases(app))


def _logged_leases(app: Flask) -> dict:
    return app.extensions.setdefault("mailer.logged_leases", {})


def signup_job(app: Flask) -> None:
    """Handle stored signups and send the due confirmation (transactional) mails."""
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
    if summary.busy:
        return  # another job of this process is sending; it drains the same queue
    if summary.sent or summary.failed or summary.deferred or summary.transactional_sent:
        log.info(
            "sent %d, deferred %d, failed %d deliveries; %d transactional mails",
            summary.sent,
            summary.deferred,
            summary.failed,
            summary.transactional_sent,
        )
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
    """Delete pending signups older than MAILER_PENDING_PURGE_DAYS days (never confirmed)."""
    with app.app_context():
        purged = purge_stale_pending(db.session, int(app.config["MAILER_PENDING_PURGE_DAYS"]))
        db.session.commit()
    if purged:
        log.info("purged %d stale pending signups", purged)
