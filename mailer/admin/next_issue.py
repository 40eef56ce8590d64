"""The next issue: preview (sandboxed), text part, headers, preflight; build, test copy, send now.

The next issue is the draft that the next weekly run sends (``schedule.issue_for_run``);
when there is none, it is what the digest room's ``render_preview`` says the next build would
contain (not saved). Both carry the period of the weekly run that will send them
(``schedule.build_period``), so the label shown is the one subscribers get, and a draft
built here is the one that run sends.
"""

from datetime import datetime
from email import message_from_bytes, policy

from flask import Response, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from .. import clock, delivery
from ..digest import build, outlook, preflight, schedule
from ..extensions import db, limiter
from ..models import Issue
from . import queries
from .blueprint import bp
from .forms import TestSendForm

# The issue HTML is shown with its own, stricter policy: no script, no form, no plugin,
# styles inline (the mail's CSS is inlined), images from anywhere as in a mail client, and a
# CSP sandbox in case the URL is opened outside the iframe.
PREVIEW_CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
HEADER_NAMES = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "DKIM-Signature",
)


def build_period() -> str:
    """Return the period ("YYYY-Www") an issue built now belongs to (``schedule.build_period``).

    With a malformed schedule setting (no worker can start; the pages show the error) it
    is the current ISO week.
    """
    config = current_app.config
    try:
        return schedule.build_period(db.session, config, clock.now())
    except (ValueError, LookupError):  # LookupError: an unknown time zone name
        return build.current_period(config)


def next_issue() -> tuple[Issue, bool]:
    """Return (the next issue, whether it is built): ``digest.outlook.next_issue``.

    With a malformed schedule setting, the preview is labelled with the current ISO week.
    """
    try:
        return outlook.next_issue(db.session, current_app.config, clock.now())
    except (ValueError, LookupError):  # LookupError: an unknown time zone name
        return build.render_preview(db.session, period=build_period()), False


def scheduled_send(issue: Issue) -> tuple[datetime | None, str | None]:
    """Return (when the weekly run sends ``issue``, None), or (None, the settings error).

    That is the run of ``issue``'s period or, when that week is done or past, the run
    of the period a build now gets (``schedule.run_time_of``); a run no worker made yet,
    still within MAILER_MISFIRE_GRACE (``schedule.pending_catch_up``), for its own issue.
    """
    config = current_app.config
    try:
        now = clock.now()
        owed = schedule.pending_catch_up(db.session, config, now)
        if owed is not None and issue.period <= build_period():
            return owed, None  # the missed run, which a worker starting now catches up
        return schedule.run_time_of(config, now, max(issue.period, build_period())), None
    except (ValueError, LookupError) as exc:  # LookupError: an unknown time zone name
        return None, str(exc)


def other_drafts(issue: Issue, built: bool) -> list[Issue]:
    """Return the drafts besides the shown one: the weekly run does not send them."""
    drafts = build.waiting_drafts(db.session)
    return [draft for draft in drafts if not (built and draft.id == issue.id)]


def web_version(text: str, *, for_html: bool = False) -> str:
    """Fill the per-recipient markers of stored issue text (or HTML: ``for_html``) for a preview.

    As in a test copy: the unsubscribe link is the harmless one its headers show
    (:func:`delivery.unsubscribe_url_of_test_copy`), so the preview's parts and headers agree and
    the link leads to no one's unsubscribe page; the recipient is "you".
    """
    url = delivery.unsubscribe_url_of_test_copy(current_app.config)
    return delivery.fill_markers(text, url, "you", for_html=for_html)


