"""Atomic batch claims with a lease, so that many senders split one issue and never share a row.

A claim is ONE statement::

    UPDATE delivery SET claimed_by = :me, claimed_until = :now + lease
    WHERE id IN (SELECT id FROM delivery
                 WHERE issue_id = :issue AND status = :status AND <due> AND <lease free>
                 ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)
    RETURNING id

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` makes concurrent claimers take disjoint rows without
waiting for each other; SQLite has one writer at a time, so the same UPDATE (without the
locking clause, which its dialect leaves out) is atomic there. A claimer that dies leaves its
rows leased until ``claimed_until``; then any sender may claim them again.
"""

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from ..models import Delivery, DeliveryStatus, Subscriber

LEASE = timedelta(minutes=5)


def worker_id(slot: int) -> str:
    """A claimer name unique across machines, processes and restarts: host:pid:slot:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{slot}:{uuid.uuid4().hex[:6]}"[:128]


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery with what is needed to personalise and send it."""

    delivery_id: int
    subscriber_id: int
    email: str
    version: int
    attempts: int
    retry_until: datetime | None
    soft_failures: int


def claim_batch(
    conn: Connection, *, issue_id: int, worker: str, size: int, now: datetime
) -> list[Claimed]:
    """Claim up to ``size`` due deliveries of ``issue_id`` for ``worker``, oldest id first.

    Queued rows come first, then deferred rows whose retry time has come. Each claim commits
    at once (``conn`` is in autocommit mode), so the lease is visible to every other sender.

    Returns:
        The claimed rows in id order (empty when nothing is due or all is leased).
    """
    ids: list[int] = []
    for status in (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED):
        if len(ids) < size:
            ids += _claim(conn, issue_id, status, worker, size - len(ids), now)
    if not ids:
        return []
    rows = conn.execute(
        select(
            Delivery.id,
            Delivery.subscriber_id,
            Subscriber.email,
            Subscriber.version,
            Delivery.attempts,
            Delivery.retry_until,
            Subscriber.soft_failures_in_row,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    )
    return [Claimed(*row) for row in rows]


def _claim(
    conn: Connection, issue_id: int, status: str, worker: str, size: int, now: datetime
) -> list[int]:
    free = or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now)
    candidates = select(Delivery.id).where(Delivery.issue_id == issue_id, Delivery.status == status)
    if status == DeliveryStatus.DEFERRED:
        candidates = candidates.where(Delivery.next_attempt_at <= now)
    candidates = (
        candidates.where(free).order_by(Delivery.id).limit(size).with_for_update(skip_locked=True)
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(candidates.scalar_subquery()))
        .values(claimed_by=worker, claimed_until=now + LEASE)
        .returning(Delivery.id)
    )
    return list(conn.scalars(statement))


def renew(conn: Connection, ids: list[int], worker: str, now: datetime) -> None:
    """Extend the lease of ``worker``'s still unsent rows among ``ids`` to ``now + LEASE``."""
    if ids:
        conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.claimed_by == worker)
            .values(claimed_until=now + LEASE)
        )


def release(conn: Connection, ids: list[int], worker: str) -> None:
    """Give back ``worker``'s leases on ``ids`` (a paused or stopped sender's unsent rows)."""
    if ids:
        conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.claimed_by == worker)
            .values(claimed_until=None)
        )
