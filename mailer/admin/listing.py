"""Read-only lists for the admin pages, paginated by keyset (``WHERE id < :after``).

No OFFSET and no total count: a page costs the same on the first and on the millionth row.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from ..models import (
    Bounce,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Feed,
    Issue,
    Item,
    Subscriber,
)

PAGE_SIZE = 50
EXPORT_COLUMNS = (
    Subscriber.id,
    Subscriber.email,
    Subscriber.status,
    Subscriber.source,
    Subscriber.created_at,
    Subscriber.confirmed_at,
    Subscriber.unsubscribed_at,
    Subscriber.sections,
    Subscriber.paused_until,
)


@dataclass(frozen=True)
class Page:
    """One page of rows, newest first, with the keys of the neighbouring pages (or None)."""

    rows: Sequence[Any]
    older: int | None
    newer: int | None


def keyset_page(
    session: Session, query: Select, key, *, after: int | None, before: int | None, size: int
) -> Page:
    """Run ``query`` for one page in descending ``key`` order.

    Args:
        key: the unique, indexed column to page on (an id).
        after: show rows with ``key < after`` (the next, older page).
        before: show rows with ``key > before`` (the previous, newer page).
        size: rows per page.
    """
    if before is not None:
        rows = list(session.execute(query.where(key > before).order_by(key.asc()).limit(size + 1)))
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        more_older = True
    else:
        if after is not None:
            query = query.where(key < after)
        rows = list(session.execute(query.order_by(key.desc()).limit(size + 1)))
        more_older = len(rows) > size
        rows = rows[:size]
        more_newer = after is not None
    first, last = (rows[0][0].id, rows[-1][0].id) if rows else (None, None)
    return Page(
        rows=[row[0] for row in rows],
        older=last if more_older and rows else None,
        newer=first if more_newer and rows else None,
    )


def subscriber_page(
    session: Session,
    *,
    search: str = "",
    status: str = "",
    sections: str = "",
    after: int | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """Return a page of subscribers, newest first.

    Args:
        search: part of the address, matched case-insensitively (``%`` and ``_`` literal).
        status: one SubscriberStatus value, or "" for all.
        sections: the topics (``Section.key`` form: "news", "openings", "news,openings"),
            or "" for all.
    """
    query = select(Subscriber)
    if search:
        query = query.where(func.lower(Subscriber.email).contains(search.lower(), autoescape=True))
    if status:
        query = query.where(Subscriber.status == status)
    if sections:
        query = query.where(Subscriber.sections == sections)
    return keyset_page(session, query, Subscriber.id, after=after, before=before, size=size)


def export_batches(
    session: Session, *, status: str = "", sections: str = "", batch_size: int = 1000
) -> Iterator[Sequence[Any]]:
    """Yield batches of subscriber rows (tuples of EXPORT_COLUMNS) in id order.

    Each batch is one keyset query of at most ``batch_size`` rows, so memory stays flat
    whatever the number of subscribers.
    """
    last_id = 0
    while True:
        query = select(*EXPORT_COLUMNS).where(Subscriber.id > last_id)
        if status:
            query = query.where(Subscriber.status == status)
        if sections:
            query = query.where(Subscriber.sections == sections)
        batch = session.execute(query.order_by(Subscriber.id).limit(batch_size)).all()
        if not batch:
            return
        yield batch
        last_id = batch[-1][0]


def consent_events(session: Session, subscriber_id: int, limit: int = 200) -> list[ConsentEvent]:
    """Return a subscriber's consent history, newest first."""
    query = select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
    return list(session.scalars(query.order_by(ConsentEvent.id.desc()).limit(limit)))


def subscriber_deliveries(
    session: Session, subscriber_id: int, limit: int = 100
) -> list[tuple[Delivery, int]]:
    """Return [(Delivery, issue number)] of a subscriber, newest first."""
    query = (
        select(Delivery, Issue.number)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return [(delivery, number) for delivery, number in session.execute(query)]


def failed_deliveries(
    session: Session, issue_id: int, *, after: int | None = None, size: int = PAGE_SIZE
) -> tuple[list[tuple[Delivery, str]], int | None]:
    """Return ([(Delivery, address)], key of the next page or None) of an issue's failures."""
    query = (
        select(Delivery, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.FAILED)
    )
    if after is not None:
        query = query.where(Delivery.id < after)
    rows = session.execute(query.order_by(Delivery.id.desc()).limit(size + 1)).all()
    older = rows[size - 1][0].id if len(rows) > size else None
    return [(delivery, email) for delivery, email in rows[:size]], older


def item_page(
    session: Session,
    *,
    section: str = "",
    after: int | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """Return a page of items (hidden ones too), newest first, optionally of one section."""
    # The feed and issue of each row are shown: load them in two queries, not two per row.
    query = select(Item).options(selectinload(Item.feed), selectinload(Item.issue))
    if section:
        query = query.where(Item.section == section)
    return keyset_page(session, query, Item.id, after=after, before=before, size=size)


def feeds_with_counts(session: Session) -> list[tuple[Feed, int]]:
    """Return [(Feed, number of items from it)], oldest feed first."""
    counts = (
        select(Item.feed_id, func.count().label("item_count"))
        .where(Item.feed_id.is_not(None))
        .group_by(Item.feed_id)
        .subquery()
    )
    query = (
        select(Feed, func.coalesce(counts.c.item_count, 0))
        .outerjoin(counts, counts.c.feed_id == Feed.id)
        .order_by(Feed.id)
    )
    return [(feed, number) for feed, number in session.execute(query)]


def issue_page(
    session: Session, *, after: int | None = None, size: int = PAGE_SIZE
) -> tuple[list[Issue], int | None]:
    """Return (issues newest first, the number to continue after or None)."""
    query = select(Issue)
    if after is not None:
        query = query.where(Issue.number < after)
    issues = list(session.scalars(query.order_by(Issue.number.desc()).limit(size + 1)))
    older = issues[size - 1].number if len(issues) > size else None
    return issues[:size], older


BOUNCE_KINDS = ("hard", "soft", "complaint")


def latest_bounces(
    session: Session, *, kind: str = "", subscriber_id: int | None = None, limit: int = 200
) -> list[tuple]:
    """Return [(Bounce, subscriber address, issue number or None)], newest first.

    ``kind``: one of :data:`BOUNCE_KINDS` to filter, "" for all.
    """
    query = (
        select(Bounce, Subscriber.email, Issue.number)
        .join(Subscriber, Subscriber.id == Bounce.subscriber_id)
        .outerjoin(Delivery, Delivery.id == Bounce.delivery_id)
        .outerjoin(Issue, Issue.id == Delivery.issue_id)
    )
    if kind in BOUNCE_KINDS:
        query = query.where(Bounce.kind == kind)
    if subscriber_id is not None:
        query = query.where(Bounce.subscriber_id == subscriber_id)
    return list(session.execute(query.order_by(Bounce.id.desc()).limit(limit)).tuples())