def preview_response(html: str) -> Response:
    """Serve issue HTML for the sandboxed preview iframe, under :data:`PREVIEW_CSP`."""
    response = Response(web_version(html, for_html=True), mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def message_headers(issue: Issue) -> list[tuple[str, str]]:
    """Return the headers of a test copy of ``issue`` to the signed-in admin, in order."""
    body = delivery.build_test_message(issue, current_user.email, current_app.config)
    message = message_from_bytes(body, policy=policy.default)
    return [(name, str(message[name])) for name in HEADER_NAMES if message[name] is not None]


@bp.get("/next")
def next_issue_page():
    """Show the next issue: preview, text part, headers, preflight findings and the actions."""
    issue, built = next_issue()
    findings = preflight.check_issue(issue, current_app.config)
    next_send, schedule_error = scheduled_send(issue)
    return render_template(
        "admin/next_issue.html",
        next_send=next_send,
        schedule_error=schedule_error,
        issue=issue,
        built=built,
        other_drafts=other_drafts(issue, built),
        text=web_version(issue.text),
        headers=message_headers(issue),
        findings=findings,
        has_errors=any(finding.level == "error" for finding in findings),
        test_form=TestSendForm(),
        recipients=delivery.recipient_count(db.session),
    )


@bp.get("/next/preview.html")
def next_issue_preview():
    """The next issue's HTML for the preview iframe."""
    issue, _built = next_issue()
    return preview_response(issue.html)


@bp.post("/next/build")
def build_now():
    """Build the next issue now, for the next weekly run; a built next issue is kept."""
    issue, built = next_issue()
    if not built:
        issue = build.build_issue(db.session, period=build_period())
        db.session.commit()
    if issue is None:
        reason = build.shortfall(db.session, current_app.config) or "no new items"
        flash(f"Nothing to build: {reason}.", "error")
    else:
        flash(f"Issue #{issue.number} ({issue.period}) is built.", "info")
    return redirect(url_for("admin.next_issue_page"))


def _test_send_limit() -> str:
    return current_app.config["MAILER_TEST_SEND_RATE_LIMIT"]


def _admin_key() -> str:
    return f"admin-test-send:{current_user.get_id()}"


@bp.post("/issues/<issue_number:number>/test")
@limiter.limit(_test_send_limit, key_func=_admin_key)
def send_test(number: int):
    """Send a test copy ("[TEST]" subject) of issue ``number`` to the addresses in the form.

    No Delivery rows are written and no statistics change: the copies go straight to the
    relay with the delivery room's one-off ``smtp.connection.send_message``.
    """
    issue = queries.issue_by_number(db.session, number)
    if issue is None:
        return render_template("admin/not_found.html", what=f"issue #{number}"), 404
    form = TestSendForm()
    if not form.validate_on_submit():
        for message in form.addresses.errors:
            flash(message, "error")
        return redirect(back_to(issue))
    _flash_results(
        delivery.send_test_copies(issue, form.addresses.data.split("\n"), current_app.config)
    )
    return redirect(back_to(issue))


@bp.post("/next/test")
@limiter.limit(_test_send_limit, key_func=_admin_key)
def send_test_of_next():
    """Send test copies of the next issue as the page shows it, built or not.

    An unbuilt next issue is rendered for the copies and thrown away: nothing is built or
    frozen, and the items stay free for the weekly run (issue 12).
    """
    form = TestSendForm()
    if not form.validate_on_submit():
        for message in form.addresses.errors:
            flash(message, "error")
        return redirect(url_for("admin.next_issue_page"))
    issue, _built = next_issue()
    results = delivery.send_test_copies(issue, form.addresses.data.split("\n"), current_app.config)
    db.session.rollback()  # an unbuilt preview is never stored
    _flash_results(results)
    return redirect(url_for("admin.next_issue_page"))


def _flash_results(results) -> None:
    for result in results:
        if result.ok:
            flash(f"Test copy sent to {result.recipient} ({result.reply}).", "info")
        else:
            flash(f"Test copy to {result.recipient} failed: {result.reply}", "error")


def back_to(issue: Issue) -> str:
    """The page an action on ``issue`` returns to: the next-issue page for a draft."""
    if next_issue() == (issue, True):
        return url_for("admin.next_issue_page")
    return url_for("admin.issue_detail", number=issue.number)
