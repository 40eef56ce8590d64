"""What a sender works through: its claimed rows (:class:`Rows`), the message in flight on a
connection (:class:`Job`)."""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ... import clock
from ...models import Issue, IssueStatus
from ..smtp.settings import SmtpReply
from . import claims
from .claims import Claimed
from .throttle import hourly_allowance


@dataclass(eq=False)
class Job:
    """One message on its way: the row, its DATA content (dot-stuffed and terminated, in
    parts: ``CompiledIssue.personalise_parts``), and the envelope replies so far."""

    row: Claimed
    body: list[bytes] | None
    mail: SmtpReply | None = None
    rcpt: SmtpReply | None = None
    commands: list[bytes] | None = None  # still to send, for a relay without PIPELINING


class Rows:
    """The claimed deliveries of one sender: claims batches on demand, renews, releases.

    Args:
        issue_id: the issue being sent. worker: the claimer name (``claims.worker_id``).
        config: the app config (``MAILER_BATCH_SIZE``, ``MAILER_SEND_HOURLY_CAP``).
    """

    def __init__(self, issue_id: int, worker: str, config: Mapping):
        self.issue_id = issue_id
        self.worker = worker
        self.batch_size = max(1, int(config["MAILER_BATCH_SIZE"]))
        self.hourly_cap = int(config.get("MAILER_SEND_HOURLY_CAP", 0))
        self.queue: deque[Claimed] = deque()
        self.exhausted = False
        self.streak = 0  # the issue's consecutive relay errors when last read
        self.refusals = 0  # and its temporary refusals in a row
        self._renew_at = None

    def take(self, conn: Connection, in_flight: int = 0) -> Claimed | None:
        """The next claimed row, claiming a batch when none is left; None when done.

        ``in_flight``: this sender's messages on the wire, not yet counted as sent (they
        count against the hourly cap).
        """
        if not self.queue and not self.exhausted:
            batch = self._claim(conn, in_flight)
            self.exhausted = not batch
            self.queue.extend(batch)
        return self.queue.popleft() if self.queue else None

    def put_back(self, row: Claimed) -> None:
        """Return a row that was taken but not sent (it goes first next time)."""
        self.queue.appendleft(row)

    def _claim(self, conn: Connection, in_flight: int) -> list[Claimed]:
        status, self.streak, self.refusals = conn.execute(
            select(Issue.status, Issue.error_streak, Issue.refusal_streak).where(
                Issue.id == self.issue_id
            )
        ).one()
        if status != IssueStatus.SENDING:
            return []
        now = clock.now()
        size = self.batch_size
        allowance = hourly_allowance(conn, self.hourly_cap, now)
        if allowance is not None:
            size = min(size, allowance - in_flight)
        if size <= 0:
            return []
        self._renew_at = now + claims.LEASE / 3
        return claims.claim_batch(
            conn, issue_id=self.issue_id, worker=self.worker, size=size, now=now
        )

    def _ours(self, on_wire: list[int]) -> list[int]:
        return [row.delivery_id for row in self.queue] + on_wire

    def renew_if_due(self, conn: Connection, on_wire: list[int]) -> None:
        """Extend the lease of the rows still ours once a third of it has passed."""
        now = clock.now()
        if self._renew_at is not None and now >= self._renew_at:
            claims.renew(conn, self._ours(on_wire), self.worker, now)
            self._renew_at = now + claims.LEASE / 3

    def release(self, conn: Connection, on_wire: list[int]) -> None:
        """Give back the leases of every row not sent (the queue and ``on_wire``)."""
        claims.release(conn, self._ours(on_wire), self.worker)
        self.queue.clear()
