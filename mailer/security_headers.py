"""Security headers on every answer of the app (issue 11): CSP, nosniff, framing, referrer, HSTS.

Blueprints may set stricter or route-specific values first (the admin's policy, the archive
page's, the dev mailbox's framed HTML part); these are defaults, added with ``setdefault``.
Flask runs a blueprint's ``after_request`` functions before the app's, so theirs win.
"""

from flask import Flask, Response, current_app

# No script anywhere: no page needs JavaScript, so any script would be an injection. Styles
# and images come from our static files only (no inline style attributes either).
SITE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The archive's web version of an issue: the stored mail HTML, whose CSS is inlined (style
# attributes, a <style> block) as mail clients need it, and whose images (the logo, feed
# pictures) are on other https hosts. Still no script.
ARCHIVE_ISSUE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# One year, the value browsers' preload lists ask for (RFC 6797 §6.1.1).
HSTS = "max-age=31536000"


def add_security_headers(response: Response) -> Response:
    """Add the default security headers to ``response`` (those not already set)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", SITE_CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if current_app.config["MAILER_BASE_URL"].startswith("https://"):
        # Only for an https site: on plain http (a loopback trial) browsers ignore it anyway,
        # and on https it keeps later visits from being downgraded.
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_security_headers(app: Flask) -> None:
    """Add :func:`add_security_headers` to every answer of ``app``."""
    app.after_request(add_security_headers)
