"""Fetch a feed document: HTTP(S) with conditional GET, a deadline and a size cap, or a local file.

Only the standard library's urllib is used, with an opener that knows http and https alone
(no ftp:, file: or data: through a redirect), no proxy (a proxy would connect for us, past the
address check), and connections made by :mod:`.netguard`: to public addresses only unless
``allow_private``, and within one deadline for the whole fetch. Error messages never repeat
what a server sent (a status line's reason, a banner), only what we saw of it.
"""

import base64
import http
import http.client
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from . import netguard
from .errors import FetchError
from .netguard import Deadline

USER_AGENT = "japan-weekly-mailer/0.1 (feed fetcher; +{base_url})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.8, */*;q=0.1"
)
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    """One fetched document.

    ``url`` is the final URL after redirects (None for a local file, which has no URL);
    ``content_type`` the Content-Type header or None; ``etag``/``last_modified`` the validators
    for the next conditional GET; ``not_modified`` is True for a 304, when ``body`` is b"".
    """

    body: bytes
    url: str | None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


def masked_url(location: str) -> str:
    """``location`` with the password of its user info shown as ``***`` (for pages and logs).

    ``https://user:secret@host/feed`` becomes ``https://user:***@host/feed``; a URL without
    a password, or a local path, is returned as it is.
    """
    if not is_web_url(location):
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _split_credentials(location: str) -> tuple[str, str | None]:
    """The URL without its user info, and that user info as HTTP Basic credentials (RFC 7617).

    urllib would otherwise take ``user:password@host`` for the host name.
    """
    parts = urlsplit(location)
    if parts.username is None:
        return location, None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    host = parts.netloc.rpartition("@")[2]
    plain = urlunsplit(parts._replace(netloc=host))
    return plain, "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def is_web_url(location: str) -> bool:
    """True when ``location`` starts with http:// or https:// (any case); else a local path."""
    return location.lower().startswith(("http://", "https://"))


def fetch(
    location: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 20.0,
    max_bytes: int = 10 * 1024 * 1024,
    user_agent: str = USER_AGENT,
    allow_private: bool = False,
) -> Fetched:
    """Fetch ``location``: an http(s) URL, or else a local file path.

    Args:
        location: the Feed's URL or local file path.
        etag, last_modified: validators from the previous fetch, sent as If-None-Match and
            If-Modified-Since (RFC 9110 §13.1.2, §13.1.3); ignored for local files.
        timeout: seconds allowed for the whole fetch: DNS aside, connecting, the headers and
            the body, over every redirect (a deadline, not a per-read timeout).
        max_bytes: largest body accepted, in bytes (after gzip/deflate decoding).
        user_agent: the User-Agent header.
        allow_private: also fetch from loopback, private, link-local and reserved addresses
            (MAILER_FEED_ALLOW_PRIVATE); refused by default, redirects included.

    Returns:
        A :class:`Fetched`; ``not_modified=True`` when the server answered 304.

    Raises:
        FetchError: with a message for a person, for a network error, the deadline, an HTTP
            status other than 2xx/304, a body over ``max_bytes``, a refused address, or a
            missing/unreadable file.
    """
    if not is_web_url(location):
        return _read_local(Path(location), max_bytes)
    shown = masked_url(location)  # error messages end up on admin pages and in logs
    target, authorization = _split_credentials(location)
    request = urllib.request.Request(target, headers=_request_headers(etag, last_modified))
    request.add_header("User-Agent", user_agent)
    if authorization:
        # Unredirected: the credentials go to the feed's own host only, never to a redirect.
        request.add_unredirected_header("Authorization", authorization)
    deadline = Deadline(timeout)
    try:
        with _opener(deadline, allow_private).open(request, timeout=timeout) as response:
            body = _read_body(response, max_bytes=max_bytes)
            if deadline.passed():
                # The timer shut the socket down: http.client takes that for the end of the
                # answer, so what was read may be cut short anywhere.
                raise TimeoutError
            return _fetched(response, body)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 304:
            return Fetched(b"", location, None, etag, last_modified, not_modified=True)
        raise FetchError(f"HTTP {exc.code} {_phrase(exc.code)} from {shown}") from exc
    except FetchError:
        raise
    except Exception as exc:
        raise _failure(exc, deadline, shown) from exc
    finally:
        deadline.cancel()


