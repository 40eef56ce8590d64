"""Fetch a feed document: HTTP(S) with conditional GET, a timeout and a size cap, or a local file.

Only the standard library's urllib is used, with an opener that knows http and https alone
(no ftp:, file: or data: through a redirect).
"""

import http.client
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import FetchError

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
) -> Fetched:
    """Fetch ``location``: an http(s) URL, or else a local file path.

    Args:
        location: the Feed's URL or local file path.
        etag, last_modified: validators from the previous fetch, sent as If-None-Match and
            If-Modified-Since (RFC 9110 §13.1.2, §13.1.3); ignored for local files.
        timeout: seconds allowed for connecting, for each read, and for the whole body.
        max_bytes: largest body accepted, in bytes (after gzip/deflate decoding).
        user_agent: the User-Agent header.

    Returns:
        A :class:`Fetched`; ``not_modified=True`` when the server answered 304.

    Raises:
        FetchError: with a message for a person, for a network error, a timeout, an HTTP status
            other than 2xx/304, a body over ``max_bytes``, or a missing/unreadable file.
    """
    if not is_web_url(location):
        return _read_local(Path(location), max_bytes)
    request = urllib.request.Request(location, headers=_request_headers(etag, last_modified))
    request.add_header("User-Agent", user_agent)
    try:
        with _opener().open(request, timeout=timeout) as response:
            body = _read_body(response, timeout=timeout, max_bytes=max_bytes)
            return _fetched(response, body)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 304:
            return Fetched(b"", location, None, etag, last_modified, not_modified=True)
        raise FetchError(f"HTTP {exc.code} {exc.reason} from {location}") from exc
    except urllib.error.URLError as exc:
        raise FetchError(f"could not fetch {location}: {_reason(exc.reason)}") from exc
    except TimeoutError as exc:
        raise FetchError(f"timed out after {timeout:g} s fetching {location}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise FetchError(f"could not fetch {location}: {_reason(exc)}") from exc


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
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        _WebOnlyRedirects(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _read_body(response, *, timeout: float, max_bytes: int) -> bytes:
    """Read the body in chunks, enforcing the size cap and an overall deadline."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"the feed is larger than {max_bytes} bytes ({declared} declared)")
    decoder = _decoder(response.headers.get("Content-Encoding"))
    deadline = time.monotonic() + timeout
    parts: list[bytes] = []
    size = 0
    while chunk := response.read(CHUNK):
        data = decoder.decompress(chunk, max_bytes + 1 - size) if decoder else chunk
        size += len(data)
        parts.append(data)
        if size > max_bytes:
            raise FetchError(f"the feed is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError
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


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason) or type(reason).__name__
