"""Public pages of the subscriber lifecycle: signup, confirm, unsubscribe, preferences (thin
entry points).

CSRF: ``POST /subscribe`` is exempt because the news site embeds our form in its own pages
(a cross-site POST that cannot carry our session's CSRF token). ``POST /confirm/<token>``,
``POST /unsubscribe/<token>`` and ``POST /preferences/<token>`` are exempt because the signed
token in the URL is itself the capability: a forger would need the token, and a mailbox
provider's RFC 8058 one-click POST arrives with no cookies and no CSRF token at all. Every
other POST in the app keeps Flask-WTF's CSRF check.
"""

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ..extensions import csrf, db, limiter
from . import service
from .addresses import ENCODING_MESSAGE, printable
from .errors import (
    InvalidAddress,
    InvalidSections,
    InvalidToken,
    StaleToken,
    UnknownChoice,
    UnknownSubscriber,
)
from .service import Visitor
from .topics import parse_sections

bp = Blueprint("subscriptions", __name__)

HONEYPOT_FIELD = "website"
TEST_COPY_TOKEN = "test"
# A real token is well under 200 characters; refuse giant paths before any work.
MAX_TOKEN_LENGTH = 512
THANKS_MESSAGE = (
    "Thanks! If this address can receive our newsletter, a confirmation link is on its way. "
    "Please check your inbox."
)


def _signup_limit() -> str:
    return current_app.config["MAILER_SIGNUP_RATE_LIMIT"]


def _token_limit() -> str:
    return current_app.config["MAILER_TOKEN_RATE_LIMIT"]


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.is_json or best == "application/json"


def _visitor(source: str | None) -> Visitor:
    return Visitor(
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent", ""),
        source=source,
    )


@bp.after_request
def _private_headers(response):
    # Token URLs are secrets: keep them out of caches, search engines and Referer headers.
    if request.endpoint and "token" in (request.view_args or {}):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.before_request
def _test_copy_links():
    # Admin test copies carry /unsubscribe/test (delivery.mime.TEST_TOKEN): explain, change nothing.
    if (request.view_args or {}).get("token") == TEST_COPY_TOKEN:
        return render_template("subscriptions/link_problem.html", problem="test")
    return None


@bp.get("/")
def index():
    """The signup page: what the newsletter is, the form, a link to the archive."""
    return render_template("subscriptions/index.html", email="", error=None)


def _read_signup() -> tuple[object, bool, object] | None:
    """(email, honeypot filled, sections) as sent: sections is None when absent."""
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested too deep for the JSON decoder: not a signup either
            data = None
        if not isinstance(data, dict):
            return None
        # A missing field is "" (enter your address); null, numbers, lists stay as they are.
        honeypot = bool(str(data.get(HONEYPOT_FIELD) or "").strip())
        return data.get("email", ""), honeypot, data.get("sections")
    if _undecodable_form():
        raise InvalidAddress(ENCODING_MESSAGE)
    form = request.form
    sections = form.getlist("sections") if "sections" in form else None
    return form.get("email", ""), bool(form.get(HONEYPOT_FIELD, "").strip()), sections


def _undecodable_form() -> bool:
    # Werkzeug silently drops urlencoded fields whose bytes are not UTF-8; read the cached
    # body first so that such a request is not taken for an empty field.
    if request.mimetype != "application/x-www-form-urlencoded":
        return False
    try:
        request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@bp.get("/subscribe")
def subscribe_page():
    """Send whoever opens ``/subscribe`` (from history, or reloading after a failed form post)
    to the signup page: 303 See Other to ``/`` (RFC 9110 §15.4.4), not 405."""
    return redirect(url_for("subscriptions.index"), 303)


@bp.post("/subscribe")
@csrf.exempt
@limiter.limit(_signup_limit)
def subscribe():
    """Take a signup (form field or JSON ``email``); same answer for every valid address."""
    try:
        signup = _read_signup()
    except InvalidAddress as exc:
        return _invalid(exc.message, "", 400)
    if signup is None:
        return _invalid('Send a JSON object like {"email": "name@example.com"}.', "", 400)
    raw, honeypot, chosen = signup
    typed = raw if isinstance(raw, str) else ""
    try:
        sections = parse_sections(chosen)
    except InvalidSections as exc:
        return _invalid(exc.message, typed, 400, error="invalid_sections")
    source = request.referrer or request.headers.get("Origin") or "web"
    try:
        service.request_subscription(
            db.session,
            raw,
            config=current_app.config,
            visitor=_visitor(source),
            honeypot=honeypot,
            sections=sections,
        )
    except InvalidAddress as exc:
        return _invalid(exc.message, typed, 422)
    if _wants_json():
        return jsonify(status="ok", message=THANKS_MESSAGE)
    return _thanks_page()


def _thanks_page() -> str:
    # The same page for everyone (nothing on it depends on the visitor or the address), so
    # it is rendered once per process and mount point: rendering was a sixth of a signup's
    # cost (see the signup benchmark). A session holding flashed messages, which base.html
    # shows, gets a fresh rendering.
    if session.get("_flashes"):
        return render_template("subscriptions/thanks.html", message=THANKS_MESSAGE)
    pages = current_app.extensions.setdefault("mailer.thanks_pages", {})
    page = pages.get(request.script_root)
    if page is None:
        page = render_template("subscriptions/thanks.html", message=THANKS_MESSAGE)
        pages[request.script_root] = page
    return page


