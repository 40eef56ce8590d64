"""Dashboard: the list and the sends at a glance, and what needs attention."""

from dataclasses import dataclass

from flask import current_app, render_template, url_for

from .. import clock, delivery
from ..digest import outlook, preflight, schedule
from ..digest.periods import period_for
from ..extensions import db
from ..subscriptions.service import REASONS
from . import attention, queries
from .blueprint import bp
from .charts import bar_chart
from .filters import when
from .next_issue import next_issue

GROWTH_WEEKS = 12


@dataclass(frozen=True)
class Alert:
    """Something an operator should look at, with the page where to act."""

    message: str
    link: str


def _rate_warnings(recent: list, stats: dict) -> list[Alert]:
    found = []
    for issue in recent:
        s = stats[issue.id]
        link = url_for("admin.issue_detail", number=issue.number)
        if s.bounce_rate is not None and s.bounce_rate > queries.HARD_BOUNCE_WARNING:
            found.append(Alert(f"Issue #{issue.number}: {s.bounce_rate:.1%} of its messages "
                               "bounced hard (above 2 %): clean the list before the next send",
                               link))  # fmt: skip
        if s.complaint_rate is not None and s.complaint_rate > queries.COMPLAINT_WARNING:
            found.append(Alert(f"Issue #{issue.number}: {s.complaint_rate:.2%} of its "
                               "recipients complained (above 0.1 %): mailbox providers "
                               "will start filtering the newsletter", link))  # fmt: skip
    return found


def _warnings(findings: list, now) -> list[Alert]:
    """What needs an operator, and nothing else (issue 12): nothing when all is well."""
    session = db.session
    found = [
        Alert(
            f"Feed {feed.url} has been failing for more than a day: {feed.last_error}",
            url_for("admin.feed_list"),
        )
        for feed in attention.failing_feeds(session, now)
    ]
    waiting, reply = attention.unreachable_relay(session)
    if waiting:
        found.append(
            Alert(
                f"The relay could not be reached: {waiting} mail(s) wait for a retry "
                f"(last reply: {reply}). Check MAILER_SMTP_HOST and MAILER_SMTP_PORT.",
                url_for("admin.settings_page"),
            )
        )
    found += [
        Alert(_paused_message(paused), url_for("admin.issue_detail", number=paused.number))
        for paused in attention.paused_issues(session)
    ]
    found += _capped_sends(session)
    found += [
        Alert(
            f"The relay is refusing the messages of issue #{issue.number} "
            f"({issue.refusal_streak} in a row so far), so the send crawls: "
            f"{issue.relay_reply}. Refused messages are retried from "
            f"{when(delivery.next_retry_at(session, issue.id))}; at "
            f"{current_app.config['MAILER_PUSHBACK_AFTER']} in a row the send pauses itself.",
            url_for("admin.issue_detail", number=issue.number),
        )
        for issue in attention.refused_issues(session)
    ]
    mail = attention.refused_mail(session, clock.now())
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
            f"Preflight error in the built next issue: {finding.message}",
            url_for("admin.next_issue_page"),
        )
        for finding in findings
        if finding.level == "error"
    ]
    found += _run_alerts(session, now)
    waiting, since = attention.waiting_signups(session, now)
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


def _capped_sends(session) -> list[Alert]:
    # A send that waits for MAILER_SEND_HOURLY_CAP: say so, and when it goes on.
    found = []
    for issue in attention.sending_issues(session):
        at = delivery.waiting_for_hourly_cap(session, issue.id, current_app.config)
        if at is not None:
            found.append(Alert(
                f"The send of issue #{issue.number} waits: the last hour's messages fill "
                f"MAILER_SEND_HOURLY_CAP. The worker goes on at {when(at)}.",
                url_for("admin.issue_detail", number=issue.number),
            ))  # fmt: skip
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


def _run_alerts(session, now) -> list[Alert]:
    # The last scheduled run, when it sent nothing (and why), and missed weeks.
    found = [
        Alert(
            f"Missed week ({event.created_at:%Y-%m-%d}): {event.message}",
            url_for("admin.issue_list"),
        )
        for event in attention.recent_missed_weeks(session, now)
    ]
    try:
        config = current_app.config
        last_run = schedule.last_weekly_time(config, now)
        period = period_for(last_run, config["MAILER_TIMEZONE"])
    except (ValueError, LookupError):
        return found  # the schedule's own error is shown under "Next send"
    found += [
        Alert(f"The last weekly run: {event.message}", url_for("admin.next_issue_page"))
        for event in attention.run_events(session, period)
    ]
    return found


@bp.get("/")
def dashboard():
    """Subscribers by status, weekly growth chart, next send, last issues, warnings."""
    session = db.session
    now = clock.now()
    issue, built = next_issue()
    # SpamAssassin takes seconds: the dashboard runs the quick checks, the next-issue page all.
    # Only a built draft is checked: a preview is not going anywhere yet.
    findings = preflight.check_issue(issue, current_app.config, spamassassin=False) if built else []
    recent = queries.recent_issues(session)
    stats = queries.issue_stats(session, recent)
    growth = queries.weekly_confirmations(
        session, now=now, tz=current_app.config["MAILER_TIMEZONE"], weeks=GROWTH_WEEKS
    )
    try:
        run, schedule_error = outlook.next_run(session, current_app.config, now), None
    except (ValueError, LookupError) as exc:  # LookupError: an unknown time zone name
        run, schedule_error = None, str(exc)
    return render_template(
        "admin/dashboard.html",
        counts=queries.subscriber_counts(session),
        chart=bar_chart(growth, title=f"New confirmed subscribers per week, last {GROWTH_WEEKS}"),
        growth_total=sum(count for _label, count in growth),
        run=run,
        schedule_error=schedule_error,
        next_issue=issue,
        next_built=built,
        recent=recent,
        stats=stats,
        warnings=_rate_warnings(recent, stats) + _warnings(findings, now),
        events=attention.recent_job_events(session, now),
        reasons=queries.unsubscribe_reasons(session, REASONS),
    )
