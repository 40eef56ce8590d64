"""Template filters of the admin pages: times in the newsletter's zone, rates, durations."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from ..content.fetch import masked_url
from ..digest.periods import period_label
from ..subscriptions.topics import describe
from .blueprint import bp


@bp.app_template_filter("when")
def when(value: datetime | None) -> str:
    """Format an aware datetime in MAILER_TIMEZONE ("2026-03-09 08:00 JST"); "—" for None."""
    if value is None:
        return "—"
    zone = ZoneInfo(current_app.config["MAILER_TIMEZONE"])
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


@bp.app_template_filter("rate")
def rate(value: float | None, decimals: int = 1) -> str:
    """Format a fraction as a percentage with ``decimals`` decimals ("1.5%"); "—" for None.

    Complaint rates use two (their threshold is 0.1 %).
    """
    return "—" if value is None else f"{value:.{decimals}%}"


@bp.app_template_filter("duration")
def duration(value: timedelta | None) -> str:
    """Format a duration roughly ("about 2 h 5 min", "under a minute"); "—" for None."""
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min" if hours else f"about {minutes} min"


@bp.app_template_filter("week")
def week(period: str | None) -> str:
    """Format an issue's period for admins ("Week 49, 2026"): the mail no longer says it."""
    try:
        return period_label(period or "")
    except ValueError:
        return period or "—"


@bp.app_template_filter("topics")
def topics(value: str | None) -> str:
    """Format stored topics for people ("News and job openings"); "—" for None."""
    return describe(value) if value else "—"


@bp.app_template_filter("masked_url")
def masked_url_filter(value: str) -> str:
    """A feed URL with its password (if any) shown as ``***``."""
    return masked_url(value)
