"""The next issue: preview (sandboxed), text part, headers, preflight; build, test copy, send now.

The next issue is the newest built issue still in draft; when there is none, it is what the
digest room's ``render_preview`` says the next build would contain (not saved).
"""

from email import message_from_bytes, policy

from flask import Response, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from .. import clock
from ..delivery import mime
from ..digest import build, preflight
from ..digest.render import fill_web_version
from ..extensions import db, limiter
from ..models import Issue
from . import queries
from .blueprint import bp
from .forms import TestSendForm
from .schedule import describe_next_send
from .testsend import send_test_copies

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


def next_issue() -> tuple[Issue, bool]:
    """Return (the next issue, whether it is built): the draft, else a transient preview."""
    draft = queries.draft_issue(db.session)
    if draft is not None:
        return draft, True
    return build.render_preview(db.session), False


def web_version(text: str) -> str:
    """Fill the per-recipient markers of stored issue HTML/text as the archive page does."""
    return fill_web_version(text, current_app.config["MAILER_BASE_URL"])


def preview_response(html: str) -> Response:
    """Serve issue HTML for the sandboxed preview iframe, under :data:`PREVIEW_CSP`."""
    response = Response(web_version(html), mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def message_headers(issue: Issue) -> list[tuple[str, str]]:
    """Return the headers of a test copy of ``issue`` to the signed-in admin, in order."""
    body = mime.build_test_message(issue, current_user.email, current_app.config)
    message = message_from_bytes(body, policy=policy.default)
    return [(name, str(message[name])) for name in HEADER_NAMES if message[name] is not None]


@bp.get("/next")
def next_issue_page():
    """Show the next issue: preview, text part, headers, preflight findings and the actions."""
    issue, built = next_issue()
    findings = preflight.check_issue(issue, current_app.config)
    next_send, schedule_error = describe_next_send(current_app.config, clock.now())
    return render_template(
        "admin/next_issue.html",
        next_send=next_send,
        schedule_error=schedule_error,
        issue=issue,
        built=built,
        text=web_version(issue.text),
        headers=message_headers(issue),
        findings=findings,
        has_errors=any(finding.level == "error" for finding in findings),
        test_form=TestSendForm(),
    )


@bp.get("/next/preview.html")
def next_issue_preview():
    """The next issue's HTML for the preview iframe."""
    issue, _built = next_issue()
    return preview_response(issue.html)


@bp.post("/next/build")
def build_now():
    """Build the next issue now (the digest room's build; idempotent per week)."""
    issue = build.build_issue(db.session)
    db.session.commit()
    if issue is None:
        flash("Nothing to build: there are no new items for an issue yet.", "error")
    else:
        flash(f"Issue #{issue.number} ({issue.period}) is built.", "info")
    return redirect(url_for("admin.next_issue_page"))


def _test_send_limit() -> str:
    return current_app.config["MAILER_TEST_SEND_RATE_LIMIT"]


def _admin_key() -> str:
    return f"admin-test-send:{current_user.get_id()}"


@bp.post("/issues/<int:number>/test")
@limiter.limit(_test_send_limit, key_func=_admin_key)
def send_test(number: int):
    """Send a test copy ("[TEST]" subject) of issue ``number`` to the addresses in the form.

    No Delivery rows are written and no statistics change: the copies go straight to the
    relay with the delivery room's one-off ``smtp.send_message``.
    """
    issue = queries.issue_by_number(db.session, number)
    if issue is None:
        return render_template("admin/not_found.html", what=f"issue #{number}"), 404
    form = TestSendForm()
    if not form.validate_on_submit():
        for message in form.addresses.errors:
            flash(message, "error")
        return redirect(back_to(issue))
    for result in send_test_copies(issue, form.addresses.data.split("\n"), current_app.config):
        if result.ok:
            flash(f"Test copy sent to {result.recipient} ({result.reply}).", "info")
        else:
            flash(f"Test copy to {result.recipient} failed: {result.reply}", "error")
    return redirect(back_to(issue))


def back_to(issue: Issue) -> str:
    """The page an action on ``issue`` returns to: the next-issue page for a draft."""
    if queries.draft_issue(db.session) is issue:
        return url_for("admin.next_issue_page")
    return url_for("admin.issue_detail", number=issue.number)
