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
from ..models import Issue, IssueKind, IssueStatus, IssueVariant, Item, Section
from .errors import DigestError
from .periods import parse_period, period_for
from .render import render_issue, sections_view

DEFAULT_ITEMS_PER_SECTION = 10
_ATTEMPTS = 3  # a lost race on the issue number is retried with the next number


def current_period(config: Mapping) -> str:
    """Return the ISO week of now in ``MAILER_TIMEZONE`` (e.g. ``"2026-W49"``).

    This is the calendar week, not always the period of the next send: after the weekly
    run, the next issue belongs to next week. Entry points that build "the next issue"
    (admin, ``digest build``) pass ``schedule.build_period`` instead, which knows the
    weekly calendar.
    """
    return period_for(clock.now(), config["MAILER_TIMEZONE"])


def find_issue(session: Session, period: str) -> Issue | None:
    """Return the scheduled issue of ``period`` that is not cancelled, or None.

    Extra issues (sent by hand ahead of their run) and cancelled ones do not hold their
    period: the weekly run, or a rebuild, makes a new issue of it.
    """
    query = select(Issue).where(
        Issue.period == period,
        Issue.kind == IssueKind.SCHEDULED,
        Issue.status != IssueStatus.CANCELLED,
    )
    return session.scalars(query).one_or_none()


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


def _new_items():
    # New: in no issue yet, not hidden, not a new feed's backlog (content.ingest).
    return (Item.issue_id.is_(None), Item.hidden.is_(False), Item.backlog.is_(False))


def pending_items(session: Session, per_section: int) -> dict[str, list[Item]]:
    """Return per section the new items (in no issue yet, not hidden, not backlog), newest
    first, at most ``per_section`` each (published_at desc, then id desc); the rest wait for
    a later issue.
    """
    chosen: dict[str, list[Item]] = {}
    for section in Section.ALL:
        query = (
            select(Item)
            .where(*_new_items(), Item.section == section)
            .order_by(Item.published_at.desc(), Item.id.desc())
            .limit(per_section)
            .options(selectinload(Item.feed))
        )
        chosen[section] = list(session.scalars(query))
    return chosen


def new_item_counts(session: Session) -> dict[str, int]:
    """Return {section: how many new items wait} (uncapped; see :func:`pending_items`)."""
    query = select(Item.section, func.count()).where(*_new_items()).group_by(Item.section)
    counts = dict.fromkeys(Section.ALL, 0)
    counts.update(dict(session.execute(query).tuples().all()))
    return counts


def min_items(config: Mapping, *, force: bool = False) -> int:
    """Return the fewest new items an issue is built with: MAILER_MIN_ITEMS, 1 with ``force``.

    Never less than 1: no issue is ever built without items.
    """
    return 1 if force else max(1, int(config.get("MAILER_MIN_ITEMS", 1)))


def shortfall(session: Session, config: Mapping, *, force: bool = False) -> str | None:
    """Return why a build now would make no issue (too few new items), or None if it would."""
    chosen = sum(len(items) for items in pending_items(session, _per_section(config)).values())
    needed = min_items(config, force=force)
    if chosen >= needed:
        return None
    if chosen == 0:
        return "no new items since the last issue"
    return f"only {chosen} new item(s), fewer than MAILER_MIN_ITEMS ({needed})"


def build_issue(
    session: Session, *, period: str | None = None, force: bool = False
) -> Issue | None:
    """Build, store and return the scheduled issue of ``period`` (default: the current week).

    Args:
        session: a SQLAlchemy session; committed on success, rolled back on a lost race.
        period: "YYYY-Www"; None for the current week in MAILER_TIMEZONE.
        force: build with fewer new items than MAILER_MIN_ITEMS, but never with none.

    Returns:
        The issue of the period (the existing one if it was built before, by anyone), or
        None when there were fewer new items than needed (:func:`shortfall` says why).

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
        if sum(len(chosen) for chosen in items.values()) < min_items(config, force=force):
            return None
        issue = _new_issue(session, config, period, items, variants=True)
        try:
            _store(session, issue, items)
        except (IntegrityError, _ItemsTaken):
            session.rollback()  # another builder won; look again
    existing = find_issue(session, period)
    if existing is None:
        raise DigestError(f"could not store the issue of {period}: concurrent builds kept winning")
    return existing


def make_extra(issue: Issue) -> None:
    """Mark a draft about to be sent by hand ahead of its run as an extra issue; no commit.

    An extra issue holds no period: the weekly run of its week still sends the items that
    come in after it (a manual send never consumes a scheduled run).
    """
    issue.kind = IssueKind.EXTRA


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


def _new_issue(
    session: Session, config: Mapping, period: str, items, *, variants: bool = False
) -> Issue:
    """The issue rendered once for subscribers of both topics; with ``variants``, once more
    for each single topic that has items (``IssueVariant`` rows, stored with the issue)."""
    number = (session.scalar(select(func.max(Issue.number))) or 0) + 1
    sections = sections_view(items, config["MAILER_TIMEZONE"])
    mail, preheader = render_issue(
        config, number=number, period=period, sections=sections, variant=Section.BOTH
    )
    issue = Issue(
        number=number,
        period=period,
        kind=IssueKind.SCHEDULED,
        status=IssueStatus.DRAFT,
        subject=mail.subject,
        preheader=preheader,
        html=mail.html,
        text=mail.text,
        created_at=clock.now(),
        error_streak=0,
    )
    if variants and any(section.items for section in sections):
        for section in sections:
            if not section.items:
                continue  # its subscribers get no mail this week (delivery.enqueue skips them)
            mail, preheader = render_issue(
                config, number=number, period=period, sections=[section], variant=section.key
            )
            issue.variants.append(
                IssueVariant(
                    sections=section.key,
                    subject=mail.subject,
                    preheader=preheader,
                    html=mail.html,
                    text=mail.text,
                )
            )
    return issue


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
