"""One sender: one SMTP connection working through one issue's deliveries, batch by batch.

For each claimed batch, and before each message, the sender re-reads what may have changed:
the issue's status (pause and cancel take effect at the next message), the subscriber's
status (someone who left after enqueueing is skipped) and the delivery's own lease (a row
another worker took over after a stall is left alone). Each message's outcome is written
right after the relay's reply (:mod:`.ledger`), before the next message starts.
"""

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from .. import clock
from ..models import DeliveryStatus, Issue, IssueStatus, SubscriberStatus
from ..subscriptions.tokens import make_unsubscribe_token, unsubscribe_url
from . import claim, ledger
from .errors import RecipientNotSupported, RelayError
from .hotpath import HotPath
from .smtp import RelaySettings, SmtpConnection
from .throttle import Throttle, hourly_allowance

log = logging.getLogger(__name__)

LEFT_REPLY = "not sent: the subscriber is {status} now"
PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)
SEND, PASS, STOP = "send", "pass", "stop"  # verdicts of the check before each message


@dataclass
class Tally:
    """Counts of one sender (or a sum of several); read live for progress reports."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    suppressed: int = 0
    relay_errors: int = 0

    def add(self, other: "Tally") -> None:
        """Add ``other``'s counts to this one."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (to send between processes)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


class _Stop(Exception):
    """The issue is no longer sending (paused, cancelled) or the sender was told to stop."""


