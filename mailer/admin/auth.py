"""Sign in and out. Failed sign-ins are throttled per account and per client IP, in the
database (``throttle``)."""

import time

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from ..extensions import db
from . import throttle
from .accounts import authenticate, end_sessions
from .blueprint import SIGNED_IN_AT, admin_path, bp
from .forms import LoginForm


def _throttled(email: str) -> Response | None:
    wait = throttle.retry_after(db.session, current_app.config, email, request.remote_addr or "")
    if wait is None:
        return None
    page = render_template("subscriptions/rate_limited.html", limit="failed sign-ins")
    return Response(page, status=429, headers={"Retry-After": str(wait)})


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; on a right address and password start the admin's session.

    Failed attempts are counted in the database per account and per client IP
    (:mod:`mailer.admin.throttle`); past a limit every attempt is answered 429.
    """
    form = LoginForm()
    if form.validate_on_submit():
        if (refused := _throttled(form.email.data)) is not None:
            return refused
        admin = authenticate(db.session, form.email.data, form.password.data)
        if admin is not None:
            db.session.commit()
            _start_session(admin)
            return redirect(admin_path(request.args.get("next"), url_for("admin.dashboard")))
        db.session.rollback()
        config = current_app.config
        throttle.record_failure(db.session, config, form.email.data, request.remote_addr or "")
        db.session.commit()
        flash("Wrong e-mail address or password.", "error")
    elif request.method == "GET" and current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    return render_template("admin/login.html", form=form)


def _start_session(admin) -> None:
    session.clear()  # a fresh session at sign-in: no fixation of an earlier one
    session.permanent = True  # the cookie expires with PERMANENT_SESSION_LIFETIME
    session[SIGNED_IN_AT] = int(time.time())
    login_user(admin)


@bp.post("/logout")
def logout():
    """End the session (POST with the CSRF token, so no other site can sign an admin out).

    Every session of this admin ends, a copy of the cookie taken before included: the
    session token they carry is replaced.
    """
    if current_user.is_authenticated:
        end_sessions(current_user)
        db.session.commit()
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("admin.login"))
