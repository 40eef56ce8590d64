"""Which issue each weekly run sends: used alike by the worker's scheduler, the admin's
next-issue page and the ``digest`` commands (the calendar itself is :mod:`.calendar`).

The rules (issue 12): each weekly run sends one issue with the items new since the last
sent issue, when there are at least MAILER_MIN_ITEMS of them; otherwise it sends nothing and
records why (an ``empty_week`` JobEvent, on the dashboard). An issue sent by hand ahead of
its run (Send now, ``digest send``) is an *extra* issue (:func:`mark_manual_send`): it never
moves or consumes a scheduled run. A cancelled draft gives its items back and its week stays
open, so the next run or a rebuild takes them.

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
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AdminUser, Feed, Issue, IssueKind, IssueStatus, JobEvent, Subscriber
from .build import build_issue, find_issue, make_extra, shortfall, waiting_drafts
from .calendar import digest_time as digest_time
from .calendar import digest_weekday as digest_weekday
from .calendar import last_weekly_time as last_weekly_time
from .calendar import late_by as late_by
from .calendar import next_weekly_time as next_weekly_time
from .calendar import run_time_of as run_time_of
from .calendar import weekly_trigger as weekly_trigger
from .periods import period_for

log = logging.getLogger(__name__)


def build_period(session: Session, config: Mapping, now: datetime) -> str:
    """Return the period ("YYYY-Www") of an issue built at ``now``, by hand or for a preview.

    It is the period of the first weekly run from ``now`` on whose week is not done yet
    (:func:`week_done`). The run at time T starts the issue of ``period_for(T)``, so an
    issue built before T must carry T's period for that run to find it: with a Monday 08:00
    schedule this is the current ISO week until Monday 08:00 and next week's from then on.
    A week whose run already started its issue is skipped, so that a build never returns an
    issue that is already out (an extra issue sent by hand does not count: the week's run
    still sends what comes in after it).

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
    if week_done(session, period) or has_event(session, "empty_week", period):
        return None
    return scheduled


def week_done(session: Session, period: str) -> bool:
    """Return whether the weekly run of ``period`` has nothing left to start.

    True once a scheduled issue of the period was started (it may since have been paused,
    sent or cancelled during its send) or the run sent a draft of an earlier period (a
    ``JobEvent(kind="sent_draft")`` of the period). Extra issues and drafts cancelled
    before their send do not count.
    """
    started = select(Issue.id).where(
        Issue.period == period,
        Issue.kind == IssueKind.SCHEDULED,
        Issue.send_started_at.is_not(None),
    )
    if session.scalar(started.limit(1)) is not None:
        return True
    return has_event(session, "sent_draft", period)


def mark_manual_send(session: Session, config: Mapping, issue: Issue, now: datetime) -> bool:
    """Make a draft sent by hand (Send now, ``digest send``) an extra issue when its run is
    still ahead; no commit. Returns whether it became one.

    Sent ahead of its weekly run, it must not consume that run: the run still sends the
    items that come in after it. A draft whose run is due or past (a missed or blocked run
    sent late by hand) stays that run's scheduled issue, and its week is then done.

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    if issue.status != IssueStatus.DRAFT or issue.kind != IssueKind.SCHEDULED:
        return False
    last_run = period_for(last_weekly_time(config, now), config["MAILER_TIMEZONE"])
    if issue.period <= last_run and not week_done(session, issue.period):
        return False
    make_extra(issue)
    return True


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
    if find_issue(session, period) is None and has_event(session, "empty_week", period):
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
    record_once(session, "missed_week", period, message)


def record_once(session: Session, kind: str, period: str, message: str) -> None:
    """Add a JobEvent of ``kind`` for ``period`` unless it has one (added, not committed).

    The dashboard shows one event a kind and period, however often a run repeats;
    ``message`` must lead with the period ("2026-W49: ..."), which :func:`has_event` reads.
    """
    if not has_event(session, kind, period):
        session.add(JobEvent(kind=kind, message=message))


def has_event(session: Session, kind: str, period: str) -> bool:
    """Return whether a JobEvent of ``kind`` for ``period`` exists ("2026-W49: ..." leads)."""
    found = select(JobEvent.id).where(JobEvent.kind == kind, JobEvent.message.like(f"{period}:%"))
    return session.scalar(found.limit(1)) is not None


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


def issue_to_start(session: Session, config: Mapping, period: str) -> Issue | None:
    """Return the issue the weekly run of ``period`` starts, building it if need be, or None.

    None when the week is done or has no new items (the rule: ``scheduler.weekly_digest_job``).
    JobEvents are added to the session, not committed.
    """
    if week_done(session, period):
        log.info("weekly digest: the run of %s was done already", period)
        return None
    chosen = issue_for_run(session, period)
    if chosen is not None and chosen.period != period:
        _record_sent_draft(session, period, chosen)
    if chosen is None:
        reason = shortfall(session, config)
        chosen = None if reason else build_issue(session, period=period)
        if chosen is None:
            reason = reason or "no new items since the last issue"
            log.info("weekly digest: nothing sent for %s: %s", period, reason)
            message = f"{period}: the weekly run sent nothing: {reason}."
            record_once(session, "empty_week", period, message)
            return None
        if chosen.status != IssueStatus.DRAFT:  # another worker built and started it
            log.info("weekly digest: issue %s of %s is %s", chosen.number, period, chosen.status)
            return None
    others = [d for d in waiting_drafts(session, up_to=period) if d.id != chosen.id]
    _record_older_drafts(session, period, chosen, others)
    return chosen


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
    record_once(session, "older_drafts", period, message)
