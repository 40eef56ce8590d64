"""The admin blueprint: sign-in required on every route but the login page, security headers.

The page modules (``auth``, ``dashboard``, ``issues`` ...) add their routes to :data:`bp`;
``mailer.admin.views`` imports them so that registering ``views.bp`` brings every page.
"""

import hmac
import time

from flask import Blueprint, Response, current_app, jsonify, redirect, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask_login import current_user

from ..extensions import db, login_manager
from ..models import MAX_DATABASE_ID, AdminUser

bp = Blueprint("admin", __name__)

# Endpoints a signed-out visitor may reach (the sign-in form itself).
PUBLIC_ENDPOINTS = frozenset({"admin.login"})

# No script at all: the admin works without JavaScript, so any script is an injection.
ADMIN_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.record_once
def _setup_login(state: BlueprintSetupState) -> None:
    # Bound when the blueprint is first registered, not when extensions.py is imported.
    login_manager.user_loader(_load_admin)
    login_manager.unauthorized_handler(_unauthorized)
    login_manager.login_view = "admin.login"


# The session key holding the sign-in time (UNIX seconds): sessions end
# MAILER_ADMIN_SESSION_HOURS after sign-in, however active they were.
SIGNED_IN_AT = "admin_signed_in_at"


def _load_admin(user_id: str) -> AdminUser | None:
    # The stored id is "ID:SESSION_TOKEN" (AdminUser.get_id): a token replaced since (sign-out,
    # new password) or an old-style id without one ends the session, as does its age.
    admin_id, _, token = user_id.partition(":")
    if not (admin_id.isascii() and admin_id.isdigit()) or not token or _session_expired():
        return None
    admin = db.session.get(AdminUser, int(admin_id))
    if admin is None or admin.session_token is None:
        return None
    return admin if hmac.compare_digest(admin.session_token, token) else None


def _session_expired() -> bool:
    started = session.get(SIGNED_IN_AT)
    if not isinstance(started, int | float):
        return True
    hours = current_app.config["MAILER_ADMIN_SESSION_HOURS"]
    return not 0 <= time.time() - started < hours * 3600


def id_arg(name: str, limit: int = MAX_DATABASE_ID) -> int | None:
    """The query argument ``name`` as a page cursor (``?after=``: an id or a number), or None.

    Args:
        limit: the largest value the column holds: ``mailer.MAX_DATABASE_ID`` for ids
            (BIGINT), ``mailer.MAX_ISSUE_NUMBER`` for issue numbers (INTEGER).

    None unless it is ASCII digits within ``limit``; a larger number, or digits such as "²"
    that ``str.isdigit`` accepts, would make the database query fail instead of just
    showing the first page.
    """
    value = request.args.get(name, "")
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number <= limit else None


def wants_json() -> bool:
    """Return True when the client prefers JSON over HTML (``Accept: application/json``)."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" or (request.is_json and best != "text/html")


def _unauthorized() -> Response:
    if wants_json():
        response = jsonify(error="sign-in required", login=url_for("admin.login"))
        response.status_code = 401
        return response
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


def admin_path(target: str | None, default: str) -> str:
    """Return ``target`` when it is a path inside /admin, else ``default``.

    Redirect targets taken from a request (``next``, ``back``) go through here, so that no
    link can send a signed-in admin to another site (an open redirect).
    """
    if target and target.startswith("/admin") and "\\" not in target:
        return target
    return default


@bp.before_request
def _require_admin() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return _unauthorized()


@bp.after_request
def _security_headers(response: Response) -> Response:
    # setdefault: the issue preview route sets a stricter policy of its own.
    response.headers.setdefault("Content-Security-Policy", ADMIN_CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Admin pages show personal data: keep them out of shared and browser caches.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
