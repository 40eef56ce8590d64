"""Issues: list, detail with send progress and failures; send now, pause, resume, cancel, retry.

Status changes go through the delivery room's ``delivery.change_issue_status`` (the one place
that knows the allowed transitions); the worker does the sending.
"""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import clock, delivery
from ..digest import preflight
from ..extensions import db
from ..models import MAX_ISSUE_NUMBER, Issue, IssueStatus
from . import listing, queries
from .blueprint import bp, id_arg
from .forms import TestSendForm
from .next_issue import back_to, preview_response

ACTIONS = {
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "retry_failed": "queued again for its failed deliveries",
}


def _get_issue(number: int) -> Issue | None:
    return queries.issue_by_number(db.session, number)


def _not_found(number: int):
    return render_template("admin/not_found.html", what=f"issue #{number}"), 404


@bp.get("/issues")
def issue_list():
    """All issues, newest first, with their delivery counts."""
    issues, older = listing.issue_page(db.session, after=id_arg("after", MAX_ISSUE_NUMBER))
    stats = queries.issue_stats(db.session, issues)
    return render_template("admin/issues.html", issues=issues, stats=stats, older=older)


@bp.get("/issues/<issue_number:number>")
def issue_detail(number: int):
    """One issue: progress (sent / total, rate, ETA), actions, failed deliveries."""
    issue = _get_issue(number)
    if issue is None:
        return _not_found(number)
    failures, older = listing.failed_deliveries(db.session, issue.id, after=id_arg("after"))
    return render_template(
        "admin/issue.html",
        issue=issue,
        progress=queries.issue_progress(db.session, issue, clock.now()),
        failures=failures,
        older=older,
        test_form=TestSendForm(),
    )


@bp.get("/issues/<issue_number:number>/preview.html")
def issue_preview(number: int):
    """The stored HTML of issue ``number`` for the sandboxed preview iframe."""
    issue = _get_issue(number)
    if issue is None:
        return _not_found(number)
    return preview_response(issue.html)


@bp.post("/issues/<issue_number:number>/send")
def send_now(number: int):
    """Queue one delivery per confirmed subscriber and start the send; the worker sends.

    Two steps: the first POST shows how many subscribers will get it and asks again; only a
    second POST that repeats that number (``confirm_recipients``) sends. Refused while the
    preflight check reports an error (fix it and rebuild first). Sent ahead of its weekly
    run, the draft is an extra issue: the run still sends what comes in after it.
    """
    issue = _get_issue(number)
    if issue is None:
        return _not_found(number)
    if issue.status != IssueStatus.DRAFT:
        flash(f"Issue #{number} cannot be sent now: it is {issue.status}.", "error")
        return redirect(back_to(issue))
    recipients = delivery.recipient_count(db.session)
    confirmed = request.form.get("confirm_recipients", "")
    if confirmed != str(recipients):
        # Checked before asking (start_issue checks again at the send itself).
        errors = preflight.blocking_errors(issue, current_app.config)
        if errors:
            flash("Not sent: the preflight check found errors. " + errors[0].message, "error")
            return redirect(back_to(issue))
        changed = bool(confirmed)  # confirmed for another number: the list changed meanwhile
        page = render_template(
            "admin/confirm_send.html", issue=issue, recipients=recipients, changed=changed
        )
        return page, 200
    try:
        _, queued = delivery.start_issue(db.session, number, config=current_app.config, manual=True)
    except delivery.PreflightFailed as exc:
        db.session.rollback()
        flash("Not sent: the preflight check found errors. " + exc.errors[0].message, "error")
        return redirect(back_to(issue))
    except (delivery.InvalidTransition, ValueError) as exc:
        db.session.rollback()
        flash(f"Issue #{number} cannot be sent now: {exc}", "error")
        return redirect(back_to(issue))
    flash(f"Issue #{number} is sending to {queued} {_subscribers(queued)}.", "info")
    return redirect(url_for("admin.issue_detail", number=number))


def _subscribers(count: int) -> str:
    return "subscriber" if count == 1 else "subscribers"


@bp.post("/issues/<issue_number:number>/<any(pause, resume, cancel, retry_failed):action>")
def issue_action(number: int, action: str):
    """Pause, resume or cancel the send of issue ``number``, or retry its failed deliveries."""
    issue = _get_issue(number)
    if issue is None:
        return _not_found(number)
    try:
        delivery.change_issue_status(db.session, issue, action, reason=f"by {current_user.email}")
        db.session.commit()
    except delivery.InvalidTransition as exc:
        db.session.rollback()
        flash(f"Issue #{number} cannot be {ACTIONS[action]}: {exc}", "error")
    else:
        flash(f"Issue #{number} {ACTIONS[action]}.", "info")
    return redirect(url_for("admin.issue_detail", number=number))
