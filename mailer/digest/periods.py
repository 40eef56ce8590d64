"""Digest periods: one issue per ISO week (ISO 8601 week date) in the newsletter's time zone."""

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import PeriodError

_PERIOD = re.compile(r"(\d{4})-W(\d{2})")


def period_for(moment: datetime, tz: str) -> str:
    """Return the ISO week of ``moment`` as seen in time zone ``tz``, e.g. ``"2026-W49"``.

    Args:
        moment: an aware datetime (any zone; ``mailer.clock.now()`` gives UTC).
        tz: an IANA zone name such as ``"Asia/Tokyo"`` (``MAILER_TIMEZONE``).

    Raises:
        ValueError: for a naive ``moment`` or an unknown zone name.
    """
    if moment.tzinfo is None:
        raise ValueError("period_for() needs an aware datetime; use mailer.clock.now()")
    year, week, _ = moment.astimezone(_zone(tz)).isocalendar()
    return f"{year}-W{week:02d}"


def parse_period(text: str) -> tuple[int, int]:
    """Return ``(iso_year, iso_week)`` of a period such as ``"2026-W49"``.

    Raises:
        PeriodError (a ValueError): when ``text`` is not ``YYYY-Www`` or names a week that
            the year does not have (ISO 8601: week 53 exists only in some years).
    """
    match = _PERIOD.fullmatch((text or "").strip())
    if match is None:
        raise PeriodError(f"period must look like 2026-W49 (ISO year, 'W', week), got {text!r}")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise PeriodError(f"{year} has no ISO week {week} (period {text!r})") from None
    return year, week


def period_label(period: str) -> str:
    """Return a reader's label for a period: ``"2026-W49"`` -> ``"Week 49, 2026"``."""
    year, week = parse_period(period)
    return f"Week {week}, {year}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"MAILER_TIMEZONE {name!r} is not a known IANA time zone") from None
