"""What the next weekly run will do: when, with which issue or which items, or why nothing.

One answer for ``digest next``, the admin dashboard and the next-issue page, so that they
never disagree (issue 12).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ..models import Issue, Section
from . import build, preflight, schedule
from .periods import period_for


@dataclass(frozen=True)
class NextRun:
    """The next scheduled weekly run and what it would send if it ran now.

    ``issue`` is the built draft it sends (None: it builds one from the new items then);
    ``counts`` the items per section it would send; ``reason`` why it would send nothing
    (None when it sends something).
    """

    at: datetime
    period: str
    issue: Issue | None
    counts: dict[str, int] = field(default_factory=dict)
    reason: str | None = None

    def describe(self) -> str:
        """One line saying what the run sends, as ``digest next`` and the dashboard show it."""
        items = ", ".join(f"{count} {name}" for name, count in self.counts.items())
        if self.reason is not None:
            return f"sends nothing: {self.reason}"
        if self.issue is not None:
            return f"sends issue #{self.issue.number} (built): {items}"
        return f"builds and sends a new issue: {items}"


def next_issue(session: Session, config: Mapping, now: datetime) -> tuple[Issue, bool]:
    """Return (the next issue, whether it is built).

    The draft the next weekly run starts, else a draft built for a later week, else a
    transient preview (never added to the session) of what a build now would contain,
    with the period it would get.

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    period = schedule.build_period(session, config, now)
    draft = schedule.issue_for_run(session, period) or schedule.draft_to_send(session)
    if draft is not None:
        return draft, True
    return build.render_preview(session, period=period), False


def next_run(session: Session, config: Mapping, now: datetime) -> NextRun:
    """Return the next scheduled weekly run (a run still owed within MAILER_MISFIRE_GRACE
    first) and what it would send; the time is in MAILER_TIMEZONE.

    Raises:
        ValueError: a schedule setting is malformed; the message names it.
    """
    zone = ZoneInfo(config["MAILER_TIMEZONE"])
    owed = schedule.pending_catch_up(session, config, now)
    if owed is not None:
        at, period = owed, period_for(owed, config["MAILER_TIMEZONE"])
    else:
        period = schedule.build_period(session, config, now)
        at = schedule.run_time_of(config, now, period)
    draft = schedule.issue_for_run(session, period)
    if draft is not None:
        # The quick checks (no SpamAssassin, which takes seconds): the run itself runs all.
        findings = preflight.check_issue(draft, config, spamassassin=False)
        codes = ", ".join(f.code for f in findings if f.level == "error")
        reason = (
            f"built issue #{draft.number} has preflight errors ({codes}): fix them, cancel "
            "it and build again"
            if codes
            else None
        )
        return NextRun(at.astimezone(zone), period, draft, item_counts(draft), reason)
    per_section = int(config.get("MAILER_DIGEST_ITEMS_PER_SECTION", 10))
    chosen = build.pending_items(session, per_section)
    counts = {section: len(chosen[section]) for section in Section.ALL}
    reason = build.shortfall(session, config)
    return NextRun(at.astimezone(zone), period, None, counts, reason)


def item_counts(issue: Issue) -> dict[str, int]:
    """Return {section: items} of a built issue (every section, 0 when empty)."""
    counts = dict.fromkeys(Section.ALL, 0)
    for item in issue.items:
        counts[item.section] = counts.get(item.section, 0) + 1
    return counts
