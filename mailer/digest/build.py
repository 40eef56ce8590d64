"""Build the weekly issue: pick the new items, number the issue, render it once, store it.

Several workers may build at the same moment (a re-fired job, a second machine). The
unique ``Issue.period`` and ``Issue.number`` keys decide: the loser's INSERT fails, it rolls
back and returns the winner's issue. Items are claimed with ``UPDATE ... WHERE issue_id IS
NULL`` so that no item is ever carried by two issues.
"""

from collections.abc import Mapping, Sequence

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from .. import clock
from ..models import Issue, IssueStatus, Item, Section
from .errors import DigestError
from .periods import parse_period, period_for
from .render import render_issue, sections_view

DEFAULT_ITEMS_PER_SECTION = 10
_ATTEMPTS = 3  # a lost race on the issue number is retried with the next number


def current_period(config: Mapping) -> str:
    """Return the ISO week of now in ``MAILER_TIMEZONE`` (e.g. ``"2026-W49"``).

    This is the calendar week, not always the period of the next send: after the weekly
    run, the next issue belongs to next week. Entry points that build "the next issue"
    (admin, ``digest build``) pass ``mailer.scheduler.build_period`` instead; the digest
    room does not read the schedule (DESIGN.md: no upward imports).
    """
    return period_for(clock.now(), config["MAILER_TIMEZONE"])


def find_issue(session: Session, period: str) -> Issue | None:
    """Return the issue of ``period``, or None when there is none yet."""
    return session.scalars(select(Issue).where(Issue.period == period)).one_or_none()


def waiting_drafts(session: Session, up_to: str | None = None) -> list[Issue]:
    """Return the issues still in draft, newest (highest number) first.

    Args:
        session: a SQLAlchemy session.
        up_to: a period "YYYY-Www"; when given, only drafts of that period or an earlier
            one (periods compare as text: four-digit year, two-digit week).
    """
    query = select(Issue).where(Issue.status == IssueStatus.DRAFT)
    if up_to is not None:
        query = query.where(Issue.period <= up_to)
    return list(session.scalars(query.order_by(Issue.number.desc())))


def release_items(session: Session, issue_id: int) -> int:
    """Give the items of an issue that went to no one back to the next issue; no commit.

    For a draft that is cancelled before its send started: its items would otherwise stay
    tied to an issue nobody receives and never reach subscribers.

    Returns:
        The number of items released.
    """
    released = session.execute(
        update(Item)
        .where(Item.issue_id == issue_id)
        .values(issue_id=None)
        .execution_options(synchronize_session=False)
    )
    return released.rowcount


def pending_items(session: Session, per_section: int) -> dict[str, list[Item]]:
    """Return per section the items in no issue yet, not hidden, newest first, at most
    ``per_section`` each (published_at desc, then id desc); the rest wait for a later issue.
    """
    chosen: dict[str, list[Item]] = {}
    for section in Section.ALL:
        query = (
            select(Item)
            .where(Item.issue_id.is_(None), Item.hidden.is_(False), Item.section == section)
            .order_by(Item.published_at.desc(), Item.id.desc())
            .limit(per_section)
            .options(selectinload(Item.feed))
        )
        chosen[section] = list(session.scalars(query))
    return chosen


def build_issue(
    session: Session, *, period: str | None = None, force: bool = False
) -> Issue | None:
    """Build, store and return the issue of ``period`` (default: the current ISO week).

    Args:
        session: a SQLAlchemy session; committed on success, rolled back on a lost race.
        period: "YYYY-Www"; None for the current week in MAILER_TIMEZONE.
        force: build an issue even when there are no new items.

    Returns:
        The issue of the period (the existing one if it was built before, by anyone), or
        None when there were no new items and ``force`` was not given.

    Raises:
        PeriodError (ValueError): for a malformed period. DigestError: when the database
        refused the issue for another reason than a concurrent build. Needs an app context.
    """
    config = current_app.config
    period = period or current_period(config)
    parse_period(period)
    for _ in range(_ATTEMPTS):
        existing = find_issue(session, period)
        if existing is not None:
            return existing
        items = pending_items(session, _per_section(config))
        if not force and not any(items.values()):
            return None
        issue = _new_issue(session, config, period, items)
        try:
            _store(session, issue, items)
        except (IntegrityError, _ItemsTaken):
            session.rollback()  # another builder won; look again
    existing = find_issue(session, period)
    if existing is None:
        raise DigestError(f"could not store the issue of {period}: concurrent builds kept winning")
    return existing


def render_preview(session: Session, period: str | None = None) -> Issue:
    """Return what the next issue would be now: a transient Issue, not added to the session.

    Args:
        session: a SQLAlchemy session (read only).
        period: "YYYY-Www" that labels the preview; None for the current ISO week.

    Nothing is assigned or stored; the items stay free for the real build. Needs an app
    context. The preview's ``number`` is the next one.

    Raises:
        PeriodError (ValueError): for a malformed period.
    """
    config = current_app.config
    period = period or current_period(config)
    parse_period(period)
    items = pending_items(session, _per_section(config))
    issue = _new_issue(session, config, period, items)
    # Not assigned to the transient issue (that would claim them): kept aside for preflight,
    # which must tell the items' own text from our templates' output.
    issue.preview_items = [item for section in items.values() for item in section]
    return issue


class _ItemsTaken(Exception):
    """Some chosen item was claimed by another issue between our SELECT and our UPDATE."""


def _per_section(config: Mapping) -> int:
    return max(0, int(config.get("MAILER_DIGEST_ITEMS_PER_SECTION", DEFAULT_ITEMS_PER_SECTION)))


def _new_issue(session: Session, config: Mapping, period: str, items) -> Issue:
    number = (session.scalar(select(func.max(Issue.number))) or 0) + 1
    sections = sections_view(items, config["MAILER_TIMEZONE"])
    mail, preheader = render_issue(config, number=number, period=period, sections=sections)
    return Issue(
        number=number,
        period=period,
        status=IssueStatus.DRAFT,
        subject=mail.subject,
        preheader=preheader,
        html=mail.html,
        text=mail.text,
        created_at=clock.now(),
        error_streak=0,
    )


def _store(session: Session, issue: Issue, items: Mapping[str, Sequence[Item]]) -> None:
    session.add(issue)
    session.flush()  # the INSERT: a concurrent builder of this period fails here
    ids = [item.id for chosen in items.values() for item in chosen]
    if ids:
        claimed = session.execute(
            update(Item)
            .where(Item.id.in_(ids), Item.issue_id.is_(None))
            .values(issue_id=issue.id)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != len(ids):
            raise _ItemsTaken()
    session.commit()
