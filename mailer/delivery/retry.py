"""When to try a temporarily refused message again, shared by digests and transactional mail."""

from datetime import timedelta

FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=2)
REPLY_LIMIT = 2000  # characters of an SMTP reply kept on a row


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` tries: 1, 2, 4 ... minutes, at most 2 h.

    Exponential, so that a relay that is down for a while is not hammered, and capped, so
    that a message still goes out soon after a long outage ends.
    """
    return min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_RETRY)
