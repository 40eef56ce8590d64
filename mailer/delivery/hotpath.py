"""The two statements run for every message, compiled once and run on the DBAPI cursor.

Building and caching a SQLAlchemy statement costs about a hundred microseconds per call (its
cache key is recomputed each time), as much as personalising the message. These two run a
million times in a big send, so they are written with SQLAlchemy Core once, compiled for the
connection's dialect once, and then executed directly; the column types' own bind processors
convert the values, so what is stored is what SQLAlchemy would store.
"""

import threading
from contextlib import nullcontext
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Engine

from ..models import Delivery, DeliveryStatus, Issue, Subscriber
from .retry import REPLY_LIMIT

CHECK = (
    select(Delivery.status, Delivery.claimed_by, Subscriber.status, Issue.status)
    .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
    .join(Issue, Issue.id == Delivery.issue_id)
    .where(Delivery.id == bindparam("delivery_id"))
)
MARK_SENT = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"))
    .values(
        status=DeliveryStatus.SENT,
        attempts=bindparam("attempts"),
        last_code=bindparam("code"),
        last_reply=bindparam("reply"),
        sent_at=bindparam("now", type_=Delivery.sent_at.type),
        updated_at=bindparam("now", type_=Delivery.updated_at.type),
        next_attempt_at=None,
        claimed_until=None,
    )
)


class Prepared:
    """A statement compiled for one dialect, with its parameters converted by their types."""

    def __init__(self, conn: Connection, statement):
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.order = list(compiled.positiontup) if compiled.positional else None
        # Values written into the statement (e.g. status='sent') are bind parameters too.
        self.fixed = {name: b.value for name, b in compiled.binds.items() if not b.required}
        self.processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def params(self, values: dict):
        """Return ``values`` converted and shaped for the DBAPI (tuple or dict)."""
        values = {**self.fixed, **values}
        for name, processor in self.processors.items():
            values[name] = processor(values[name])
        if self.order is not None:
            return tuple(values[name] for name in self.order)
        return values


# SQLite has one writer at a time; a second one waits in SQLite's busy handler, which sleeps
# at least a millisecond per try. The senders of one process queue here instead, which costs
# microseconds (one commit takes about fifty).
_SQLITE_WRITES = threading.Lock()


class HotPath:
    """Per-message reads and writes of one sender on its autocommit connection.

    Args:
        conn: an autocommit SQLAlchemy connection (each statement commits by itself).

    It tunes the session for a stream of one-row commits (and :meth:`close` puts the settings
    back, since the connection returns to the pool):

    - PostgreSQL: ``synchronous_commit = off`` ("Asynchronous Commit" in the PostgreSQL
      manual): a commit returns once the server has it, before it is flushed to disk. A
      sender that crashes loses nothing (the server has every mark it acknowledged); only a
      crash of the database server itself may lose the marks of its last moments (at most
      three times ``wal_writer_delay``, 0.6 s by default), and those messages go out once
      more with the same Message-ID. Waiting for the flush costs a disk sync per message.
    - SQLite: ``wal_autocheckpoint = 0``. With ``synchronous=NORMAL`` a commit only appends
      to the WAL, but every thousandth page the committing connection checkpoints and syncs
      the disk twice; measured here that is three quarters of the cost of a commit. The
      runner checkpoints instead, once a second, off the senders' path
      (:func:`checkpoint`). Crash safety is unchanged: a commit is in the WAL either way.
    """

    def __init__(self, conn: Connection):
        self.cursor = conn.connection.dbapi_connection.cursor()
        self.dialect = conn.dialect.name
        self._check = Prepared(conn, CHECK)
        self._mark_sent = Prepared(conn, MARK_SENT)
        self._restore: list[str] = []
        self._write_lock = _SQLITE_WRITES if self.dialect == "sqlite" else nullcontext()
        if self.dialect == "postgresql":
            self.cursor.execute("SET synchronous_commit TO off")
            self._restore.append("RESET synchronous_commit")
        elif self.dialect == "sqlite":
            pages = self.cursor.execute("PRAGMA wal_autocheckpoint").fetchall()[0][0]
            self.cursor.execute("PRAGMA wal_autocheckpoint = 0")
            self._restore.append(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    def check(self, delivery_id: int) -> tuple | None:
        """Return (delivery status, claimed_by, subscriber status, issue status) or None."""
        self.cursor.execute(self._check.sql, self._check.params({"delivery_id": delivery_id}))
        # fetchall, not fetchone: stepping to the end finishes the statement, so SQLite ends
        # the read transaction now instead of at the next execute; a snapshot held across
        # the SMTP exchange would keep every other sender from checkpointing the WAL.
        rows = self.cursor.fetchall()
        return tuple(rows[0]) if rows else None

    def mark_sent(
        self, delivery_id: int, attempts: int, code: int, reply: str, now: datetime
    ) -> None:
        """Record the relay's acceptance of a delivery (status sent, reply, time); commits."""
        values = {
            "delivery_id": delivery_id,
            "attempts": attempts,
            "code": code,
            "reply": reply[:REPLY_LIMIT],
            "now": now,
        }
        params = self._mark_sent.params(values)
        with self._write_lock:
            self.cursor.execute(self._mark_sent.sql, params)

    def close(self) -> None:
        """Put the session settings back (the connection returns to the pool); close."""
        try:
            for statement in self._restore:
                self.cursor.execute(statement)
        finally:
            self.cursor.close()


def checkpoint(engine: Engine) -> None:
    """Checkpoint SQLite's WAL without waiting for anyone (PASSIVE); nothing elsewhere.

    The senders leave checkpoints to this (see :class:`HotPath`); the runner calls it about
    once a second while they work, and once at the end.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").fetchall()
