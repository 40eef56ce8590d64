"""Dashboard: the list and the sends at a glance, and what needs attention."""

from dataclasses import dataclass

from flask import current_app, render_template, url_for

from .. import clock
from ..digest import preflight
from ..extensions import db
from ..subscriptions.service import REASONS
from . import queries
from .blueprint import bp
from .charts import bar_chart
from .next_issue import next_issue, scheduled_send

GROWTH_WEEKS = 12


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at, with the page where to act."""

    message: str
    link: str


def _warnings(findings: list) -> list[Alert]:
    session = db.session
    found = [
        Alert(
            f"Feed {feed.url} failed at its last refresh: {feed.last_error}",
            url_for("admin.feed_list"),
        )
        for feed in queries.failing_feeds(session)
    ]
    found += [
        Alert(
            f"The send of issue #{paused.number} is paused"
            + (f": {paused.status_reason}" if paused.status_reason else "."),
            url_for("admin.issue_detail", number=paused.number),
        )
        for paused in queries.paused_issues(session)
    ]
    found += [
        Alert(
            f"Preflight error in the next issue: {finding.message}",
            url_for("admin.next_issue_page"),
        )
        for finding in findings
        if finding.level == "error"
    ]
    found += [
        Alert(
            f"Missed week ({event.created_at:%Y-%m-%d}): {event.message}",
            url_for("admin.issue_list"),
        )
        for event in queries.recent_missed_weeks(session, clock.now())
    ]
    waiting, since = queries.waiting_signups(session, clock.now())
    if waiting:
        found.append(
            Alert(
                f"{waiting} signup(s) have waited since {since:%Y-%m-%d %H:%M} UTC for the "
                "worker, which turns them into subscribers and sends the confirmation "
                "mails: is `flask --app wsgi worker` running?",
                url_for("admin.subscriber_list"),
            )
        )
    return found


@bp.get("/")
def dashboard():
    """Subscribers by status, weekly growth chart, next send, last issues, warnings."""
    session = db.session
    now = clock.now()
    issue, built = next_issue()
    # SpamAssassin takes seconds: the dashboard runs the quick checks, the next-issue page all.
    findings = preflight.check_issue(issue, current_app.config, spamassassin=False)
    recent = queries.recent_issues(session)
    growth = queries.weekly_confirmations(
        session, now=now, tz=current_app.config["MAILER_TIMEZONE"], weeks=GROWTH_WEEKS
    )
    next_send, schedule_error = scheduled_send(issue)  # when that issue goes out
    return render_template(
        "admin/dashboard.html",
        counts=queries.subscriber_counts(session),
        chart=bar_chart(growth, title=f"New confirmed subscribers per week, last {GROWTH_WEEKS}"),
        growth_total=sum(count for _label, count in growth),
        next_send=next_send,
        schedule_error=schedule_error,
        next_issue=issue,
        next_built=built,
        recent=recent,
        stats=queries.issue_stats(session, recent),
        warnings=_warnings(findings),
        events=queries.recent_job_events(session, now),
        reasons=queries.unsubscribe_reasons(session, REASONS),
    )
