"""The Delivery table as a queue: set-based enqueue, counts, and keyset-paginated reads.

Nothing here loads a row per subscriber into Python: enqueueing a million subscribers is one
INSERT ... SELECT inside the database, and reads walk the primary key in batches
(``WHERE id > last ORDER BY id LIMIT n``), so memory stays flat as the list grows.
"""

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import and_, exists, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from .. import clock
from ..models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueVariant,
    Section,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
)
from .ledger import delivery_transition

PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)
PAUSED_REPLY = "not sent: the subscriber paused the newsletter (see their paused_until)"
NO_ITEMS_REPLY = "not sent: no new items in the subscriber's topics ({sections}) this issue"
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def recipient_count(session: Session) -> int:
    """Return how many subscribers a send started now would queue (the confirmed ones)."""
    query = select(func.count()).where(Subscriber.status == SubscriberStatus.CONFIRMED)
    return int(session.scalar(query) or 0)


def enqueue_issue(session: Session, issue: Issue) -> int:
    """Queue one Delivery per confirmed subscriber of ``issue``; does not commit.

    One ``INSERT INTO delivery ... SELECT ... FROM subscriber WHERE status = 'confirmed'
    ON CONFLICT (issue_id, subscriber_id) DO NOTHING``: idempotent, so a second call (or a
    second worker at the same moment) adds only subscribers confirmed since the first.
    Then :func:`skip_unwanted` marks the rows of those who get no mail this time.

    Returns:
        The number of deliveries added (skipped ones included).

    Raises:
        ValueError: the database is neither SQLite nor PostgreSQL.
    """
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise ValueError(f"enqueue_issue supports SQLite and PostgreSQL, not {dialect}")
    rows = (
        select(
            literal(issue.id),
            Subscriber.id,
            literal(DeliveryStatus.QUEUED),
            literal(0),
            literal(clock.now(), UTCDateTime()),
        )
        .where(Subscriber.status == SubscriberStatus.CONFIRMED)
        .order_by(Subscriber.id)
    )
    columns = ["issue_id", "subscriber_id", "status", "attempts", "created_at"]
    statement = (
        _INSERTS[dialect](Delivery.__table__)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
    )
    # preserve_rowcount: SQLAlchemy only keeps the rowcount of an INSERT when asked to.
    added = session.execute(statement.execution_options(preserve_rowcount=True)).rowcount
    skip_unwanted(session, issue)
    return added


def skip_unwanted(session: Session, issue: Issue) -> int:
    """Skip the queued deliveries of ``issue`` that must not go out now; does not commit.

    Set-based, a few UPDATEs whatever the number of subscribers, through the ledger's
    "skip" action with the reason in ``last_reply``:

    - subscribers whose pause (``paused_until``) has not ended yet;
    - subscribers whose topics have no items in this issue (no variant for their topics).
      An issue without variants (built before topics, or without items) skips no one.

    Returns:
        The number of deliveries skipped.
    """
    now = clock.now()
    queued = (Delivery.issue_id == issue.id, Delivery.status == DeliveryStatus.QUEUED)
    paused = select(Subscriber.id).where(Subscriber.paused_until > now)
    skipped = _skip(session, queued, paused, PAUSED_REPLY, now)
    variants = set(
        session.scalars(select(IssueVariant.sections).where(IssueVariant.issue_id == issue.id))
    )
    if variants:
        for sections in (Section.NEWS, Section.OPENINGS):
            if sections not in variants:
                rows = select(Subscriber.id).where(Subscriber.sections == sections)
                reason = NO_ITEMS_REPLY.format(sections=sections)
                skipped += _skip(session, queued, rows, reason, now)
    return skipped


def _skip(session: Session, queued: tuple, subscribers: Select, reason: str, now) -> int:
    statement = (
        delivery_transition("skip")
        .where(*queued, Delivery.subscriber_id.in_(subscribers.scalar_subquery()))
        .values(last_reply=reason, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount


def has_deliveries(conn: Connection | Session, issue_id: int) -> bool:
    """True when ``issue_id`` has at least one Delivery row (in any status)."""
    return bool(conn.scalar(select(exists().where(Delivery.issue_id == issue_id))))


def has_due(conn: Connection | Session, issue_id: int) -> bool:
    """True when ``issue_id`` has a queued or deferred delivery whose time has come."""
    now = clock.now()
    condition = or_(
        Delivery.status == DeliveryStatus.QUEUED,
        and_(Delivery.status == DeliveryStatus.DEFERRED, Delivery.next_attempt_at <= now),
    )
    return bool(conn.scalar(select(exists().where(Delivery.issue_id == issue_id, condition))))


def has_pending(conn: Connection | Session, issue_id: int) -> bool:
    """True while ``issue_id`` has queued or deferred deliveries (due or not)."""
    condition = Delivery.status.in_(PENDING)
    return bool(conn.scalar(select(exists().where(Delivery.issue_id == issue_id, condition))))


def next_retry_at(conn: Connection | Session, issue_id: int) -> datetime | None:
    """The earliest ``next_attempt_at`` of the issue's deferred deliveries, or None."""
    return conn.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.DEFERRED
        )
    )


def status_counts(conn: Connection | Session, issue_id: int) -> dict[str, int]:
    """Return {delivery status: count} for ``issue_id`` (every status, 0 when none)."""
    rows = conn.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    counts = dict.fromkeys(DeliveryStatus.ALL, 0)
    counts.update({status: number for status, number in rows})
    return counts


def keyset(conn: Connection | Session, query: Select, key, size: int = 1000) -> Iterator[list]:
    """Yield the rows of ``query`` in pages of ``size``, walking the unique column ``key``.

    Each page is ``query WHERE key > <last key> ORDER BY key LIMIT size``: no OFFSET, so
    page 1000 costs what page 1 costs. ``key`` must be selected by ``query`` (its value is
    read from each row's ``key.key`` attribute).
    """
    last = None
    while True:
        page_query = query.order_by(key).limit(size)
        if last is not None:
            page_query = page_query.where(key > last)
        rows = conn.execute(page_query).all()
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key.key)
        if len(rows) < size:
            return
