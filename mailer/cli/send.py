"""``flask digest send [NUMBER]`` and ``flask send-pending``: thin entry points over
:mod:`mailer.delivery.dispatch`."""

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import clock, create_app, delivery
from ..extensions import db
from ..models import MAX_ISSUE_NUMBER, IssueStatus
from ..subscriptions.service import process_signup_requests

WAITS_ON_RELAY = 3  # `digest send`'s status when the send waits on the relay (1: failed)


def handle_signups() -> None:
    """Turn stored signup requests into subscribers with queued confirmations (subscriptions);
    the delivery room then builds and sends those mails, as the worker's signups job does."""
    try:
        process_signup_requests(db.session, current_app.config)
    finally:
        db.session.remove()


@click.command("send-pending")
@with_appcontext
def send_pending_command():
    """Send every due transactional mail and digest delivery once, then exit.

    Exits with status 1 when a sender failed (the summary says why).
    """
    handle_signups()
    summary = delivery.send_pending(current_app._get_current_object(), factory=create_app)
    if summary.busy:
        raise click.ClickException("another send is running in this process")
    click.echo(
        f"Transactional: {summary.transactional_sent} sent, "
        f"{summary.transactional_deferred} deferred, {summary.transactional_failed} failed."
    )
    for number, status in summary.issues.items():
        click.echo(f"Issue #{number}: {status}.")
        _echo_leases(summary, number)
    _echo_counts(summary)
    if summary.errors:
        _fail(summary.errors)


@click.command("send")
@click.argument("number", required=False, type=click.IntRange(1, MAX_ISSUE_NUMBER))
@with_appcontext
def digest_send_command(number: int | None):
    """Send issue NUMBER (default: the newest draft, sending or paused issue) and wait.

    A draft is queued for every confirmed subscriber and started, a paused issue resumed.
    Sent ahead of its weekly run, a draft goes out as an extra issue: the run still sends
    the items that come in after it.
    A draft whose preflight check finds errors is not started (as the admin's "Send now"):
    the errors are printed, one a line, and the status is 1. Shows a progress bar; exits
    with status 1 when the issue ends paused, cancelled or with failures, and with status 3
    as soon as it waits on the relay (paused by the relay's pushback, or held back by
    MAILER_SEND_HOURLY_CAP): the reason, the relay's reply and when the worker goes on are
    printed.
    """
    try:
        issue, queued = delivery.start_issue(
            db.session, number, config=current_app.config, manual=True
        )
    except delivery.PreflightFailed as exc:
        # Like the admin's "Send now": fix the issue and rebuild it first.
        _fail(
            [
                f"issue #{exc.number} not sent: preflight error [{f.code}] {f.message}"
                for f in exc.errors
            ]
        )
    except delivery.NothingToSend as exc:
        if number is not None:  # the operator named an issue that is not there: an error
            raise click.ClickException(f"cannot send: {exc}") from exc
        click.echo(f"Nothing to send: {exc}.")
        return
    except delivery.InvalidTransition as exc:
        raise click.ClickException(f"cannot send: {exc}") from exc
    if issue.status == IssueStatus.SENT:
        click.echo(f"Issue #{issue.number} was already sent; nothing to do.")
        return
    number = issue.number
    if queued:
        click.echo(f"Issue #{number}: queued {queued} deliveries.")
    db.session.remove()
    summary = _send_with_bar(number)
    _report(number, summary)


def _send_with_bar(number: int) -> delivery.SendSummary:
    app = current_app._get_current_object()
    counts = delivery.status_counts(db.session, _issue_id(number))
    db.session.remove()
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    bar = click.progressbar(
        length=max(1, sum(counts.values())), label=f"Issue #{number}", show_pos=True,
        show_eta=True, item_show_func=_describe,
    )  # fmt: skip
    with bar:
        bar.update(done)
        handle_signups()
        return delivery.send_pending(
            app,
            issue_number=number,
            progress=lambda p: bar.update(p.done - bar.pos, p),
            factory=create_app,
        )


def _describe(p: delivery.SendProgress | None) -> str:
    if p is None:
        return ""
    rate = p.sent_this_run / p.elapsed if p.elapsed > 0 else 0.0
    return f"sent {p.sent}/{p.total}, {rate:,.0f} msg/s"