class IssueSender:
    """Sends due deliveries of one issue over one SMTP connection until none is left.

    Args:
        engine: the SQLAlchemy engine (one autocommit connection is taken from it).
        config: the app config.
        issue_id: Issue.id; compiled: its ``mime.CompiledIssue``.
        slot: this sender's number (part of its claimer name).
        rate: this sender's share of ``MAILER_SEND_RATE`` (messages/s, 0 = unlimited).
        stop: set it to make the sender finish the current message and return.
    """

    def __init__(self, engine: Engine, config: Mapping, issue_id: int, compiled, *, slot: int,
                 rate: float, stop: threading.Event):  # fmt: skip
        self.engine = engine
        self.issue_id = issue_id
        self.compiled = compiled
        self.worker = claim.worker_id(slot)
        self.stop = stop
        self.tally = Tally()
        self.rules = ledger.Rules.from_config(config)
        self.relay = SmtpConnection(RelaySettings.from_config(config))
        self.throttle = Throttle(rate)
        self.batch_size = max(1, int(config["MAILER_BATCH_SIZE"]))
        self.hourly_cap = int(config.get("MAILER_SEND_HOURLY_CAP", 0))
        self.secret_key = config["SECRET_KEY"]
        self.base_url = config["MAILER_BASE_URL"].rstrip("/")
        self._streak_seen = False
        self._batch_ids: list[int] = []
        self._position = 0

    def run(self) -> Tally:
        """Claim and send batches until nothing is due, the issue stops sending, or ``stop``."""
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.hot = HotPath(conn)
        try:
            while not self.stop.is_set():
                batch = self._next_batch(conn)
                if not batch:
                    break
                self._send_batch(conn, batch)
        except _Stop:
            pass
        finally:
            try:
                claim.release(conn, self._unsent(), self.worker)
            finally:
                self.relay.close()
                self.hot.close()  # also restores the connection's settings
                conn.close()
        return self.tally

    def _next_batch(self, conn: Connection) -> list[claim.Claimed]:
        status, streak = conn.execute(
            select(Issue.status, Issue.error_streak).where(Issue.id == self.issue_id)
        ).one()
        if status != IssueStatus.SENDING:
            return []
        self._streak_seen = streak > 0
        now = clock.now()
        size = self.batch_size
        allowance = hourly_allowance(conn, self.hourly_cap, now)
        if allowance is not None:
            size = min(size, allowance)
        if size <= 0:
            return []
        return claim.claim_batch(
            conn, issue_id=self.issue_id, worker=self.worker, size=size, now=now
        )

    def _send_batch(self, conn: Connection, batch: list[claim.Claimed]) -> None:
        self._batch_ids = [row.delivery_id for row in batch]
        renew_at = clock.now() + claim.LEASE / 3
        checked = None  # the row the look-ahead already checked (its envelope may be out)
        for self._position, row in enumerate(batch):
            if self.stop.is_set():
                raise _Stop
            if clock.now() >= renew_at:
                claim.renew(conn, self._unsent(), self.worker, clock.now())
                renew_at = clock.now() + claim.LEASE / 3
            if row is not checked:
                verdict = self._check(conn, row)
                if verdict == STOP:
                    raise _Stop
                if verdict == PASS:
                    continue
            checked, stop_after = self._look_ahead(conn, batch, self._position + 1)
            self._deliver(conn, row, checked)
            if stop_after:
                raise _Stop
            if not self.relay.is_open:
                checked = None  # the session ended (e.g. a relay error): check the next again
        self._batch_ids = []

    def _unsent(self) -> list[int]:
        # The current row counts as unsent until its outcome is written.
        return self._batch_ids[self._position :]

    def _check(self, conn: Connection, row: claim.Claimed) -> str:
        """Re-read the row, its subscriber and its issue right before sending (one query)."""
        check = self.hot.check(row.delivery_id)
        if check is None or check[3] != IssueStatus.SENDING:
            return STOP  # paused or cancelled: takes effect within one message
        delivery_status, claimed_by, subscriber_status, _issue_status = check
        if claimed_by != self.worker or delivery_status not in PENDING:
            return PASS  # taken over after our lease ran out, or already done: not ours
        if subscriber_status != SubscriberStatus.CONFIRMED:
            reason = LEFT_REPLY.format(status=subscriber_status)
            ledger.mark_skipped(conn, row, reason, clock.now())
            self.tally.skipped += 1
            return PASS
        return SEND

    def _look_ahead(self, conn: Connection, batch: list[claim.Claimed], start: int):
        """Check the rows after the current one; return (next row to send or None, stop)."""
        for row in batch[start:]:
            verdict = self._check(conn, row)
            if verdict == SEND:
                return row, False
            if verdict == STOP:
                return None, True
        return None, False

    def _deliver(self, conn: Connection, row: claim.Claimed, following) -> None:
        self.throttle.wait()
        token = make_unsubscribe_token(self.secret_key, row.subscriber_id, row.version)
        url = unsubscribe_url(self.base_url, token)
        try:
            body = self.compiled.personalise(row.subscriber_id, row.email, url)
        except ValueError as exc:  # an address that cannot be written into a header
            ledger.fail(conn, row, None, f"not sent: {exc}", clock.now())
            self.tally.failed += 1
            return
        self._send(conn, row, body, following.email if following is not None else None)

    def _send(self, conn: Connection, row: claim.Claimed, body: bytes, then) -> None:
        try:
            reply = self.relay.send(row.email, body, then=then)
        except RelayError as exc:
            self._relay_error(conn, row, exc)
            return
        except RecipientNotSupported as exc:
            ledger.fail(conn, row, None, str(exc), clock.now())
            self.tally.failed += 1
            return
        now = clock.now()
        if reply.ok:
            self.hot.mark_sent(row.delivery_id, row.attempts + 1, reply.code, reply.text, now)
            if row.soft_failures:
                ledger.reset_soft_failures(conn, row.subscriber_id)
            self.tally.sent += 1
            self.throttle.accepted()
        elif reply.temporary:
            self._soft(conn, row, reply.code, reply.text, now)
            self.throttle.refused_temporarily()
        else:
            ledger.fail(conn, row, reply.code, reply.text, now)
            self.tally.failed += 1
            self.tally.suppressed += ledger.count_bounce(conn, row, str(reply), self.rules, True)
        if self._streak_seen:
            ledger.clear_relay_errors(conn, self.issue_id)  # the relay answered again
            self._streak_seen = False

    def _soft(self, conn: Connection, row: claim.Claimed, code, text: str, now) -> None:
        status = ledger.defer(conn, row, code, text, now, self.rules)
        if status == DeliveryStatus.DEFERRED:
            self.tally.deferred += 1
            return
        self.tally.failed += 1
        reply = f"{code} {text}" if code else text
        self.tally.suppressed += ledger.count_bounce(conn, row, reply, self.rules, False)

    def _relay_error(self, conn: Connection, row: claim.Claimed, exc: RelayError) -> None:
        log.warning("relay error for delivery %s: %s", row.delivery_id, exc)
        self.tally.relay_errors += 1
        self.throttle.refused_temporarily(closing=True)
        status = ledger.defer(conn, row, exc.code, exc.text, clock.now(), self.rules)
        self.tally.deferred += status == DeliveryStatus.DEFERRED
        self.tally.failed += status == DeliveryStatus.FAILED
        ledger.count_relay_error(conn, self.issue_id, str(exc), self.rules)
        self._streak_seen = True
