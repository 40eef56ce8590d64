"""Request body limits: every route reads at most ``MAILER_MAX_REQUEST_BYTES``, the admin's
CSV import at most ``MAILER_MAX_IMPORT_BYTES``; a larger body gets 413 before it is read.

Two checks, because a body may come with or without a Content-Length:

- a declared Content-Length over the route's limit is answered with 413 at once, before
  anything (CSRF check, form parsing, a view) reads the body;
- a body without one (``Transfer-Encoding: chunked``, which the server de-chunks and marks
  ``wsgi.input_terminated``) is read here up to one byte past the limit: more is a 413, less
  is handed on as a body of known length. Werkzeug's own ``max_content_length`` check would
  not do: for such a stream it stops reading at the limit and returns the truncated body
  without an error (``LimitedStream.readall``), so a view would act on part of a request.
"""

import io

from flask import Flask, abort, current_app, request

# Endpoints with a limit of their own: the CSV upload of many addresses.
IMPORT_ENDPOINTS = frozenset({"admin.subscriber_import"})


def route_limit() -> int:
    """The largest body, in bytes, the current request's route accepts."""
    config = current_app.config
    if request.endpoint in IMPORT_ENDPOINTS:
        return int(config["MAILER_MAX_IMPORT_BYTES"])
    return int(config["MAILER_MAX_REQUEST_BYTES"])


def _limit_body() -> None:
    limit = route_limit()
    request.max_content_length = limit
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            abort(413)
        return
    environ = request.environ
    if "wsgi.input_terminated" in environ:
        _buffer_streamed_body(environ, limit)


def _buffer_streamed_body(environ: dict, limit: int) -> None:
    # Runs before anything touched request.stream (a cached property), so the request reads
    # the buffered copy; at most limit + 1 bytes are ever held.
    stream = environ["wsgi.input"]
    parts, size = [], 0
    while size <= limit and (chunk := stream.read(min(65536, limit + 1 - size))):
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        abort(413)
    body = b"".join(parts)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    del environ["wsgi.input_terminated"]


def init_request_limits(app: Flask) -> None:
    """Register the limit check as the app's first ``before_request`` function.

    It must run before Flask-WTF's CSRF check (registered by ``csrf.init_app``), which reads
    the form and so the whole body; call this before binding the extensions.
    """
    app.before_request_funcs.setdefault(None, []).insert(0, _limit_body)
