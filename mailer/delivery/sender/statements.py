"""The two statements run for every message, compiled once and run on the DBAPI cursor.

Building and caching a SQLAlchemy statement costs about a hundred microseconds per call (its
cache key is recomputed each time), as much as personalising the message. These two run a
million times in a big send, so they are written with SQLAlchemy Core once, compiled for the
connection's dialect once, and then executed directly; the column types' own bind processors
convert the values, so what is stored is what SQLAlchemy would store.
"""

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Engine

from ...models import Delivery, Issue, Subscriber
from ..ledger import delivery_transition
from ..retry import REPLY_LIMIT

WAIT_MS = 200  # longest a checkpoint waits for other connections
CHECK_AHEAD = 32  # rows checked per query: the next message and the ones after it
CHECK = (
    select(Delivery.id, Delivery.status, Delivery.claimed_by, Subscriber.status, Issue.status)
    .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
    .join(Issue, Issue.id == Delivery.issue_id)
    .where(Delivery.id.in_([bindparam(f"id{n}") for n in range(CHECK_AHEAD)]))
)
MARK_SENT = (
    delivery_transition("sent")
    .where(Delivery.id == bindparam("delivery_id"))
    .values(
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
        self._sent: list = []  # noted sent marks, written by flush()
        self._restore: list[str] = []
        if self.dialect == "postgresql":
            self.cursor.execute("SET synchronous_commit TO off")
            self._restore.append("RESET synchronous_commit")
        elif self.dialect == "sqlite":
            pages = self.cursor.execute("PRAGMA wal_autocheckpoint").fetchall()[0][0]
            self.cursor.execute("PRAGMA wal_autocheckpoint = 0")
            self._restore.append(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    def check(self, delivery_ids: list[int]) -> dict[int, tuple]:
        """Re-read up to ``CHECK_AHEAD`` deliveries with their subscriber and issue.

        Returns:
            {delivery id: (delivery status, claimed_by, subscriber status, issue status)};
            a row that no longer exists is missing.
        """
        ids = list(delivery_ids[:CHECK_AHEAD])
        ids += [ids[0]] * (CHECK_AHEAD - len(ids))  # one compiled statement for any count
        values = {f"id{n}": delivery_id for n, delivery_id in enumerate(ids)}
        self.cursor.execute(self._check.sql, self._check.params(values))
        # fetchall: stepping to the end finishes the statement, so SQLite ends the read
        # transaction now; a snapshot held across the SMTP exchange would keep the WAL from
        # being checkpointed.
        return {row[0]: tuple(row[1:]) for row in self.cursor.fetchall()}

    def mark_sent(
        self, delivery_id: int, attempts: int, code: int, reply: str, now: datetime
    ) -> None:
        """Note the relay's acceptance of a delivery (status sent, reply, time); the next
        :meth:`flush` writes it. The sender flushes before it sends any more content and
        at the end of each pass over the replies that arrived together."""
        values = {
            "delivery_id": delivery_id,
            "attempts": attempts,
            "code": code,
            "reply": reply[:REPLY_LIMIT],
            "now": now,
        }
        self._sent.append(self._mark_sent.params(values))

    def flush(self) -> None:
        """Write the noted sent marks (each commits by itself); one round trip for all.

        Why not one statement per reply: several connections' replies often arrive in one
        wakeup, and on PostgreSQL each statement is a round trip to a server that shares the
        cores (psycopg's ``executemany`` sends them all in one pipeline).
        """
        if not self._sent:
            return
        marks, self._sent = self._sent, []
        if len(marks) == 1:
            self.cursor.execute(self._mark_sent.sql, marks[0])
        else:
            self.cursor.executemany(self._mark_sent.sql, marks)

    def close(self) -> None:
        """Write what is noted, put the session settings back (the connection returns to
        the pool); close."""
        try:
            self.flush()
            for statement in self._restore:
                self.cursor.execute(statement)
        finally:
            self.cursor.close()


def checkpoint(engine: Engine) -> None:
    """Checkpoint SQLite's WAL and let the next commit start it over (no-op elsewhere).

    RESTART, not PASSIVE: with senders reading and writing all the time, a passive
    checkpoint rarely finds a moment when the WAL can start over, and the WAL file grows by
    the size of every page written (hundreds of megabytes per hundred thousand messages).
    RESTART waits for the readers of that moment, but at most ``WAIT_MS`` milliseconds (a
    reader elsewhere, e.g. a slow admin page, must not stall the send): if it cannot, it
    gives up and the next call tries again. The senders leave checkpoints to this (see
    :class:`HotPath`); ``processes.run_here`` calls it about once a second while they work.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        waited = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {WAIT_MS}")
        try:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(waited)}")
