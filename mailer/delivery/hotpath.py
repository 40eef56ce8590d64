"""The two statements run for every message, compiled once and run on the DBAPI cursor.

Building and caching a SQLAlchemy statement costs about a hundred microseconds per call (its
cache key is recomputed each time), as much as personalising the message. These two run a
million times in a big send, so they are written with SQLAlchemy Core once, compiled for the
connection's dialect once, and then executed directly; the column types' own bind processors
convert the values, so what is stored is what SQLAlchemy would store.
"""

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

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


class HotPath:
    """Per-message reads and writes of one sender on its autocommit connection.

    Args:
        conn: an autocommit SQLAlchemy connection (each statement commits by itself).
    """

    def __init__(self, conn: Connection):
        self.cursor = conn.connection.dbapi_connection.cursor()
        self.dialect = conn.dialect.name
        self._relaxed = False
        self._check = Prepared(conn, CHECK)
        self._mark_sent = Prepared(conn, MARK_SENT)

    def relax_durability(self) -> None:
        """On PostgreSQL, stop waiting for the WAL flush at each commit (this session only).

        ``synchronous_commit = off`` (PostgreSQL manual, "Asynchronous Commit"): a commit
        returns once PostgreSQL has it, before it is on disk. A sender that crashes loses
        nothing (the server has every mark it acknowledged); only a crash of the database
        server itself may lose the marks of its last moments (at most three times
        ``wal_writer_delay``, 0.6 s by default), and those messages are sent once more, with
        the same Message-ID. Waiting for the flush instead costs a disk sync per message and
        caps a sender at a few hundred messages per second. SQLite in WAL mode with
        ``synchronous=NORMAL`` already behaves this way.
        """
        if self.dialect == "postgresql":
            self.cursor.execute("SET synchronous_commit TO off")
            self._relaxed = True

    def check(self, delivery_id: int) -> tuple | None:
        """Return (delivery status, claimed_by, subscriber status, issue status) or None."""
        self.cursor.execute(self._check.sql, self._check.params({"delivery_id": delivery_id}))
        row = self.cursor.fetchone()
        return tuple(row) if row is not None else None

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
        self.cursor.execute(self._mark_sent.sql, self._mark_sent.params(values))

    def close(self) -> None:
        """Restore the session's durability setting and close the cursor."""
        try:
            if self._relaxed:
                # The connection goes back to the pool: its next user gets the default.
                self.cursor.execute("RESET synchronous_commit")
        finally:
            self.cursor.close()
