"""Choosing the next message: take a claimed row, check it right before sending, personalise.

The check re-reads the row, its subscriber and its issue: a paused or cancelled issue stops
the sender, someone who left after enqueueing is skipped, a row another worker took over
after a lease ran out is left alone. One query reads the next ``CHECK_AHEAD`` rows and each
answer is used only within ``CHECK_FRESH`` seconds (a few messages at full speed), so what
is checked is current while the database sees one query per several messages.
"""

import time
from collections.abc import Mapping
from itertools import islice

from ... import clock
from ...models import DeliveryStatus, IssueStatus, SubscriberStatus
from ...subscriptions.tokens import make_unsubscribe_token, unsubscribe_url
from .batches import Job, Rows
from .claims import Claimed
from .outcomes import Outcomes
from .signing import AHEAD, SIGN_HERE_FIRST
from .statements import CHECK_AHEAD, HotPath

LEFT_REPLY = "not sent: the subscriber is {status} now"
PAUSED_REPLY = "not sent: the subscriber paused the newsletter (see their paused_until)"
NO_ITEMS_REPLY = "not sent: no new items in the subscriber's topics ({sections}) this issue"
CHECK_FRESH = 0.05  # seconds a pre-send check stays good
PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)


class Picker:
    """Hands out the next message worth sending, checked and personalised.

    Args:
        rows: the sender's claimed rows. hot: its per-message statements.
        outcomes: where skipped and unsendable rows are recorded.
        compiled: the issue's ``message.CompiledVariants``. config: the app config.
    """

    def __init__(
        self, rows: Rows, hot: HotPath, outcomes: Outcomes, compiled, config: Mapping,
        signing=None,
    ):  # fmt: skip
        self.rows = rows
        # A function making a signing.SigningPool (None: always personalise here), called
        # once SIGN_HERE_FIRST messages are made: a small send never starts helpers.
        self._make_pool = signing
        self.signing = None
        self._made = 0
        self.hot = hot
        self.outcomes = outcomes
        self.compiled = compiled
        self.secret_key = config["SECRET_KEY"]
        self.base_url = config["MAILER_BASE_URL"].rstrip("/")
        self.stopped = False  # the issue is no longer sending
        self._checks: dict[int, tuple] = {}

    def next(self, conn, in_flight: int) -> Job | None:
        """The next message to send, or None (nothing left, or the issue stopped sending).

        ``in_flight``: the sender's messages not yet recorded (for the hourly cap).
        """
        while (row := self.rows.take(conn, in_flight)) is not None:
            verdict = self._check(row)
            if verdict == "stop":
                self.stopped = True
                self.rows.put_back(row)
                return None
            if verdict == "send" and (job := self._personalise(row)) is not None:
                return job
        return None

    def forget_checks(self) -> None:
        """Check afresh next time (e.g. after a relay error that may have paused the issue)."""
        self._checks.clear()

    def _check(self, row: Claimed) -> str:
        checked_at, check = self._checks.pop(row.delivery_id, (0.0, None))
        if time.monotonic() - checked_at > CHECK_FRESH:
            following = islice(self.rows.queue, CHECK_AHEAD - 1)
            found = self.hot.check([row.delivery_id, *(r.delivery_id for r in following)])
            now = time.monotonic()
            self._checks = {key: (now, value) for key, value in found.items()}
            check = self._checks.pop(row.delivery_id, (now, None))[1]
        if check is None or check[3] != IssueStatus.SENDING:
            return "stop"  # paused or cancelled
        delivery_status, claimed_by, subscriber_status, _issue_status = check
        if claimed_by != self.rows.worker or delivery_status not in PENDING:
            return "pass"  # taken over after our lease ran out, or already done: not ours
        if subscriber_status != SubscriberStatus.CONFIRMED:
            self.outcomes.skipped(row, LEFT_REPLY.format(status=subscriber_status))
            return "pass"
        return "send"

    def _personalise(self, row: Claimed) -> Job | None:
        if row.paused_until is not None and row.paused_until > clock.now():
            # Paused after the issue was queued (enqueue skips those paused before).
            self.outcomes.skipped(row, PAUSED_REPLY)
            return None
        compiled = self.compiled.for_sections(row.sections)
        if compiled is None:
            # The topics changed after the issue was queued, to ones without items.
            self.outcomes.skipped(row, NO_ITEMS_REPLY.format(sections=row.sections))
            return None
        self._made += 1
        if self._make_pool is not None and self._made == SIGN_HERE_FIRST:
            self.signing = self._make_pool()
        if self.signing is not None:
            # The helpers sign the rows after this one while this one is on the wire.
            self.signing.prepare(islice(self.rows.queue, AHEAD))
            done = self.signing.result(row)
            if done is not None:
                ok, parts = done
                if not ok:
                    self.outcomes.not_sendable(row, f"not sent: {parts}")
                    return None
                return Job(row, parts)
        token = make_unsubscribe_token(self.secret_key, row.subscriber_id, row.version)
        try:
            parts = compiled.personalise_parts(
                row.subscriber_id, row.email, unsubscribe_url(self.base_url, token)
            )
        except ValueError as exc:  # an address that cannot be written into a header
            self.outcomes.not_sendable(row, f"not sent: {exc}")
            return None
        return Job(row, parts)
