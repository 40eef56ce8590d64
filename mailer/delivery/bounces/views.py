"""``POST /webhooks/bounces/<provider>``: a thin view over :func:`.webhooks.handle_webhook`.

CSRF-exempt (providers post without a session; each request proves itself instead).
Unverified: 401 (basic auth missing or wrong, with a challenge) or 403, nothing changed;
verified but malformed: 400; an unknown provider: 404; a body over 1 MiB: 413.
"""

import logging

from flask import Blueprint, abort, current_app, jsonify, request

from ...extensions import db
from ..errors import BadPayload, Unverified
from .reports import MAX_REPORT_BYTES
from .webhooks import PROVIDERS, handle_webhook

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/bounces/<provider>")
def bounce_webhook(provider: str):
    """Take one provider's bounce and complaint events."""
    if provider not in PROVIDERS:
        abort(404)
    if (request.content_length or 0) > MAX_REPORT_BYTES:
        abort(413)
    body = request.get_data(cache=False)
    if len(body) > MAX_REPORT_BYTES:
        abort(413)
    try:
        result = handle_webhook(db.engine, current_app.config, provider, request.headers, body)
    except Unverified as exc:
        log.warning("bounce webhook refused: %s (from %s)", exc, request.remote_addr)
        if exc.challenge:
            response = jsonify(error="unauthorized")
            response.headers["WWW-Authenticate"] = 'Basic realm="bounce webhooks"'
            return response, 401
        return jsonify(error="forbidden"), 403
    except BadPayload as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(recorded=result.recorded, ignored=result.ignored, replayed=result.replayed)
