"""The weekly calendar: when the weekly digest runs (MAILER_DIGEST_DAY at MAILER_DIGEST_TIME in
MAILER_TIMEZONE), read alike by the worker's scheduler, the admin and the ``digest`` commands.

The day is given to APScheduler as a name: APScheduler 3 reads crontab day numbers with
Monday as 0, one off from crontab's Sunday 0.
"""

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from .periods import parse_period, period_for

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def digest_weekday(value: str) -> str:
    """Return APScheduler's three-letter weekday name ("mon") for MAILER_DIGEST_DAY.

    Args:
        value: a weekday name, full or three letters, any case ("Monday", "mon").

    Raises:
        ValueError: naming MAILER_DIGEST_DAY, for anything else; numbers are refused on
            purpose because crontab and APScheduler 3 number the days differently.
    """
    name = str(value).strip().lower()
    for day in _WEEKDAYS:
        if name in (day, day[:3]):
            return day[:3]
    raise ValueError(f"MAILER_DIGEST_DAY must be a weekday name such as monday, got {value!r}")


def digest_time(value: str) -> tuple[int, int]:
    """Return ``(hour, minute)`` of MAILER_DIGEST_TIME ("08:00", 24-hour clock).

    Raises:
        ValueError: naming MAILER_DIGEST_TIME, when it is not HH:MM with a valid hour/minute.
    """
    text = str(value).strip()
    hour_text, sep, minute_text = text.partition(":")
    # ASCII digits only: str.isdigit() also takes "０８" (full-width) and "²".
    digits = text.isascii() and hour_text.isdigit() and minute_text.isdigit()
    if sep and digits and len(minute_text) == 2:
        hour, minute = int(hour_text), int(minute_text)
        if hour < 24 and minute < 60:
            return hour, minute
    raise ValueError(f"MAILER_DIGEST_TIME must be HH:MM (24-hour clock), got {value!r}")


def weekly_trigger(config: Mapping) -> CronTrigger:
    """Return the weekly digest's CronTrigger (MAILER_DIGEST_DAY/_TIME in MAILER_TIMEZONE).

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    hour, minute = digest_time(config["MAILER_DIGEST_TIME"])
    return CronTrigger(
        day_of_week=digest_weekday(config["MAILER_DIGEST_DAY"]),
        hour=hour,
        minute=minute,
        timezone=config["MAILER_TIMEZONE"],
    )


def last_weekly_time(config: Mapping, now: datetime) -> datetime:
    """Return the latest scheduled weekly digest time at or before ``now`` (aware)."""
    trigger = weekly_trigger(config)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=8))
    while True:
        following = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if following > now:
            return fire
        fire = following


def next_weekly_time(config: Mapping, now: datetime) -> datetime:
    """Return the first scheduled weekly digest time at or after ``now`` (aware).

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    return weekly_trigger(config).get_next_fire_time(None, now)


def run_time_of(config: Mapping, now: datetime, period: str) -> datetime:
    """Return the first weekly run at or after ``now`` whose period is ``period`` or later.

    That run is the one that sends a draft of ``period`` (:func:`weekly_digest_job`): the
    next run for a draft of its period or an earlier one, and for a draft built for a later
    week (``digest build --period``) the first run in that week.

    Raises:
        ValueError: a schedule setting or ``period`` is malformed; the message names it.
    """
    following = next_weekly_time(config, now)
    if period <= period_for(following, config["MAILER_TIMEZONE"]):
        return following
    year, week = parse_period(period)
    monday = date.fromisocalendar(year, week, 1)
    week_start = datetime.combine(monday, time(), tzinfo=ZoneInfo(config["MAILER_TIMEZONE"]))
    return weekly_trigger(config).get_next_fire_time(None, week_start)


def late_by(delay: timedelta) -> str:
    """Return ``delay`` in its two largest units, rounded ("6 days 14 hours"); never < 0."""
    seconds = max(delay.total_seconds(), 0)
    if seconds >= 86400:
        big, small = divmod(round(seconds / 3600), 24)
        names = ("day", "hour")
    else:
        big, small = divmod(round(seconds / 60), 60)
        names = ("hour", "minute")
    pairs = zip((big, small), names, strict=True)
    words = [f"{n} {name}{'s' * (n != 1)}" for n, name in pairs if n]
    return " ".join(words) or "0 minutes"
