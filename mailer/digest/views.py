"""The public archive: ``GET /archive`` (sent issues) and ``GET /archive/<number>``.

The issue page is the web version ("view in browser"): the stored, CSS-inlined HTML of the
issue placed inside our site layout (templates/base.html), with the per-recipient markers
replaced by :func:`render.fill_web_version`. The mail's footer, which speaks to one
subscriber and holds the unsubscribe link, is replaced by an invitation to subscribe
(templates/digest/_subscribe.html; see :func:`render.replace_footer`). The stored HTML is
our own template's output, in which every feed text was escaped once at render time, so it
is safe to embed as it is.
Drafts, paused and cancelled issues are not public: they answer 404 like unknown numbers.
"""

from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, render_template
from markupsafe import Markup

from ..extensions import db
from ..security_headers import ARCHIVE_ISSUE_CSP
from .archive import public_issue, public_issues
from .render import fill_web_version, format_date, replace_footer, web_parts

bp = Blueprint("digest", __name__)


@bp.get("/archive")
def archive():
    """List the issues that were sent (or are being sent), newest first."""
    tz = ZoneInfo(current_app.config["MAILER_TIMEZONE"])
    entries = [
        (issue, format_date(when, tz) if (when := issue.sent_at or issue.send_started_at) else "")
        for issue in public_issues(db.session)
    ]
    return render_template("digest/archive.html", entries=entries)


@bp.get("/archive/<issue_number:number>")
def issue_page(number: int):
    """Show the web version of issue ``number``; 404 for drafts and unknown numbers."""
    issue = public_issue(db.session, number)
    if issue is None:
        abort(404)
    html = replace_footer(issue.html, render_template("digest/_subscribe.html"))
    styles, body = web_parts(fill_web_version(html, current_app.config["MAILER_BASE_URL"]))
    page = render_template(
        "digest/issue.html", issue=issue, styles=Markup(styles), body=Markup(body)
    )
    return page, {"Content-Security-Policy": ARCHIVE_ISSUE_CSP}
