"""Issue 11, item 7: security headers on every page, through the real HTTP server."""

import re
import urllib.error
import urllib.request

import pytest

from mailer.security_headers import SITE_CSP
from tests.support.signup import LiveServer

PAGES = ["/", "/archive", "/admin/login", "/healthz", "/no-such-page", "/confirm/forged"]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


@pytest.fixture
def served(app):
    with LiveServer(app) as server:
        yield server.url


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_security_headers(served, path):
    _status, headers, body = _get(served + path)
    csp = headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] in {"strict-origin-when-cross-origin", "no-referrer"}
    # MAILER_BASE_URL is https in TestConfig.
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    # The pages need nothing the policy forbids: no script, no inline style.
    assert "<script" not in body.lower()
    assert not re.search(r"<[^>]+\sstyle=", body), "inline style attribute"
    assert "<style" not in body.lower()


def test_no_hsts_for_a_plain_http_base_url(app):
    app.config["MAILER_BASE_URL"] = "http://127.0.0.1:5000"
    with LiveServer(app) as server:
        _status, headers, _body = _get(server.url + "/healthz")
    assert "Strict-Transport-Security" not in headers
    assert headers["Content-Security-Policy"] == SITE_CSP
