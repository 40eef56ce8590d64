"""Sign in and out. Failed sign-ins are rate-limited per client address."""

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..extensions import db, limiter
from .accounts import authenticate
from .blueprint import admin_path, bp
from .forms import LoginForm


def _login_limit() -> str:
    return current_app.config["MAILER_LOGIN_RATE_LIMIT"]


def _failed(response) -> bool:
    # Only failed attempts use up the allowance: a successful sign-in redirects.
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed)
def login():
    """Show the sign-in form; on a right address and password start the admin's session."""
    form = LoginForm()
    if form.validate_on_submit():
        admin = authenticate(db.session, form.email.data, form.password.data)
        if admin is not None:
            db.session.commit()
            session.clear()  # a fresh session at sign-in: no fixation of an earlier one
            login_user(admin)
            return redirect(admin_path(request.args.get("next"), url_for("admin.dashboard")))
        db.session.rollback()
        flash("Wrong e-mail address or password.", "error")
    elif request.method == "GET" and current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
def logout():
    """End the session (POST with the CSRF token, so no other site can sign an admin out)."""
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("admin.login"))