def _report(number: int, summary: delivery.SendSummary) -> None:
    if summary.busy:
        raise click.ClickException("another send is running in this process; try again")
    counts = delivery.status_counts(db.session, _issue_id(number))
    status = summary.issues.get(number, "not sending")
    click.echo(
        f"Issue #{number}: {status}. This run: {summary.sent} sent, {summary.deferred} "
        f"deferred, {summary.failed} failed, {summary.skipped} skipped in "
        f"{summary.elapsed:.1f} s. All deliveries: "
        + ", ".join(f"{count} {name}" for name, count in counts.items())
        + "."
    )
    problems = list(summary.errors)
    retry = delivery.next_retry_at(db.session, _issue_id(number))
    if counts["deferred"] and retry is not None:
        click.echo(
            f"{counts['deferred']} deferred deliveries will be retried from "
            f"{retry:%Y-%m-%d %H:%M} UTC by the worker or `flask send-pending`."
        )
    _echo_leases(summary, number)
    issue = delivery.issue_by_number(db.session, number)
    if status == IssueStatus.PAUSED and issue.status_reason == delivery.PUSHBACK:
        _waits(problems, _relay_pause(issue, counts))
    if status == IssueStatus.SENDING:
        room = delivery.waiting_for_hourly_cap(db.session, issue.id, current_app.config)
        if room is not None:
            _waits(problems, _hourly_cap_wait(issue, room))
    if status == IssueStatus.PAUSED:
        problems.append(f"issue #{number} is paused: {_reason(number)}")
    if status == IssueStatus.CANCELLED:  # it did not reach everyone either
        problems.append(f"issue #{number} was cancelled during the send: {_reason(number)}")
    if counts["failed"]:
        problems.append(
            f"{counts['failed']} deliveries failed (replies on the admin page of issue "
            f"#{number}; `retry failed` there queues them again)"
        )
    if problems:
        _fail(problems)


def _relay_pause(issue, counts: dict[str, int]) -> list[str]:
    # README, "Relay pushback": what happened, the relay's words, what happens next and when.
    number, resume_at = issue.number, issue.resume_at
    lines = [
        f"Issue #{number} is paused by the relay ({delivery.PUSHBACK}): {issue.relay_reply}",
        f"{counts['deferred']} deliveries the relay refused wait without a retry penalty; "
        f"{counts['queued']} are still queued; no subscriber was charged a soft bounce.",
    ]
    if resume_at is not None:
        lines.append(
            f"The worker resumes it by itself at {resume_at:%Y-%m-%d %H:%M} UTC "
            f"({_from_now(resume_at)}), refused deliveries first."
        )
    lines.append(
        f"Resume it now: flask --app wsgi digest resume {number}; "
        f"stop it: flask --app wsgi digest cancel {number}."
    )
    return lines


def _hourly_cap_wait(issue, room) -> list[str]:
    cap = current_app.config["MAILER_SEND_HOURLY_CAP"]
    return [
        f"Issue #{issue.number} waits for MAILER_SEND_HOURLY_CAP ({cap} messages an hour).",
        f"The worker goes on at {room:%Y-%m-%d %H:%M} UTC ({_from_now(room)}), or run "
        f"flask --app wsgi digest send {issue.number} then.",
    ]


def _from_now(moment) -> str:
    minutes = max(0, round((moment - clock.now()).total_seconds() / 60))
    return f"in {minutes} min"


def _waits(problems: list[str], lines: list[str]) -> None:
    """Print why the send waits on the relay and exit with status 3 (not a failure)."""
    for line in lines:
        click.echo(line)
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    raise SystemExit(WAITS_ON_RELAY)


def _issue_id(number: int) -> int:
    issue = delivery.issue_by_number(db.session, number)
    return issue.id


def _reason(number: int) -> str:
    issue = delivery.issue_by_number(db.session, number)
    return issue.status_reason or "no reason recorded"


def _echo_leases(summary: delivery.SendSummary, number: int) -> None:
    leases = summary.leased.get(number)
    if leases is not None:
        click.echo(
            f"{leases.count} deliveries are leased by another sender until "
            f"{leases.until:%H:%M} UTC; they will be sent then (or by that sender)."
        )


def _echo_counts(summary: delivery.SendSummary) -> None:
    click.echo(
        f"Deliveries: {summary.sent} sent, {summary.deferred} deferred, {summary.failed} "
        f"failed, {summary.skipped} skipped ({summary.elapsed:.1f} s)."
    )


def _fail(problems: list[str]) -> None:
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    raise SystemExit(1)
