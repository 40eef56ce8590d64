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
- ``purge-pending``: delete signups never confirmed after MAILER_PENDING_PURGE_DAYS (daily).

A worker that was down at send time catches up at start (:func:`check_last_week`).

Periods: the run scheduled at time T sends the issue of T's ISO week (``period_for(T)``). An
issue built by hand between two runs belongs to the run that will send it, so its period is
that of the next scheduled time (:func:`build_period`): built on a Wednesday of W49 with a
Monday schedule, it is W50's issue, and the Monday run of W50 finds and sends it. Built
after a run that no worker made, within MAILER_MISFIRE_GRACE of it, it is that run's issue,
which the catch-up at the worker's start sends (:func:`pending_catch_up`).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clock
from .content.feeds import refresh_all, refresh_requested
from .delivery.engine import send_pending, send_transactional, start_issue
from .delivery.errors import PreflightFailed
from .digest.build import build_issue, find_issue, waiting_drafts
from .digest.periods import parse_period, period_for
from .extensions import db
from .models import AdminUser, Feed, Issue, IssueStatus, JobEvent, Subscriber
from .subscriptions.service import purge_stale_pending

log = logging.getLogger(__name__)

WEEKLY_DIGEST_JOB = "weekly-digest"
FEED_REFRESH_JOB = "feed-refresh"
SENDER_JOB = "sender-loop"
SIGNUP_JOB = "signups"
PURGE_PENDING_JOB = "purge-pending"
REFRESH_REQUESTS_JOB = "feed-refresh-requests"
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
    text = str(value).strip()
    hour_text, sep, minute_text = text.partition(":")
    # ASCII digits only: str.isdigit() also takes "０８" (full-width) and "²".
    digits = text.isascii() and hour_text.isdigit() and minute_text.isdigit()
    if sep and digits and len(minute_text) == 2:
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


def next_weekly_time(config: Mapping, now: datetime) -> datetime:
    """Return the first scheduled weekly digest time at or after ``now`` (aware).

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    return weekly_trigger(config).get_next_fire_time(None, now)


def run_time_of(config: Mapping, now: datetime, period: str) -> datetime:
    """Return the first weekly run at or after ``now`` whose period is ``period`` or later.

    That run is the one that sends a draft of ``period`` (:func:`weekly_digest_job`): the
    next run for a draft of its period or an earlier one, and for a draft built for a later
    week (``digest build --period``) the first run in that week.

    Raises:
        ValueError: a schedule setting or ``period`` is malformed; the message names it.
    """
    following = next_weekly_time(config, now)
    if period <= period_for(following, config["MAILER_TIMEZONE"]):
        return following
    year, week = parse_period(period)
    monday = date.fromisocalendar(year, week, 1)
    week_start = datetime.combine(monday, time(), tzinfo=ZoneInfo(config["MAILER_TIMEZONE"]))
    return weekly_trigger(config).get_next_fire_time(None, week_start)


def build_period(session: Session, config: Mapping, now: datetime) -> str:
    """Return the period ("YYYY-Www") of an issue built at ``now``, by hand or for a preview.

    It is the period of the first weekly run from ``now`` on whose week is not done yet
    (:func:`week_done`). The run at time T starts the issue of ``period_for(T)``, so an
    issue built before T must carry T's period for that run to find it: with a Monday 08:00
    schedule this is the current ISO week until Monday 08:00 and next week's from then on.
    A week whose issue an operator already sent ahead of its run is skipped, so that a build
    never returns an issue that is already out.

    One exception: when the last scheduled run has not happened (no worker ran it: its week
    is not done and it recorded no empty week) and ``now`` is within MAILER_MISFIRE_GRACE
    seconds of it, the issue is that run's: the worker's catch-up at start
    (:func:`check_last_week`) sends it, and next week's run would otherwise find it
    (and every item) while the catch-up finds nothing new and sends no issue that week.

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    pending = pending_catch_up(session, config, now)
    if pending is not None:
        return period_for(pending, config["MAILER_TIMEZONE"])
    trigger = weekly_trigger(config)
    fire = trigger.get_next_fire_time(None, now)
    period = period_for(fire, config["MAILER_TIMEZONE"])
    while week_done(session, period):  # ends: only weeks with a started issue are done
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        period = period_for(fire, config["MAILER_TIMEZONE"])
    return period


