"""Parse feed bytes with feedparser into plain, sanitized data (no database here).

Encoding: feedparser picks the charset from the Content-Type header and the XML declaration
(RFC 7303 §3) and, when those fail, asks chardet; a local file or a response without a
Content-Type is read as ``application/xml`` so that an undeclared EUC-JP or Shift_JIS file
falls through to chardet instead of being read as ISO-8859-1.

Relative links: feedparser resolves them against xml:base and the document URL (passed as
the Content-Location response header, as its documentation asks). A local file has no URL, so
its own ``rel="self"`` link (where the feed says it lives) is the base when it is absolute.
"""

import calendar
import html
import re
import xml.sax
from dataclasses import dataclass
from datetime import UTC, datetime

from .sanitize import absolute_http_url, clean_html, excerpt, plain_text

DEFAULT_CONTENT_TYPE = "application/xml"
# Sanitized summaries longer than this (in characters) become a plain-text excerpt, so that a
# full article in content:encoded does not swell the digest.
MAX_SUMMARY_CHARS = 3000
EXCERPT_CHARS = 600
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Entry fields for job openings, taken from categories as <category domain="location">Osaka
# </category> or as "location: Osaka" (see _opening_fields), or from WP Job Manager elements.
FIELD_NAMES = {
    "company": "company",
    "location": "location",
    "job_type": "job_type",
    "job-type": "job_type",
    "jobtype": "job_type",
    "type": "job_type",
    "employment": "job_type",
    "pay": "pay",
    "salary": "pay",
    "wage": "pay",
    "section": "section",
}
WP_JOB_MANAGER_KEYS = {
    "job_listing_company": "company",
    "job_listing_location": "location",
    "job_listing_job_type": "job_type",
    "job_listing_salary": "pay",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedEntry:
    """One feed entry. ``link`` is an absolute http(s) URI or None; ``published_at`` is the date
    the entry claims (aware UTC) or None; ``section``/``company``/``location``/``job_type`` come
    from categories (see :func:`parse_feed`); strings are stripped and free of control chars."""

    guid: str | None
    title: str
    link: str | None
    summary_html: str
    author: str | None
    published_at: datetime | None
    section: str | None = None
    company: str | None = None
    location: str | None = None
    job_type: str | None = None
    pay: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed document: feed title and site link, entries, and what feedparser disliked.

    ``problem`` describes feedparser's "bozo" exception (None for a clean document);
    ``entry_count`` is the number of entries feedparser found (= ``len(entries)``).
    """

    version: str
    title: str | None
    site_url: str | None
    encoding: str
    problem: str | None
    entries: tuple[ParsedEntry, ...]

    @property
    def entry_count(self) -> int:
        """How many entries the document holds."""
        return len(self.entries)

    @property
    def kind(self) -> str:
        """The feed format for people, e.g. "RSS 2.0", or "unknown"."""
        from feedparser.api import SUPPORTED_VERSIONS  # noqa: PLC0415 - see parse_feed

        return SUPPORTED_VERSIONS.get(self.version, self.version or "unknown")

    def document_error(self) -> str | None:
        """Why this document gives nothing, or None: not a feed at all, or broken and empty.

        A well-formed feed with no entries is not an error (a quiet feed); a "bozo" document
        with entries is not one either (the entries are kept, ``problem`` is a warning).
        """
        if self.entries:
            return None
        if not self.version:
            detail = f" ({self.problem})" if self.problem else ""
            return f"not an RSS or Atom feed: no feed elements found{detail}"
        if self.problem:
            return f"broken {self.kind} feed, no entries could be read: {self.problem}"
        return None


def parse_feed(body: bytes, *, url: str | None, content_type: str | None) -> ParsedFeed:
    """Parse a feed document.

    Args:
        body: the document bytes, undecoded.
        url: the final URL it was fetched from (the base for relative links), None for a file.
        content_type: the response's Content-Type header; None means application/xml.

    Returns:
        A :class:`ParsedFeed`. Never raises for bad input: feedparser reports problems in
        ``bozo_exception``, which ends up in ``problem``.
    """
    # feedparser (about 0.1 s to import) when a feed is read, not at every start.
    import feedparser  # noqa: PLC0415

    headers = {"content-type": content_type or DEFAULT_CONTENT_TYPE}
    if url:
        headers["content-location"] = url
    result = feedparser.parse(_xml_declaration_first(body), response_headers=headers)
    base = url or _self_link(result.feed)
    return ParsedFeed(
        version=result.get("version", ""),
        title=clean_line(_text_of(result.feed, "title"), 512),
        site_url=absolute_http_url(result.feed.get("link"), base),
        encoding=result.get("encoding", ""),
        problem=_describe(result) if result.get("bozo") else None,
        entries=tuple(_entry(entry, base) for entry in result.entries),
    )


def _xml_declaration_first(body: bytes) -> bytes:
    # Many WordPress feeds send blank lines before "<?xml"; the XML parser rejects that
    # ("declaration not at start"). Dropping the blank lines lets the strict parser read them.
    stripped = body.lstrip()
    if len(stripped) < len(body) and stripped.startswith(b"<?xml"):
        return stripped
    return body


def _self_link(feed) -> str | None:
    for link in feed.get("links", []):
        if link.get("rel") == "self" and absolute_http_url(link.get("href")):
            return absolute_http_url(link.get("href"))
    return None


def _describe(result) -> str:
    """feedparser's "bozo" exception in words for an operator."""
    import feedparser  # noqa: PLC0415 - see parse_feed

    exc = result.get("bozo_exception")
    if isinstance(exc, xml.sax.SAXParseException):
        return f"not well-formed XML ({exc.getMessage()})"
    if isinstance(exc, feedparser.CharacterEncodingOverride):
        return f"character encoding missing or wrong in the document; read as {result.encoding}"
    if exc is None:
        return "feedparser flagged the document"
    return str(exc) or type(exc).__name__


def _entry(entry, base: str | None) -> ParsedEntry:
    fields = _opening_fields(entry)
    return ParsedEntry(
        guid=clean_line(entry.get("id"), 10_000),
        title=clean_line(_text_of(entry, "title"), 1024) or "",
        link=absolute_http_url(entry.get("link"), base),
        summary_html=_summary(entry, base),
        author=clean_line(entry.get("author"), 512),
        published_at=_claimed_date(entry),
        **fields,
    )


def _text_of(node, key: str) -> str | None:
    """The text of a title: markup removed when the feed marked it as HTML."""
    value = node.get(key)
    detail = node.get(f"{key}_detail") or {}
    if value and detail.get("type") in HTML_TYPES:
        return plain_text(value)
    return value


def _summary(entry, base: str | None) -> str:
    # feedparser copies an Atom entry's <content> into "summary" without a summary_detail;
    # the content's own type then tells whether it is markup.
    contents = entry.get("content") or [{}]
    value = entry.get("summary") or contents[0].get("value")
    if not value:
        return ""
    detail = entry.get("summary_detail") or contents[0]
    if detail.get("type", "text/html") not in HTML_TYPES:
        value = html.escape(value)
    cleaned = clean_html(_CONTROL.sub("", value), base)
    if len(cleaned) > MAX_SUMMARY_CHARS:
        return html.escape(excerpt(plain_text(cleaned), EXCERPT_CHARS), quote=False)
    return cleaned


def _claimed_date(entry) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                # feedparser gives struct_time in UTC; timegm reads it as UTC.
                return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _opening_fields(entry) -> dict[str, str | None]:
    """Company, location, job type, pay and section from categories or WP Job Manager elements.

    ``<category domain="company">Acme</category>`` (feedparser's tag "scheme") and a term
    "company: Acme" both count; names are in :data:`FIELD_NAMES`. The first value wins.
    """
    found: dict[str, str | None] = {}
    for tag in entry.get("tags") or []:
        name, value = _tag_field(tag.get("scheme"), tag.get("term"))
        if name and value and name not in found:
            found[name] = value
    for key, name in WP_JOB_MANAGER_KEYS.items():
        if entry.get(key) and name not in found:
            found[name] = entry[key]
    return {
        "section": clean_line(found.get("section"), 16, lower=True),
        "company": clean_line(found.get("company"), 512),
        "location": clean_line(found.get("location"), 512),
        "job_type": clean_line(found.get("job_type"), 128),
        "pay": clean_line(found.get("pay"), 128),
    }


def _tag_field(scheme: str | None, term: str | None) -> tuple[str | None, str | None]:
    if not term:
        return None, None
    if scheme and scheme.strip().lower() in FIELD_NAMES:
        return FIELD_NAMES[scheme.strip().lower()], term
    prefix, sep, value = term.partition(":")
    if sep and prefix.strip().lower() in FIELD_NAMES:
        return FIELD_NAMES[prefix.strip().lower()], value
    return None, None


def clean_line(value: str | None, limit: int, *, lower: bool = False) -> str | None:
    """One line of text: control characters (PostgreSQL refuses NUL) and runs of spaces
    collapsed, cut to ``limit`` characters; None when nothing is left."""
    if not value:
        return None
    text = _SPACES.sub(" ", _CONTROL.sub("", str(value))).strip()
    text = text.lower() if lower else text
    return text[:limit] or None
