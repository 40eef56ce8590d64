"""The one retry rule of every mail we send (digest deliveries and transactional mail alike).

A temporary refusal (4xx, a timeout, a dropped connection) is tried again after an
exponential backoff until the row's retry window is over; the window is
``MAILER_RETRY_FOR`` seconds counted from the row's FIRST temporary failure (so a message
queued behind an hourly cap still gets its whole window), and is kept on the row as
``retry_until``. Then the message fails.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import DeliveryStatus

FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=2)
REPLY_LIMIT = 2000  # characters of an SMTP reply kept on a row


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` tries: 1, 2, 4 ... minutes, at most 2 h.

    Exponential, so that a relay that is down for a while is not hammered, and capped, so
    that a message still goes out soon after a long outage ends.
    """
    return min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_RETRY)


def retry_window(config: Mapping) -> timedelta:
    """``MAILER_RETRY_FOR`` (seconds) as a timedelta: how long temporary failures are retried."""
    return timedelta(seconds=int(config["MAILER_RETRY_FOR"]))


@dataclass(frozen=True)
class NextTry:
    """What a temporary failure leads to: ``status`` is "deferred" (try again at
    ``next_attempt_at``) or "failed" (the window is over; ``next_attempt_at`` is None)."""

    status: str
    retry_until: datetime
    next_attempt_at: datetime | None


def after_temporary_failure(
    attempts: int, retry_until: datetime | None, now: datetime, window: timedelta
) -> NextTry:
    """Decide what follows a temporary failure of a message tried ``attempts`` times before.

    Args:
        attempts: tries before this one. retry_until: the row's end of window, or None at
            its first temporary failure (the window then starts ``now``).
        now: aware UTC. window: :func:`retry_window`.
    """
    until = retry_until or now + window
    if now >= until:
        return NextTry(DeliveryStatus.FAILED, until, None)
    return NextTry(DeliveryStatus.DEFERRED, until, now + backoff(attempts + 1))
