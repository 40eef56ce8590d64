"""Readable error pages for the whole app (400, 403, 404, 405, 413, 500), in the site's layout.

429 has its own page in the subscriptions room; a failed CSRF check is a 400 whose reason
(e.g. "The CSRF token is missing.") is shown so that an admin knows to reload the form.
"""

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

PAGE_CODES = (400, 403, 404, 405, 413, 500)


def register_error_pages(app: Flask) -> None:
    """Render ``templates/error.html`` (or JSON for JSON clients) for ``PAGE_CODES``."""
    for code in PAGE_CODES:
        app.register_error_handler(code, _error_page)


def _error_page(exc: HTTPException):
    code = getattr(exc, "code", 500) or 500
    if code == 413:
        exc.description = _too_large_reason()
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify(status="error", error=exc.name, message=exc.description), code
    return render_template("error.html", code=code, name=exc.name, reason=exc.description), code


def _too_large_reason() -> str:
    # Werkzeug's own text ("exceeds the capacity limit") does not say what the limit is.
    from .request_limits import route_limit

    return (
        f"The request is larger than this page accepts ({route_limit():,} bytes at most). "
        "Nothing was stored; send a smaller one."
    )
