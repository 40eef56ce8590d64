"""Dashboard: the list and the sends at a glance, and what needs attention."""

from dataclasses import dataclass

from flask import current_app, render_template, url_for

from .. import clock, delivery
from ..digest import preflight
from ..extensions import db
from . import queries
from .blueprint import bp
from .charts import bar_chart
from .filters import when
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
        Alert(_paused_message(paused), url_for("admin.issue_detail", number=paused.number))
        for paused in queries.paused_issues(session)
    ]
    found += [
        Alert(
            f"The relay is refusing the messages of issue #{issue.number} "
            f"({issue.refusal_streak} in a row so far), so the send crawls: "
            f"{issue.relay_reply}. Refused messages are retried from "
            f"{when(delivery.next_retry_at(session, issue.id))}; at "
            f"{current_app.config['MAILER_PUSHBACK_AFTER']} in a row the send pauses itself.",
            url_for("admin.issue_detail", number=issue.number),
        )
        for issue in queries.refused_issues(session)
    ]
    mail = queries.refused_mail(session, clock.now())
    if mail is not None:
        found.append(
            Alert(
                f"{mail.count} confirmation mail(s) wait because the relay refused them: "
                f"{mail.last_reply}. They are tried again from {when(mail.next_try)}; none "
                "is dropped.",
                url_for("admin.subscriber_list", status="pending"),
            )
        )
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


def _paused_message(issue) -> str:
    if issue.status_reason != delivery.PUSHBACK:
        reason = f": {issue.status_reason}" if issue.status_reason else "."
        return f"The send of issue #{issue.number} is paused{reason}"
    # Paused by the relay: its words, and when the worker goes on by itself.
    return (
        f"The send of issue #{issue.number} is paused by the relay ({delivery.PUSHBACK}): "
        f"{issue.relay_reply}. The worker resumes it by itself at {when(issue.resume_at)}; "
        "resume it now or cancel it on its page."
    )


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
    )
