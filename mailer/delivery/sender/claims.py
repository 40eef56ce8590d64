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
rows leased until ``claimed_until``; then any sender may claim them again. A sender that
starts on the same machine, in the same boot, may give such leases back at once when it can
prove their claimer is gone (:func:`release_dead_claims`).
"""

import functools
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection

from ...models import Delivery, DeliveryStatus, Subscriber

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
PID_NAMESPACE = "/proc/self/ns/pid"
UNKNOWN_BOOT = "-"
# What follows "host:boot:" in a name made by worker_id; a name cut short at 128 characters
# (a very long host name) does not match, so its pid is never trusted.
_NAME_TAIL = re.compile(r"(?P<pid>[1-9][0-9]{0,9}):[0-9]+:[0-9a-f]{6}")
_PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)


@functools.cache
def boot_id() -> str:
    """Where this process's pid means something: this boot of the kernel and its pid namespace.

    Form: the first 8 hex digits of the kernel's boot id (a new random one at every boot,
    ``/proc/sys/kernel/random/boot_id``, see random(4)), a dot, and the inode number of this
    process's pid namespace (``/proc/self/ns/pid``, see pid_namespaces(7)), so that two
    containers sharing the host's name and kernel never take each other's pids for their
    own. Read once, on first use. Returns ``UNKNOWN_BOOT`` ("-") when either cannot be read
    (not Linux, or /proc not mounted): such a sender never releases a claim.
    """
    try:
        with open(BOOT_ID_FILE, encoding="ascii") as file:
            digits = file.read().strip().replace("-", "").lower()
        namespace = os.stat(PID_NAMESPACE).st_ino
    except (OSError, UnicodeDecodeError):
        return UNKNOWN_BOOT
    if not re.fullmatch(r"[0-9a-f]{8,}", digits):
        return UNKNOWN_BOOT
    return f"{digits[:8]}.{namespace}"


def worker_id(slot: int) -> str:
    """A claimer name unique across machines, processes and restarts.

    Form: ``host:boot:pid:slot:random`` (``boot`` from :func:`boot_id`), cut to 128
    characters (the column's width). Host, boot and pid let a later sender on the same
    machine see whether the claimer still runs (:func:`release_dead_claims`).
    """
    host = socket.gethostname()
    return f"{host}:{boot_id()}:{os.getpid()}:{slot}:{uuid.uuid4().hex[:6]}"[:128]


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
    sections: str  # the subscriber's topics: which variant of the issue they get
    paused_until: datetime | None  # no digest before this (the preference page's pause)


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
            Subscriber.sections,
            Subscriber.paused_until,
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
    where = [Delivery.issue_id == issue_id, Delivery.status == status, free]
    if status == DeliveryStatus.DEFERRED:
        where.append(Delivery.next_attempt_at <= now)
    lease = {"claimed_by": worker, "claimed_until": now + LEASE}
    return claim_rows(conn, Delivery, where, size=size, lease=lease)


def claim_rows(conn: Connection, model, where: list, *, size: int, lease: dict) -> list[int]:
    """Lease up to ``size`` rows of ``model`` matching ``where``, lowest id first; one statement.

    The one claim mechanism of the delivery room (digest deliveries and transactional mail):
    ``UPDATE ... SET <lease> WHERE id IN (SELECT id ... ORDER BY id LIMIT size FOR UPDATE
    SKIP LOCKED) RETURNING id``. Concurrent claimers on PostgreSQL take disjoint rows without
    waiting; SQLite's single writer makes the same statement atomic.

    Returns:
        The ids claimed (empty when none matched or all were locked).
    """
    candidates = (
        select(model.id)
        .where(*where)
        .order_by(model.id)
        .limit(size)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(model)
        .where(model.id.in_(candidates.scalar_subquery()))
        .values(**lease)
        .returning(model.id)
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


def release_dead_claims(conn: Connection, issue_id: int, now: datetime) -> int:
    """Give back the live leases on ``issue_id``'s unsent rows whose claimer has stopped.

    Args:
        conn: a connection in autocommit mode (each release commits at once).
        issue_id: Issue.id. now: the current time (aware UTC); leases ending after it count.

    Returns:
        The number of deliveries released (their ``claimed_by`` and ``claimed_until``
        cleared, so that any sender may claim them now instead of when the lease ends).

    Why this is safe: a claim is released only when its name (:func:`worker_id`) carries
    this machine's host name AND this boot's id, and no process with its pid exists
    (``kill(pid, 0)`` fails with ESRCH, POSIX kill(2); EPERM means it runs as another user,
    so it is alive). Within one boot a pid names one process until that process ends, so a
    live claimer is never taken for a dead one; a dead claimer whose pid was reused meanwhile
    looks alive, and its lease just runs out. The boot id tells apart two machines that
    share a host name (and one machine before and after a reboot), which must never release
    each other's claims. A name from another host or boot, one that cannot be parsed, and
    every name when this machine's boot id is unknown are left to their leases. Only queued
    or deferred rows still claimed by that name are touched, so a row sent or claimed again
    meanwhile stays as it is. One assumption: senders in different pid namespaces of one
    kernel (containers share the boot id) have different host names, as containers do by
    default; with the host's name (host networking) one could not see the other's pid.
    """
    if boot_id() == UNKNOWN_BOOT or os.name != "posix":
        return 0  # nothing provable (and on Windows os.kill(pid, 0) would end the process)
    leased = and_(
        Delivery.issue_id == issue_id,
        Delivery.status.in_(_PENDING),
        Delivery.claimed_until > now,
    )
    names = conn.scalars(select(Delivery.claimed_by).where(leased).distinct()).all()
    released = 0
    for name in names:
        pid = _dead_local_pid(name)
        if pid is None:
            continue
        count = conn.execute(
            update(Delivery)
            .where(leased, Delivery.claimed_by == name)
            .values(claimed_by=None, claimed_until=None)
            .execution_options(preserve_rowcount=True)
        ).rowcount
        if count:
            log.info("released %d deliveries leased by a sender that stopped (pid %d)", count, pid)
        released += count
    return released


def _dead_local_pid(name: str | None) -> int | None:
    """The pid in ``name`` when it is a claimer of this host and boot that no longer runs."""
    prefix = f"{socket.gethostname()}:{boot_id()}:"
    if name is None or not name.startswith(prefix):
        return None
    tail = _NAME_TAIL.fullmatch(name[len(prefix) :])
    if tail is None:
        return None
    pid = int(tail["pid"])
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists (POSIX kill(2))
    except ProcessLookupError:
        return pid
    except (OSError, OverflowError):
        return None  # EPERM: it runs (as another user); anything else: not provably dead
    return None


@dataclass(frozen=True)
class Leases:
    """Due deliveries of one issue that another sender holds: how many, and until when."""

    count: int
    until: datetime  # the latest lease end (aware UTC): all are claimable by then


def leased_elsewhere(conn: Connection, issue_id: int, now: datetime) -> Leases | None:
    """Count ``issue_id``'s due deliveries under a lease that ends after ``now``.

    Due means queued, or deferred with ``next_attempt_at <= now``. Called after a run, these
    are rows this run could not claim (its own senders give back what they did not send).

    Returns:
        A :class:`Leases`, or None when no due delivery is leased.
    """
    due = or_(
        Delivery.status == DeliveryStatus.QUEUED,
        and_(Delivery.status == DeliveryStatus.DEFERRED, Delivery.next_attempt_at <= now),
    )
    count, until = conn.execute(
        select(func.count(), func.max(Delivery.claimed_until)).where(
            Delivery.issue_id == issue_id, due, Delivery.claimed_until > now
        )
    ).one()
    return Leases(int(count), until) if count else None
