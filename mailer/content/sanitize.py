"""Make untrusted feed and admin text safe: one nh3 policy for summary HTML, absolute links only.

The same policy serves feed entries and items written by admins, so that an item's summary is
safe to put into the digest (HTML mail and the web archive) whatever its source.
"""

import html
import re
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import nh3

# A small allow-list: text structure and links. No images (remote images in a digest load
# third-party trackers and break the mail layout), no tables, no style, no classes.
ALLOWED_TAGS = frozenset(
    {"a", "p", "br", "ul", "ol", "li", "strong", "em", "b", "i", "blockquote", "code", "pre"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Elements removed together with everything inside them (the rest keep their text).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "svg", "math", "noscript", "template"}
)
LINK_REL = "noopener noreferrer nofollow"
WEB_SCHEMES = ("http", "https")
# Characters left as they are when an IRI is turned into a URI (RFC 3986 §2.2 reserved, plus
# "%" so existing escapes survive); everything else, e.g. Japanese text, is percent-encoded.
_URI_SAFE = "/:@!$&'()*+,;=%~-._?#[]"
_SPACES = re.compile(r"\s+")


def absolute_http_url(value: str | None, base: str | None = None) -> str | None:
    """Return ``value`` as an absolute http(s) URI, or None when it cannot be made one.

    Args:
        value: a URL or a relative reference, possibly with non-ASCII text (an IRI).
        base: an absolute URL to resolve a relative ``value`` against (RFC 3986 §5.2), or None.

    Returns:
        The URI with scheme http or https and a host; non-ASCII host names IDNA-encoded and
        other non-ASCII characters percent-encoded as UTF-8 (RFC 3987 §3.1). None for an empty
        value, another scheme (``javascript:``, ``file:``...), or a relative reference that
        has no usable base.
    """
    if not value or not value.strip():
        return None
    candidate = value.strip()
    try:
        if base:
            candidate = urljoin(base, candidate)
        parts = urlsplit(candidate)
        if parts.scheme.lower() not in WEB_SCHEMES or not parts.hostname:
            return None
        netloc = parts.netloc.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            quote(parts.path, safe=_URI_SAFE),
            quote(parts.query, safe=_URI_SAFE),
            quote(parts.fragment, safe=_URI_SAFE),
        )
    )


def clean_html(fragment: str | None, base: str | None = None) -> str:
    """Sanitize an HTML fragment with the allow-list above and keep absolute links only.

    Args:
        fragment: untrusted HTML (a feed summary or an admin's text); None counts as "".
        base: absolute URL that relative ``href`` values are resolved against, or None.

    Returns:
        Safe HTML: only :data:`ALLOWED_TAGS`; ``href`` only with http, https or mailto (a
        relative one resolved against ``base``, dropped when that is impossible); every link
        gets ``rel="noopener noreferrer nofollow"``; no ``style``, no event handlers, no
        comments; ``script``/``style``/``iframe``... removed with their content.
    """
    if not fragment:
        return ""

    def keep_absolute(tag: str, attribute: str, value: str) -> str | None:
        if attribute != "href":
            return value
        if value.strip().lower().startswith("mailto:"):
            return value.strip()
        return absolute_http_url(value, base)

    cleaned = nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=keep_absolute,
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )
    return cleaned.strip()


def plain_text(fragment: str | None) -> str:
    """Return the text of an HTML fragment: tags removed, entities decoded, spaces collapsed."""
    if not fragment:
        return ""
    text = nh3.clean(fragment, tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT))
    return _SPACES.sub(" ", html.unescape(text)).strip()


def excerpt(text: str, limit: int) -> str:
    """Cut plain ``text`` to at most ``limit`` characters, at a space when one is near the end.

    Japanese text has no spaces between words, so it is cut at the character; "…" marks a cut.
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.7:
        cut = cut[:space]
    return cut.rstrip() + "…"