def _invalid(message: str, typed: str, status: int, error: str = "invalid_email"):
    if _wants_json():
        return jsonify(status="error", error=error, message=message), status
    # Strip control characters (NUL included) before echoing the value into the form.
    typed = printable(typed[:320]) if isinstance(typed, str) else ""
    return render_template("subscriptions/index.html", email=typed, error=message), status


@bp.get("/confirm/<token>")
def confirm_page(token: str):
    """Show the masked address and a confirm button; changes nothing (GET and HEAD)."""
    page = service.inspect_confirm_token(db.session, _checked(token), current_app.config)
    return _confirm_response(page)


@bp.post("/confirm/<token>")
@csrf.exempt
@limiter.limit(_token_limit)
def confirm_submit(token: str):
    """Confirm the subscription, or send a fresh link when this one has expired."""
    visitor = _visitor("confirm page")
    page = service.confirm_by_token(db.session, _checked(token), current_app.config, visitor)
    return _confirm_response(page)


def _confirm_response(page: service.TokenPage):
    status = 410 if page.outcome == service.LEFT else 200
    valid_for = service.humanize_duration(int(current_app.config["MAILER_CONFIRM_MAX_AGE"]))
    html = render_template("subscriptions/confirm.html", page=page, valid_for=valid_for)
    return html, status


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    """Show the masked address, an unsubscribe button and the erase option; changes nothing."""
    page = service.inspect_unsubscribe_token(db.session, _checked(token), current_app.config)
    return render_template("subscriptions/unsubscribe.html", page=page)


def _is_one_click() -> bool:
    # RFC 8058 §3.1: the body (urlencoded or multipart) carries List-Unsubscribe=One-Click.
    form = request.form
    return form.get("List-Unsubscribe") == "One-Click" and form.get("action") != "erase"


def _verified_one_click() -> bool:
    # Mailbox providers send one-click POSTs for millions of people from a few IPs; a
    # per-IP limit would refuse real unsubscribes. Only correctly signed tokens pass, so
    # forgeries and the page's buttons keep the limit.
    token = (request.view_args or {}).get("token", "")
    if not _is_one_click() or len(token) > MAX_TOKEN_LENGTH:
        return False
    return service.unsubscribe_token_verifies(token, current_app.config)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
@limiter.limit(_token_limit, exempt_when=_verified_one_click)
def unsubscribe_submit(token: str):
    """Unsubscribe at once (button, or RFC 8058 one-click POST): 200, never a redirect.

    With ``action=erase`` (the page's second form) the subscriber's data is erased instead.
    A one-click POST with a link from an earlier subscription answers 200 and changes
    nothing (mailbox providers take any other status for a failure).
    """
    token = _checked(token)
    if request.form.get("action") == "erase":
        return _erase(token)
    one_click = _is_one_click()
    visitor = _visitor("one-click (RFC 8058)" if one_click else "unsubscribe page")
    try:
        page = service.unsubscribe_by_token(db.session, token, current_app.config, visitor)
    except StaleToken:
        if not one_click:
            raise
        return render_template("subscriptions/link_problem.html", problem="stale")
    return render_template("subscriptions/unsubscribed.html", page=page)


def _erase(token: str):
    if request.form.get("confirm") != "yes":
        page = service.inspect_unsubscribe_token(db.session, token, current_app.config)
        error = "Tick the box to confirm that your data should be erased."
        return render_template("subscriptions/unsubscribe.html", page=page, error=error), 400
    page = service.erase_by_token(db.session, token, current_app.config)
    return render_template("subscriptions/erased.html", page=page)


@bp.get("/preferences/<token>")
def preferences_page(token: str):
    """Show topics, the pause and unsubscribe-with-reason; changes nothing (GET and HEAD)."""
    page = service.inspect_preferences(db.session, _checked(token), current_app.config)
    return _preferences(page)


@bp.post("/preferences/<token>")
@csrf.exempt
@limiter.limit(_token_limit)
def preferences_submit(token: str):
    """Change topics (``action=topics``, ``sections``), pause, resume or unsubscribe."""
    form = {
        "action": request.form.get("action", ""),
        "sections": request.form.getlist("sections") if "sections" in request.form else None,
        "reason": request.form.get("reason", ""),
    }
    visitor = _visitor("preference page")
    try:
        page = service.change_preferences(
            db.session, _checked(token), current_app.config, visitor, form
        )
    except (InvalidSections, UnknownChoice) as exc:
        db.session.rollback()
        page = service.inspect_preferences(db.session, token, current_app.config)
        return _preferences(page, error=str(exc)), 400
    return _preferences(page)


def _preferences(page, error: str | None = None) -> str:
    return render_template(
        "subscriptions/preferences.html", page=page, reasons=service.REASONS, error=error
    )


def _checked(token: str) -> str:
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("the link is not valid")
    return token


@bp.errorhandler(InvalidToken)
def _invalid_token(_exc):
    return render_template("subscriptions/link_problem.html", problem="invalid"), 400


@bp.errorhandler(UnknownSubscriber)
def _unknown_subscriber(_exc):
    return render_template("subscriptions/link_problem.html", problem="unknown"), 404


@bp.errorhandler(StaleToken)
def _stale_token(_exc):
    return render_template("subscriptions/link_problem.html", problem="stale"), 410


@bp.app_errorhandler(429)
def _rate_limited(exc):
    """A readable 429 page (or JSON) for every rate-limited route of the app."""
    if _wants_json():
        return jsonify(status="error", error="rate_limited", message=str(exc.description)), 429
    return render_template("subscriptions/rate_limited.html", limit=exc.description), 429
