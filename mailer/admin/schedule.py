"""When the worker's scheduler will build and send the next digest, for the dashboard."""

from collections.abc import Mapping
from datetime import datetime

from ..scheduler import weekly_trigger


def next_send_time(config: Mapping, now: datetime) -> datetime:
    """Return the next weekly send after ``now`` (aware, in MAILER_TIMEZONE).

    Uses the scheduler's own trigger, so the page and the worker cannot disagree.

    Raises:
        ValueError: MAILER_DIGEST_DAY, _TIME or _TIMEZONE is malformed; the message names it.
    """
    return weekly_trigger(config).get_next_fire_time(None, now)


def describe_next_send(config: Mapping, now: datetime) -> tuple[datetime | None, str | None]:
    """Return (the next weekly send, None), or (None, the settings error) for a page to show."""
    try:
        return next_send_time(config, now), None
    except (ValueError, LookupError) as exc:  # LookupError: an unknown time zone name
        return None, str(exc)
