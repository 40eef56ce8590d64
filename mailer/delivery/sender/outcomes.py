"""What happens after the relay's answer to a message: the row, the counts, the throttle,
the subscriber's bounce counters and the issue's streak of relay errors."""

import logging

from sqlalchemy.engine import Connection

from ... import clock
from ...models import DeliveryStatus
from .. import bounces, issues, ledger
from ..errors import RelayError
from ..ledger import Tally
from ..smtp.settings import SmtpReply
from .batches import Rows
from .claims import Claimed
from .statements import HotPath
from .throttle import Throttle

log = logging.getLogger(__name__)


class Outcomes:
    """Records outcomes for one sender (each right after the reply that decides it).

    Args:
        conn: the sender's autocommit connection; hot: its :class:`HotPath`.
        rules: the retry/bounce/pause limits. throttle: the sender's throttle.
        rows: the sender's rows (issue id, and the relay-error streak it last read).
        tally: the sender's counts, updated here.
    """

    def __init__(self, conn: Connection, hot: HotPath, rules: ledger.Rules, throttle: Throttle,
                 rows: Rows, tally: Tally):  # fmt: skip
        self.conn = conn
        self.hot = hot
        self.rules = rules
        self.throttle = throttle
        self.rows = rows
        self.tally = tally
        self._streak_seen = False

    def reply(self, row: Claimed, reply: SmtpReply) -> None:
        """The relay answered for this message: 2xx sent, 4xx deferred, 5xx failed."""
        now = clock.now()
        if reply.ok:
            self.hot.mark_sent(row.delivery_id, row.attempts + 1, reply.code, reply.text, now)
            self.accepted(row)
            return
        if reply.temporary:
            self._soft(row, reply, now)
            self.throttle.refused_temporarily()
        else:
            ledger.fail(self.conn, row, reply.code, reply.text, now)
            self.tally.failed += 1
            hard = bounces.count_bounce(
                self.conn, row.subscriber_id, str(reply), self.rules.bounce_limit, True
            )
            self.tally.suppressed += hard
        self._relay_answers()

    def accepted(self, row: Claimed) -> None:
        """Everything that follows a 2xx except the mark itself (the caller writes it)."""
        if row.soft_failures:
            bounces.reset_soft_failures(self.conn, row.subscriber_id)
        self.tally.sent += 1
        self.throttle.accepted()
        self._relay_answers()

    def _relay_answers(self) -> None:
        if self._streak_seen or self.rows.streak:
            issues.clear_relay_errors(self.conn, self.rows.issue_id)  # the relay answers again
            self._streak_seen, self.rows.streak = False, 0

    def _soft(self, row: Claimed, reply: SmtpReply, now) -> None:
        status = ledger.defer(self.conn, row, reply.code, reply.text, now, self.rules)
        if status == DeliveryStatus.DEFERRED:
            self.tally.deferred += 1
            return
        self.tally.failed += 1
        soft = bounces.count_bounce(
            self.conn, row.subscriber_id, str(reply), self.rules.soft_bounce_limit, False
        )
        self.tally.suppressed += soft

    def relay_failure(self, row: Claimed, exc: RelayError) -> None:
        """The relay could not take the message: defer it and count a relay error (which may
        pause the issue)."""
        log.warning("relay error for delivery %s: %s", row.delivery_id, exc)
        self.tally.relay_errors += 1
        self.throttle.refused_temporarily(closing=True)
        status = ledger.defer(self.conn, row, exc.code, exc.text, clock.now(), self.rules)
        self.tally.deferred += status == DeliveryStatus.DEFERRED
        self.tally.failed += status == DeliveryStatus.FAILED
        issues.count_relay_error(self.conn, self.rows.issue_id, str(exc), self.rules)
        self._streak_seen = True

    def not_sendable(self, row: Claimed, reason: str) -> None:
        """The message cannot be sent at all (an address that cannot be written): failed."""
        ledger.fail(self.conn, row, None, reason, clock.now())
        self.tally.failed += 1

    def skipped(self, row: Claimed, reason: str) -> None:
        """Not sent on purpose (the subscriber left after enqueueing)."""
        ledger.mark_skipped(self.conn, row, reason, clock.now())
        self.tally.skipped += 1
