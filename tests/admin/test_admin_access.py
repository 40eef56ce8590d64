"""Admin access: sign-in required everywhere, CSRF, login rate limit, headers, create-admin."""

import re

import pytest
from werkzeug.routing import AnyConverter, IntegerConverter

from mailer.admin.accounts import find_admin
from mailer.extensions import db
from mailer.models import AdminUser, Subscriber
from tests.support.admin import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    add_admin,
    csrf_token,
    sign_in,
    signed_in_client,
)


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def admin_urls(app) -> list[tuple[str, str]]:
    """(method, URL) for every admin route but the login page, with sample arguments."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint == "admin.login":
            continue
        values = {}
        for name, converter in rule._converters.items():
            if isinstance(converter, AnyConverter):
                values[name] = sorted(converter.items)[0]
            elif isinstance(converter, IntegerConverter):
                values[name] = 1
            else:
                values[name] = "x"
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **values)
        found += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_admin_has_every_page(app):
    paths = {url for _method, url in admin_urls(app)}
    for page in (
        "/admin/",
        "/admin/next",
        "/admin/issues",
        "/admin/items",
        "/admin/feeds",
        "/admin/subscribers",
        "/admin/settings",
        "/admin/subscribers/export.csv",
    ):
        assert page in paths


def test_every_admin_route_redirects_a_signed_out_visitor_to_login(app, client):
    token = csrf_token(client)  # a valid token: the refusal must come from the sign-in check
    urls = admin_urls(app)
    assert len(urls) >= 25
    for method, url in urls:
        response = client.open(url, method=method, data={"csrf_token": token})
        assert response.status_code == 302, (method, url, response.status_code)
        assert response.location.startswith("/admin/login?next="), (method, url)


def test_every_admin_route_answers_401_json_to_a_signed_out_json_client(app, client):
    token = csrf_token(client)
    for method, url in admin_urls(app):
        response = client.open(
            url, method=method, data={"csrf_token": token}, headers={"Accept": "application/json"}
        )
        assert response.status_code == 401, (method, url)
        assert response.get_json()["error"] == "sign-in required"


def test_signed_out_post_changes_nothing(app, client, session):
    add_admin(app)
    token = csrf_token(client)
    response = client.post(
        "/admin/subscribers/import", data={"csrf_token": token, "consent": "consented"}
    )
    assert response.status_code == 302
    assert response.location.startswith("/admin/login?next=")
    assert session.query(AdminUser).count() == 1
    assert session.query(Subscriber).count() == 0


def test_post_without_csrf_token_is_refused_with_400(admin_client):
    response = admin_client.post("/admin/issues/1/pause", data={})
    assert response.status_code == 400
    assert b"CSRF" in response.data


def test_login_without_csrf_token_is_refused(app, client):
    add_admin(app)
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    with client.session_transaction() as stored:
        assert "_user_id" not in stored


def test_wrong_password_gives_no_session(app, client):
    add_admin(app)
    response = sign_in(client, password="wrong password, sorry")
    assert response.status_code == 200
    assert "Wrong e-mail address or password." in response.get_data(as_text=True)
    with client.session_transaction() as stored:
        assert "_user_id" not in stored
    assert client.get("/admin/").status_code == 302


def test_unknown_address_gives_the_same_answer(app, client):
    add_admin(app)
    response = sign_in(client, email="nobody@example.com")
    assert response.status_code == 200
    assert "Wrong e-mail address or password." in response.get_data(as_text=True)


@pytest.mark.parametrize("limit, allowed", [("3/minute", 3)])
def test_repeated_wrong_passwords_are_rate_limited(app_config, limit, allowed, request):
    app_config["MAILER_LOGIN_RATE_LIMIT"] = limit
    app = request.getfixturevalue("app")
    client = app.test_client()
    add_admin(app)
    for _ in range(allowed):
        assert sign_in(client, password="wrong password!").status_code == 200
    assert sign_in(client, password="wrong password!").status_code == 429
    # Even the right password waits now: the limit is per client address.
    assert sign_in(client).status_code == 429
    with client.session_transaction() as stored:
        assert "_user_id" not in stored


def test_successful_sign_ins_do_not_use_up_the_limit(app_config, request):
    app_config["MAILER_LOGIN_RATE_LIMIT"] = "2/minute"
    app = request.getfixturevalue("app")
    client = app.test_client()
    add_admin(app)
    for _ in range(4):
        assert sign_in(client).status_code == 302
        client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/settings")})


def test_sign_in_opens_the_admin_and_stamps_last_login(app, client, session):
    add_admin(app)
    response = sign_in(client)
    assert response.status_code == 302
    assert response.location == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert find_admin(session, ADMIN_EMAIL).last_login_at is not None


def test_sign_in_returns_to_the_page_asked_for_but_never_elsewhere(app, client):
    add_admin(app)
    first = client.get("/admin/subscribers?status=pending")
    assert first.location == "/admin/login?next=/admin/subscribers?status%3Dpending"
    token = csrf_token(client)
    form = {"csrf_token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    response = client.post("/admin/login?next=/admin/subscribers?status%3Dpending", data=form)
    assert response.location == "/admin/subscribers?status=pending"
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/settings")})
    token = csrf_token(client)
    form["csrf_token"] = token
    response = client.post("/admin/login?next=https://evil.example.net/", data=form)
    assert response.location == "/admin/"


@pytest.mark.nodb
@pytest.mark.parametrize("base_url, secure", [("https://n.example", True), ("http://n", False)])
def test_session_cookie_is_secure_when_the_base_url_is_https(monkeypatch, base_url, secure):
    monkeypatch.setenv("MAILER_BASE_URL", base_url)
    from config import Config

    assert Config().SESSION_COOKIE_SECURE is secure


def test_session_cookie_is_httponly_lax_and_secure(app_config, request):
    app_config["SESSION_COOKIE_SECURE"] = True  # what Config sets for an https base URL
    app = request.getfixturevalue("app")
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"  # the cookie jar keeps Secure for https
    add_admin(app)
    response = sign_in(client)
    assert response.status_code == 302
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_logout_ends_the_session(admin_client):
    token = csrf_token(admin_client, "/admin/settings")
    assert admin_client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert admin_client.get("/admin/").status_code == 302


def test_admin_pages_send_security_headers(app, admin_client):
    # The login page as a signed-out visitor sees it (a signed-in admin is redirected).
    visitor = app.test_client()
    for client, path in (
        (admin_client, "/admin/"),
        (visitor, "/admin/login"),
        (admin_client, "/admin/settings"),
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"


def test_admin_html_has_no_script_and_no_inline_style(admin_client):
    for path in ("/admin/", "/admin/subscribers", "/admin/feeds", "/admin/items/new"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert "<script" not in html
        assert not re.search(r"\sstyle=", html), path


# --- create-admin ---------------------------------------------------------------------------


def test_create_admin_reads_the_password_from_stdin(app, runner, session):
    result = runner.invoke(args=["create-admin", "Boss@Example.com"], input="a long passphrase\n")
    assert result.exit_code == 0, result.output
    assert "boss@example.com" in result.output
    admin = find_admin(session, "boss@example.com")
    assert admin is not None
    assert admin.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert "a long passphrase" not in admin.password_hash
    client = app.test_client()
    assert sign_in(client, "boss@example.com", "a long passphrase").status_code == 302


def test_create_admin_has_no_password_argument(runner):
    result = runner.invoke(args=["create-admin", "x@example.com", "--password", "secret12345678"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_create_admin_refuses_a_short_password_and_a_duplicate(runner, session):
    short = runner.invoke(args=["create-admin", "x@example.com"], input="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    assert session.query(AdminUser).count() == 0
    assert (
        runner.invoke(args=["create-admin", "x@example.com"], input="long enough pw\n").exit_code
        == 0
    )
    again = runner.invoke(args=["create-admin", "X@example.com"], input="long enough pw\n")
    assert again.exit_code == 1
    assert "exists already" in again.output
    assert session.query(AdminUser).count() == 1


def test_create_admin_reset_password(app, runner):
    runner.invoke(args=["create-admin", "x@example.com"], input="first password!\n")
    result = runner.invoke(
        args=["create-admin", "x@example.com", "--reset-password"], input="second password!\n"
    )
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert sign_in(client, "x@example.com", "first password!").status_code == 200
    assert sign_in(client, "x@example.com", "second password!").status_code == 302


def test_create_admin_refuses_an_invalid_address(runner):
    result = runner.invoke(args=["create-admin", "not an address"], input="long enough pw\n")
    assert result.exit_code == 1
    assert "not a valid e-mail address" in result.output


def test_user_loader_ignores_a_forged_id(app, client):
    with client.session_transaction() as stored:
        stored["_user_id"] = "not-a-number"
    assert client.get("/admin/").status_code == 302
    with app.app_context():
        assert db.session.query(AdminUser).count() == 0
