"""Throttle: a token bucket in messages per second that backs off when the relay pushes back.

Each sender (one SMTP connection) has its own bucket with its share of ``MAILER_SEND_RATE``,
so the shares add up to the operator's rate without any locking between senders or
processes. The optional hourly cap (``MAILER_SEND_HOURLY_CAP``) is counted in the database
instead (:func:`hourly_allowance`), so that it holds across restarts and workers.
"""

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ...models import Delivery, DeliveryStatus

MIN_RATE = 0.1  # messages/s: the slowest a backed-off sender goes
BACKOFF_FACTOR = 0.5
RECOVERY_FACTOR = 1.5
RECOVER_AFTER = 20  # consecutive accepted messages before the rate goes up one step
WINDOW = 10  # recent outcomes looked at to detect a burst of 4xx replies
BURST = 3  # this many 4xx replies within WINDOW is a burst
UNMEASURED_RATE = 100.0  # messages/s assumed when an unlimited sender has too few sends to measure


class Throttle:
    """Token bucket for one sender, with backoff on 421 and 4xx bursts and slow recovery.

    Args:
        rate: messages per second for this sender; 0 means unlimited.
        clock: monotonic seconds (``time.monotonic``; tests pass a fake).
        sleep: waits the given seconds (``time.sleep``; tests pass a fake).

    A 421 ("service not available", RFC 5321 §3.8) or ``BURST`` 4xx replies within the last
    ``WINDOW`` messages halve the current rate (an unlimited sender first measures the rate it
    was going at). After ``RECOVER_AFTER`` accepted messages in a row the rate grows by half
    until it is back at the configured rate (or unlimited again).
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.ceiling = max(0.0, float(rate))
        self.rate = self.ceiling
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0
        self._stamp = clock()
        self._outcomes: deque[bool] = deque(maxlen=WINDOW)
        self._sends: deque[float] = deque(maxlen=WINDOW * 2)
        self._good_in_row = 0
        self._recover_to = self.ceiling

    def wait(self) -> None:
        """Block until this sender may send the next message (returns at once if unlimited)."""
        now = self._clock()
        if self.rate > 0:
            capacity = max(1.0, self.rate)
            self._tokens = min(capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1.0:
                self._sleep((1.0 - self._tokens) / self.rate)
                self._stamp = now = self._clock()
                self._tokens = 1.0
            self._tokens -= 1.0
        self._sends.append(now)

    def accepted(self) -> None:
        """Record a 2xx reply; enough of them in a row step the rate back up."""
        self._outcomes.append(True)
        self._good_in_row += 1
        if self.rate != self.ceiling and self._good_in_row >= RECOVER_AFTER:
            self._good_in_row = 0
            self._recover()

    def refused_temporarily(self, closing: bool = False) -> None:
        """Record a 4xx reply (``closing`` for a 421 or a lost connection)."""
        self._outcomes.append(False)
        self._good_in_row = 0
        if closing or self._outcomes.count(False) >= BURST:
            self._outcomes.clear()
            self._back_off()

    def _measured_rate(self) -> float:
        if len(self._sends) < 2 or self._sends[-1] <= self._sends[0]:
            return UNMEASURED_RATE
        return (len(self._sends) - 1) / (self._sends[-1] - self._sends[0])

    def _back_off(self) -> None:
        current = self.rate if self.rate > 0 else self._measured_rate()
        if self.ceiling == 0 and self.rate == 0:
            self._recover_to = current  # back to unlimited once this speed is reached again
        self.rate = max(MIN_RATE, current * BACKOFF_FACTOR)
        self._tokens = min(self._tokens, 0.0)

    def _recover(self) -> None:
        target = self.ceiling if self.ceiling > 0 else self._recover_to
        self.rate = self.rate * RECOVERY_FACTOR
        if self.rate >= target:
            self.rate = self.ceiling


def hourly_allowance(conn: Connection, cap: int, now: datetime) -> int | None:
    """Return how many more digest messages may go out under ``MAILER_SEND_HOURLY_CAP``.

    Counts deliveries sent in the hour before ``now`` (a sliding window, across every worker
    and restart). Returns None when ``cap`` is 0 (no cap), else a number >= 0.
    """
    if cap <= 0:
        return None
    sent = conn.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status == DeliveryStatus.SENT, Delivery.sent_at > now - timedelta(hours=1))
    )
    return max(0, cap - int(sent or 0))


def hourly_room_at(conn: Connection, cap: int, now: datetime) -> datetime | None:
    """When ``MAILER_SEND_HOURLY_CAP`` lets the next digest message go: None when it does
    now (or there is no cap), else the time the oldest send of the last hour leaves the
    window (the sliding hour of :func:`hourly_allowance`)."""
    if not hourly_allowance(conn, cap, now) == 0:
        return None
    oldest = conn.scalar(
        select(func.min(Delivery.sent_at)).where(
            Delivery.status == DeliveryStatus.SENT, Delivery.sent_at > now - timedelta(hours=1)
        )
    )
    return oldest + timedelta(hours=1) if oldest is not None else None