def _failure(exc: Exception, deadline: Deadline, location: str) -> FetchError:
    # Whatever broke once the deadline passed (a shut-down socket, a half-read line) is the
    # deadline; otherwise a short description that does not echo the server's bytes.
    if deadline.passed() or isinstance(exc, TimeoutError):
        return FetchError(f"timed out after {deadline.seconds:g} s fetching {location}")
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, FetchError):
        return reason
    return FetchError(f"could not fetch {location}: {_describe(reason)}")


def _describe(error: object) -> str:
    if isinstance(error, http.client.HTTPException | ValueError):
        return "the server's answer is not valid HTTP"  # e.g. an SSH or SMTP banner
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return type(error).__name__


def _phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "(unknown status)"


def _request_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


class _WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http and https only (urllib would also follow one to ftp:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib hook
        if not is_web_url(newurl):
            raise FetchError(f"redirect to {masked_url(newurl)} refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _GuardedHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose socket comes from :func:`netguard.connect`."""

    deadline: Deadline
    allow_private: bool

    def connect(self) -> None:  # noqa: D102 - http.client hook
        self.sock = netguard.connect(
            self.host, self.port, self.deadline, allow_private=self.allow_private
        )


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPSConnection whose TCP socket comes from :func:`netguard.connect`."""

    deadline: Deadline
    allow_private: bool

    def connect(self) -> None:  # noqa: D102 - http.client hook
        sock = netguard.connect(
            self.host, self.port, self.deadline, allow_private=self.allow_private
        )
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _connection_class(base: type, deadline: Deadline, allow_private: bool) -> type:
    return type(base.__name__, (base,), {"deadline": deadline, "allow_private": allow_private})


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connection: type):
        super().__init__()
        self.connection = connection

    def http_open(self, req):  # noqa: D102 - urllib hook
        return self.do_open(self.connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connection: type):
        super().__init__()
        self.connection = connection

    def https_open(self, req):  # noqa: D102 - urllib hook
        return self.do_open(self.connection, req, context=self._context)


def _opener(deadline: Deadline, allow_private: bool) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.UnknownHandler(),
        _HTTPHandler(_connection_class(_GuardedHTTPConnection, deadline, allow_private)),
        _HTTPSHandler(_connection_class(_GuardedHTTPSConnection, deadline, allow_private)),
        urllib.request.HTTPDefaultErrorHandler(),
        _WebOnlyRedirects(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _read_body(response, *, max_bytes: int) -> bytes:
    """Read the body in chunks, enforcing the size cap (the deadline is the socket's)."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"the feed is larger than {max_bytes} bytes ({declared} declared)")
    decoder = _decoder(response.headers.get("Content-Encoding"))
    parts: list[bytes] = []
    size = 0
    while chunk := response.read(CHUNK):
        data = decoder.decompress(chunk, max_bytes + 1 - size) if decoder else chunk
        size += len(data)
        parts.append(data)
        if size > max_bytes:
            raise FetchError(f"the feed is larger than {max_bytes} bytes")
    if decoder:
        parts.append(decoder.flush())
        if sum(map(len, parts)) > max_bytes:
            raise FetchError(f"the feed is larger than {max_bytes} bytes")
    return b"".join(parts)


def _decoder(content_encoding: str | None):
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    if encoding == "identity":
        return None
    raise FetchError(f"unsupported Content-Encoding {content_encoding!r}")


def _fetched(response, body: bytes) -> Fetched:
    headers = response.headers
    return Fetched(
        body=body,
        url=response.geturl(),
        content_type=headers.get("Content-Type"),
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
    )


def _read_local(path: Path, max_bytes: int) -> Fetched:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FetchError(f"the feed file {path} is larger than {max_bytes} bytes")
        body = path.read_bytes()
    except OSError as exc:
        raise FetchError(f"could not read {path}: {exc.strerror or exc}") from exc
    return Fetched(body=body, url=None, content_type=None, etag=None, last_modified=None)