def pending_catch_up(session: Session, config: Mapping, now: datetime) -> datetime | None:
    """Return the last scheduled weekly time when its run is still owed, else None.

    Owed: its week is not done (:func:`week_done`), it recorded no ``empty_week`` event,
    and ``now`` is at most MAILER_MISFIRE_GRACE seconds after it, so a worker starting now
    still runs it (:func:`check_last_week` gives "run").

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    scheduled = last_weekly_time(config, now)
    if now - scheduled > timedelta(seconds=int(config["MAILER_MISFIRE_GRACE"])):
        return None
    period = period_for(scheduled, config["MAILER_TIMEZONE"])
    if week_done(session, period) or _has_event(session, "empty_week", period):
        return None
    return scheduled


def week_done(session: Session, period: str) -> bool:
    """Return whether the weekly run of ``period`` has nothing left to start.

    True once the period's issue left "draft" (sending, paused, sent or cancelled) or the
    run sent a draft of an earlier period (a ``JobEvent(kind="sent_draft")`` of the period).
    """
    issue = find_issue(session, period)
    if issue is not None and issue.status != IssueStatus.DRAFT:
        return True
    return _has_event(session, "sent_draft", period)


def build_scheduler(app: Flask) -> BlockingScheduler:
    """Return a BlockingScheduler (not started) with the six jobs bound to ``app``.

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
    add(refresh_requests_job, every_seconds, id=REFRESH_REQUESTS_JOB, **options)
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

    The last scheduled time's period counts as handled once its issue left "draft", when
    its run sent a draft built earlier (a ``JobEvent(kind="sent_draft")``), or when the
    weekly job ran and found no new items (a ``JobEvent(kind="empty_week")``). Otherwise
    it is sent now if ``now`` is within MAILER_MISFIRE_GRACE seconds of the scheduled time;
    later than that it is a missed week: logged, and recorded once per period as a
    ``JobEvent(kind="missed_week")`` for the dashboard (added to ``session``, not committed).
    A week scheduled before the service existed (see :func:`service_started_at`) is not
    missed: a fresh install has nothing to catch up, so the action is "none".
    """
    scheduled = last_weekly_time(config, now)
    period = period_for(scheduled, config["MAILER_TIMEZONE"])
    if week_done(session, period):
        return CatchUp("none", period, scheduled)
    if find_issue(session, period) is None and _has_event(session, "empty_week", period):
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
    draft = draft_to_send(session, up_to=period)
    if draft is not None:
        # Building the period would find no items: the waiting draft holds them.
        advice = (
            f"Draft #{draft.number} ({draft.period}) still waits: send it with "
            f"`flask --app wsgi digest send {draft.number}`, or the next weekly run sends it."
        )
    else:
        advice = (
            f"Send it by hand with `flask --app wsgi digest build --period {period}` and "
            f"`flask --app wsgi digest send`, or let next week's issue carry its items."
        )
    message = (
        f"{period}: the weekly digest due {scheduled.isoformat()} was not sent because no "
        f"worker ran then, and {late_by(now - scheduled)} late is past MAILER_MISFIRE_GRACE. "
        f"{advice}"
    )
    log.warning("missed week: %s", message)
    _record_once(session, "missed_week", period, message)


def _record_once(session: Session, kind: str, period: str, message: str) -> None:
    # One event of a kind per period for the dashboard, however often a run repeats; the
    # message must lead with the period (what _has_event looks for).
    if not _has_event(session, kind, period):
        session.add(JobEvent(kind=kind, message=message))


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
    """Start the issue of the last scheduled weekly run and send it; idempotent per week.

    The run of scheduled time T (period P, T's ISO week) starts one issue, the first of:

    1. the draft :func:`draft_to_send` picks for P: the newest one, built by hand since the
       last send ("Build now" on the admin's next-issue page, ``digest build``), which the
       page promised the worker sends at T. It goes out as it was built, previewed and
       test-sent; items that came in after the build are in no issue yet, so the next issue
       carries them. A draft of an earlier period (an explicit ``--period``, one built
       before periods followed the schedule, one whose run was missed) is recorded as a
       ``sent_draft`` JobEvent of P;
    2. P's issue, built now from the new items; none: an ``empty_week`` JobEvent of P.

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
        scheduled = last_weekly_time(app.config, clock.now())
        period = period_for(scheduled, app.config["MAILER_TIMEZONE"])
        chosen = _issue_to_start(db.session, period)
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
    _log_summary(send_pending(app, issue_number=number, transactional=False), _logged_leases(app))


def draft_to_send(session: Session, up_to: str | None = None) -> Issue | None:
    """Return the newest draft built since the last send, or None.

    Args:
        session: a SQLAlchemy session.
        up_to: a run's period ("YYYY-Www"): drafts built for a later week wait for it.
            None: any period.

    Returns:
        The newest draft (highest number) of ``up_to`` or an earlier period, when it is
        numbered above every issue whose send has started; else None. A draft below such an
        issue was passed over (a later issue went out first, by hand or by an earlier run):
        it is stale, and only an operator sends or cancels it, so that old drafts never go
        out one a week in place of new issues.
    """
    drafts = waiting_drafts(session, up_to=up_to)
    started = select(func.max(Issue.number)).where(Issue.send_started_at.is_not(None))
    last_started = session.scalar(started) or 0
    if drafts and drafts[0].number > last_started:
        return drafts[0]
    return None


def issue_for_run(session: Session, period: str) -> Issue | None:
    """Return the built draft that the weekly run of ``period`` starts, or None.

    The newest draft built since the last send (:func:`draft_to_send`) of ``period`` or
    earlier, else the period's own issue while it is a draft. None: the run builds the
    period's issue from the new items (or finds none). Whether the week is already done
    (:func:`week_done`) is for the caller to ask first.
    """
    chosen = draft_to_send(session, up_to=period)
    if chosen is not None:
        return chosen
    own = find_issue(session, period)
    return own if own is not None and own.status == IssueStatus.DRAFT else None


def _issue_to_start(session: Session, period: str) -> Issue | None:
    # The issue the run of ``period`` starts (rule in weekly_digest_job), or None when the
    # week is done or empty. JobEvents are added to the session, not committed.
    if week_done(session, period):
        log.info("weekly digest: the run of %s was done already", period)
        return None
    chosen = issue_for_run(session, period)
    if chosen is not None and chosen.period != period:
        _record_sent_draft(session, period, chosen)
    if chosen is None:
        chosen = build_issue(session, period=period)
        if chosen is None:
            log.info("weekly digest: no new items for %s, so no issue", period)
            message = f"{period}: no new items at the weekly run, so no issue was built."
            _record_once(session, "empty_week", period, message)
            return None
        if chosen.status != IssueStatus.DRAFT:  # another worker built and started it
            log.info("weekly digest: issue %s of %s is %s", chosen.number, period, chosen.status)
            return None
    others = [d for d in waiting_drafts(session, up_to=period) if d.id != chosen.id]
    _record_older_drafts(session, period, chosen, others)
    return chosen


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
    _record_once(session, "preflight_blocked", period, message)


def _record_sent_draft(session: Session, period: str, draft: Issue) -> None:
    message = (
        f"{period}: the weekly run sends draft #{draft.number} ({draft.period}, built "
        f"{draft.created_at:%Y-%m-%d %H:%M} UTC) as it was built, instead of building an "
        f"issue of {period}; items that came in after it was built go out with the next issue."
    )
    log.info("weekly digest: %s", message)
    session.add(JobEvent(kind="sent_draft", message=message))


def _record_older_drafts(session: Session, period: str, chosen: Issue, older: list) -> None:
    if not older:
        return
    names = ", ".join(f"#{draft.number} ({draft.period})" for draft in older)
    message = (
        f"{period}: draft issue(s) {names} were not sent: the weekly run sends one issue, "
        f"#{chosen.number}, and never an older draft. Send one with `flask --app wsgi digest "
        f"send NUMBER`, or cancel it on its page in the admin (its items then go out with the "
        f"next issue)."
    )
    log.warning("weekly digest: %s", message)
    _record_once(session, "older_drafts", period, message)


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
    _log_summary(send_pending(app, transactional=False), _logged_leases(app))


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
