"""Issue 11, item 4 and the login throttle of item 7, through the real HTTP server.

A cookie copied before sign-out, or before ``create-admin --reset-password``, no longer opens
/admin; sessions end MAILER_ADMIN_SESSION_HOURS after sign-in. Failed sign-ins are counted
in the database, so two app processes (two werkzeug servers, each with its own memory, as
two gunicorn workers) share one count; the count is per account and per IP.
"""

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from mailer import create_app
from mailer.admin.blueprint import SIGNED_IN_AT
from mailer.extensions import db
from tests.support.admin import ADMIN_EMAIL, ADMIN_PASSWORD, add_admin
from tests.support.signup import LiveServer

_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base: str):
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(self, path: str, data: dict | None = None, cookie: str | None = None):
        """GET (or POST ``data``) ``path`` with this browser's cookies, or ``cookie``."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        if cookie is not None:
            req.add_header("Cookie", cookie)
        opener = urllib.request.build_opener(_NoRedirect()) if cookie is not None else self.opener
        try:
            with opener.open(req, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def token(self, path: str = "/admin/login") -> str:
        """The CSRF token of the form on ``path``."""
        _status, page = self.request(path)
        return _TOKEN.search(page).group(1)

    def sign_in(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> int:
        """Sign in through the form; return the status code."""
        data = {"csrf_token": self.token(), "email": email, "password": password}
        return self.request("/admin/login", data)[0]

    def cookie(self) -> str:
        """This browser's cookies as a Cookie header value."""
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


@pytest.fixture
def served(app):
    add_admin(app)
    with LiveServer(app) as server:
        yield server.url


def test_a_cookie_copied_before_logout_no_longer_opens_the_admin(served):
    browser = Browser(served)
    assert browser.sign_in() == 302
    stolen = browser.cookie()
    assert browser.request("/admin/", cookie=stolen)[0] == 200
    assert (
        browser.request("/admin/logout", {"csrf_token": browser.token("/admin/settings")})[0] == 302
    )
    assert browser.request("/admin/", cookie=stolen)[0] == 302  # to the sign-in page


def test_a_password_reset_ends_every_session(app, served):
    browser = Browser(served)
    assert browser.sign_in() == 302
    stolen = browser.cookie()
    result = app.test_cli_runner().invoke(
        args=["create-admin", ADMIN_EMAIL, "--reset-password"], input="a brand new password\n"
    )
    assert result.exit_code == 0, result.output
    assert browser.request("/admin/", cookie=stolen)[0] == 302
    assert browser.request("/admin/")[0] == 302  # the admin's own browser too
    assert browser.sign_in(password="a brand new password") == 302
    assert browser.request("/admin/")[0] == 200


def test_sessions_end_after_the_configured_hours(app, served):
    browser = Browser(served)
    assert browser.sign_in() == 302
    assert browser.request("/admin/")[0] == 200
    # The sign-in time is kept in the signed session; make this one 13 hours old.
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = next(c for c in browser.jar if c.name == app.config["SESSION_COOKIE_NAME"])
    data = serializer.loads(cookie.value)
    data[SIGNED_IN_AT] = int(time.time()) - 13 * 3600
    cookie.value = serializer.dumps(data)
    assert app.config["MAILER_ADMIN_SESSION_HOURS"] == 12
    assert browser.request("/admin/")[0] == 302


@pytest.fixture
def two_processes(app_config):
    """Two apps on one database, each served by its own werkzeug server (own memory)."""
    app_config["MAILER_LOGIN_ACCOUNT_RATE_LIMIT"] = "5/minute"
    app_config["MAILER_LOGIN_RATE_LIMIT"] = "20/minute"
    apps = [create_app(app_config) for _ in range(2)]
    with apps[0].app_context():
        if db.engine.dialect.name == "sqlite":
            db.create_all()
    add_admin(apps[0])
    add_admin(apps[0], "second@example.com")
    with LiveServer(apps[0]) as one, LiveServer(apps[1]) as two:
        yield one.url, two.url
    for application in apps:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def test_failed_sign_ins_are_counted_across_processes(two_processes):
    browsers = [Browser(url) for url in two_processes]
    codes = [browsers[n % 2].sign_in(password="wrong password!") for n in range(6)]
    assert codes == [200] * 5 + [429]
    # The right password waits too, in both processes.
    assert [b.sign_in() for b in browsers] == [429, 429]


def test_one_account_locked_leaves_the_other_admins_in(two_processes):
    browser = Browser(two_processes[0])
    for _ in range(5):
        assert browser.sign_in(password="wrong password!") == 200
    assert browser.sign_in() == 429
    # Same client IP (a NAT neighbour's), another admin: still signs in.
    assert browser.sign_in("second@example.com") == 302


def test_one_ip_is_limited_across_accounts(app_config, two_processes):
    browser = Browser(two_processes[1])
    codes = [browser.sign_in(f"guess{n}@example.com", "wrong password!") for n in range(21)]
    assert codes[:20] == [200] * 20 and codes[20] == 429
