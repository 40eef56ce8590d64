"""What happens after the relay's answer to a message: the row, the counts, the throttle,
the subscriber's bounce counters, the issue's streaks of relay errors and temporary
refusals, and the relay's pushback (which pauses the issue instead of charging anyone)."""

import logging

from sqlalchemy.engine import Connection

from ... import clock
from ...models import DeliveryStatus
from .. import bounces, issues, ledger
from ..errors import RelayError
from ..ledger import Tally
from ..smtp.settings import SmtpReply, is_pushback
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
        rows: the sender's rows (issue id, and the streaks it last read).
        tally: the sender's counts, updated here.

    ``pushed_back`` turns True when the relay pushed back (the issue is paused, or was
    already): the sender should check the issue's status afresh before its next message.
    """

    def __init__(self, conn: Connection, hot: HotPath, rules: ledger.Rules, throttle: Throttle,
                 rows: Rows, tally: Tally):  # fmt: skip
        self.conn = conn
        self.hot = hot
        self.rules = rules
        self.throttle = throttle
        self.rows = rows
        self.tally = tally
        self.pushed_back = False
        self._streak_seen = False
        self._refusals_seen = False
        # Rows this sender deferred since the relay last took a message: held instead if
        # their refusals turn out to be a pushback (MAILER_PUSHBACK_AFTER in a row).
        self._refused: list[Claimed] = []

    def reply(self, row: Claimed, reply: SmtpReply) -> None:
        """The relay answered for this message: 2xx sent, 4xx deferred (or held, when the
        relay pushes back), 5xx failed."""
        now = clock.now()
        if reply.ok:
            self.hot.mark_sent(row.delivery_id, row.attempts + 1, reply.code, reply.text, now)
            self.accepted(row)
            return
        if reply.temporary:
            self.throttle.refused_temporarily()
            self._temporary(row, reply.code, reply.text, reply.pushback, now)
        else:
            ledger.fail(self.conn, row, reply.code, reply.text, now)
            self.tally.failed += 1
            hard = bounces.count_bounce(
                self.conn, row.subscriber_id, str(reply), self.rules.bounce_limit, True
            )
            self.tally.suppressed += hard
        self._relay_answers(accepted=False)

    def accepted(self, row: Claimed) -> None:
        """Everything that follows a 2xx except the mark itself (the caller writes it)."""
        if row.soft_failures:
            bounces.reset_soft_failures(self.conn, row.subscriber_id)
        self.tally.sent += 1
        self.throttle.accepted()
        self._relay_answers(accepted=True)

    def _relay_answers(self, accepted: bool) -> None:
        # Written only when a streak is known to be running: nothing per message otherwise.
        errors = self._streak_seen or self.rows.streak
        refusals = accepted and (self._refusals_seen or self.rows.refusals or self._refused)
        if errors or refusals:
            issues.clear_relay_errors(self.conn, self.rows.issue_id, refusals=bool(refusals))
            self._streak_seen, self.rows.streak = False, 0
        if refusals:
            self._refusals_seen, self.rows.refusals = False, 0
            self._refused.clear()

    def _temporary(self, row: Claimed, code: int | None, text: str, pushback: bool, now) -> None:
        reply = f"{code} {text}" if code is not None else text
        streak = 0
        # Only first tries count toward the refusals in a row: one full mailbox retried
        # alone after the rest went out must never add up to a pause of the whole send.
        if pushback or row.attempts == 0:
            streak = issues.count_refusal(self.conn, self.rows.issue_id, reply)
            self._refusals_seen = True
        if pushback or streak >= self.rules.pushback_after:
            self._push_back(row, code, text, reply, now)
            return
        status = ledger.defer(self.conn, row, code, text, now, self.rules)
        if status == DeliveryStatus.DEFERRED:
            self.tally.deferred += 1
            self._refused.append(row)
            return
        self.tally.failed += 1
        soft = bounces.count_bounce(
            self.conn, row.subscriber_id, reply, self.rules.soft_bounce_limit, False
        )
        self.tally.suppressed += soft

    def _push_back(self, row: Claimed, code: int | None, text: str, reply: str, now) -> None:
        # The relay refuses us, not the recipient: hold the row (no attempt, no soft
        # failure), give back the attempts of this run of refusals, and pause the issue.
        ledger.hold(self.conn, row, code, text, now)
        ledger.hold_instead(self.conn, self._refused, now)
        self.tally.deferred += 1
        self._refused.clear()
        issues.pause_for_pushback(self.conn, self.rows.issue_id, reply, self.rules)
        self.pushed_back = True

    def relay_failure(self, row: Claimed, exc: RelayError) -> None:
        """The relay could not take the message: defer it and count a relay error (which may
        pause the issue). A 421 policy hang-up or a sender refused for quota or rate is the
        relay's pushback instead (held, and the issue paused; logged once, by the pause)."""
        self.throttle.refused_temporarily(closing=True)
        if is_pushback(exc.code, exc.text):
            self._temporary(row, exc.code, exc.text, True, clock.now())
            return
        log.warning("relay error for delivery %s: %s", row.delivery_id, exc)
        self.tally.relay_errors += 1
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
