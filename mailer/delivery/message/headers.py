"""Header values for outgoing mail, formatted by us so that the result is safe and repeatable.

The standard library's header refolding (``email.policy.default``, Python 3.11) is not used
for the values written here, on purpose, because of two things it does:

- it RFC 2047-encodes a long unbreakable value such as ``List-Unsubscribe: <https://...>``,
  which receivers do not decode there, so the one-click URL would be lost;
- it decodes encoded-words found in the text it is given and refolds the decoded text, so a
  feed title ``Jobs =?UTF-8?Q?=0A?=Bcc: x@example.com`` would become a real ``Bcc:`` line.

Here every text is first made one line (:func:`one_line`), then written as plain ASCII when
that is safe, or else as RFC 2047 encoded-words by ``email.header.Header`` (which never reads
encoded-words in its input). Every value returned is folded with CRLF + space and no line is
longer than 78 octets unless a single token is (then at most 998, RFC 5322 §2.1.1).
"""

import hashlib
import re
import unicodedata
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, getaddresses

from ... import clock

FOLD = "\r\n "
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1
# RFC 5322 §2.1.1: SHOULD be no more than 78 characters, MUST be no more than 998.
SOFT_LIMIT = 78
# RFC 2047 §2: an encoded-word is at most 75 characters; Header's limit counts the leading
# space of a continuation line, hence 76.
_ENCODED_WORD_LINE = 76
_PHRASE_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
# \s also matches U+2028, U+0085 and the other Unicode line breaks.
_UNSAFE_ADDRESS = re.compile(r"[\s<>,;\x00-\x1f\x7f-\x9f]")
_UNSAFE_URL = re.compile(r"[\s<>\x00-\x1f\x7f-\x9f]")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


class HeaderValueError(ValueError):
    """A configured or given value cannot be written as a safe header (the message says why)."""


def one_line(text: str) -> str:
    """Return ``text`` with every run of whitespace (CR, LF, U+2028 ...) made one space.

    Control characters that are not whitespace are dropped, so nothing in a feed title or an
    admin's input can end a header line or start a new one.
    """
    kept = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join(kept.split())


def _needs_encoding(text: str) -> bool:
    # "=?" could be read as an encoded-word by a receiver; a word too long to fold is split
    # into encoded-words rather than written past the 78-octet line length.
    if not text.isascii() or "=?" in text:
        return True
    return any(len(word) > SOFT_LIMIT - 12 for word in text.split(" "))


def _fold_words(name: str, text: str) -> str:
    # Greedy folding at spaces, the way RFC 5322 §3.2.2 allows (CRLF before a space).
    lines: list[str] = []
    current = ""
    used = len(name) + 2
    for word in text.split(" "):
        if current and used + len(current) + 1 + len(word) > SOFT_LIMIT:
            lines.append(current)
            current, used = word, 1
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return FOLD.join(lines)


def text_value(name: str, text: str) -> str:
    """Return the folded value of an unstructured header such as Subject (RFC 5322 §3.6.5).

    Args:
        name: the header name (its length counts towards the first line).
        text: any text; whitespace runs, CR and LF become one space first.

    Returns:
        Plain ASCII folded at spaces, or RFC 2047 encoded-words (UTF-8, B or Q, whichever is
        shorter) when the text is not ASCII, contains ``=?`` or has an over-long word.
    """
    text = one_line(text)
    if not _needs_encoding(text):
        return _fold_words(name, text)
    header = Header(text, "utf-8", header_name=name)
    return header.encode(linesep="\r\n", maxlinelen=_ENCODED_WORD_LINE)


def display_name(name: str, header_name: str) -> str:
    """Return a display name as a phrase: as is, quoted, or RFC 2047-encoded (RFC 5322 §3.4)."""
    name = one_line(name)
    if not name.isascii() or "=?" in name:
        header = Header(name, "utf-8", header_name=header_name)
        return header.encode(linesep="\r\n", maxlinelen=_ENCODED_WORD_LINE)
    if _PHRASE_SPECIALS.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return name


def sender(config) -> tuple[str, str, str]:
    """Return (display name, address, domain) of ``MAILER_FROM``.

    Raises:
        HeaderValueError: MAILER_FROM is not one usable ASCII address with an optional
            display name (``Name <user@domain>``): ``parseaddr`` alone would keep the first
            of two addresses and drop text after the ``>``, so the whole value is read with
            ``getaddresses`` and must give exactly one.
    """
    raw = config["MAILER_FROM"]
    found = getaddresses([raw])
    name, address = found[0] if len(found) == 1 else ("", "")
    if not _PLAIN_ADDRESS.fullmatch(address or ""):
        raise HeaderValueError(
            f"MAILER_FROM must be one ASCII address like 'Name <newsletter@example.com>', "
            f"got {raw!r}"
        )
    return one_line(name), address, address.rsplit("@", 1)[1].lower()


def from_value(config) -> str:
    """Return the From header value: ``Display Name <address>`` (name encoded when needed).

    The display name is ``MAILER_FROM``'s own, else ``MAILER_NAME`` (the newsletter's one name).
    """
    name, address, _domain = sender(config)
    name = name or one_line(config.get("MAILER_NAME") or "")
    if not name:
        return address
    phrase = display_name(name, "From")
    last_line = phrase.rsplit("\r\n", 1)[-1]
    separator = FOLD if len(last_line) + len(address) + 9 > SOFT_LIMIT else " "
    return f"{phrase}{separator}<{address}>"


def address_value(address: str) -> str:
    """Return a To value for one bare address (UTF-8 as is when the address is, RFC 6532).

    Raises:
        HeaderValueError: the address is empty, over 900 characters, has no ``@``, or holds
            whitespace, a control character, ``<``, ``>``, ``,`` or ``;`` (such a value could
            smuggle in a second recipient or a header line).
    """
    if _UNSAFE_ADDRESS.search(address) or "@" not in address or len(address) > 900:
        raise HeaderValueError(f"not a single bare e-mail address: {address!r}")
    return address


def list_unsubscribe_value(url: str, mailto: str = "") -> str:
    """Return ``<https-url>`` (and ``, <mailto:...>`` second when configured), RFC 2369 §3.2.

    The https URL comes first (RFC 8058 §3.1 one-click needs it). It is never encoded or
    broken: a long URL stays on one line of up to 998 octets.

    Raises:
        HeaderValueError: the URL holds whitespace or angle brackets, or is over 900 octets.
    """
    for part in (url, mailto):
        if _UNSAFE_URL.search(part) or len(part) > 900:
            raise HeaderValueError(f"not usable in List-Unsubscribe: {part!r}")
    if not url:
        raise HeaderValueError("the unsubscribe URL is empty")
    if not mailto:
        return f"<{url}>"
    target = mailto if mailto.startswith("mailto:") else f"mailto:{mailto}?subject=unsubscribe"
    if len("List-Unsubscribe: ") + len(url) + len(target) + 6 > SOFT_LIMIT:
        return f"<{url}>,{FOLD}<{target}>"
    return f"<{url}>, <{target}>"


def list_id_value(config) -> str:
    """Return ``"MAILER_NAME" <list-id>`` (RFC 2919); the id defaults to ``weekly.<domain>``."""
    list_id = config.get("MAILER_LIST_ID", "").strip().strip("<>")
    if not list_id:
        list_id = f"weekly.{sender(config)[2]}"
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", list_id):
        raise HeaderValueError(
            f"MAILER_LIST_ID must look like 'weekly.example.com', got {list_id!r}"
        )
    name = one_line(config.get("MAILER_NAME", ""))
    if not name:
        return f"<{list_id}>"
    phrase = display_name(name, "List-Id")
    if not phrase.startswith(('"', "=?")):
        phrase = f'"{phrase}"'
    last_line = phrase.rsplit("\r\n", 1)[-1]
    separator = FOLD if len(last_line) + len(list_id) + 12 > SOFT_LIMIT else " "
    return f"{phrase}{separator}<{list_id}>"


def date_value(moment: datetime) -> str:
    """Return an RFC 5322 §3.3 date in UTC, e.g. ``Mon, 07 Dec 2026 08:00:00 +0000``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for a Date header; use mailer.clock")
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def message_id(issue_id: int, subscriber_id: int, from_domain: str) -> str:
    """Return ``<issue-{issue_id}.sub-{subscriber_id}@{from_domain}>`` (RFC 5322 §3.6.4).

    Derived from (issue, subscriber) alone, so a re-sent copy after a crash carries the same
    Message-ID and a bounce quoting it names the delivery. Brackets included.
    """
    return f"<issue-{int(issue_id)}.sub-{int(subscriber_id)}@{from_domain}>"


def issue_date(issue) -> datetime:
    """Return the Date of an issue's messages: send start, else creation, else now (UTC).

    Fixed per issue, so that every copy (and a re-sent one) carries the same Date.
    """
    return issue.send_started_at or issue.created_at or clock.now()


def issue_boundary(issue) -> str:
    """Return the multipart boundary of an issue's messages (derived from its id and number)."""
    return boundary_for(f"issue-{issue.id}-{issue.number}")


def base_headers(config, *, to, subject, date, msgid) -> list[tuple[str, str]]:
    """Return the headers every mail we send starts with, in order, as (name, value) pairs.

    From, To, Subject, Date, Message-ID and MIME-Version (RFC 5322 §3.6, RFC 2045 §4), each
    exactly once: the digest, a test copy and a transactional mail all begin with these, so
    a header every mail needs is added here, once.
    """
    return [
        ("From", from_value(config)),
        ("To", address_value(to)),
        ("Subject", text_value("Subject", subject)),
        ("Date", date_value(date)),
        ("Message-ID", msgid),
        ("MIME-Version", "1.0"),
    ]


def digest_headers(config, *, to, subject, date, msgid, unsubscribe_url) -> list[tuple[str, str]]:
    """Return a digest message's headers in order, as (name, folded value) pairs.

    :func:`base_headers`, then List-Id (RFC 2919), List-Unsubscribe (RFC 2369, https first)
    and List-Unsubscribe-Post (RFC 8058 §3.1); exactly one each.
    """
    mailto = config.get("MAILER_UNSUBSCRIBE_MAILTO", "")
    return [
        *base_headers(config, to=to, subject=subject, date=date, msgid=msgid),
        ("List-Id", list_id_value(config)),
        ("List-Unsubscribe", list_unsubscribe_value(unsubscribe_url, mailto)),
        ("List-Unsubscribe-Post", ONE_CLICK),
    ]


def transactional_headers(config, *, to, subject, date, msgid) -> list[tuple[str, str]]:
    """Return a transactional mail's headers: :func:`base_headers`, then
    ``Auto-Submitted: auto-generated`` (RFC 3834 §5); no List-* headers (it is not list mail).
    """
    return [
        *base_headers(config, to=to, subject=subject, date=date, msgid=msgid),
        ("Auto-Submitted", "auto-generated"),
    ]


def boundary_for(key: str) -> str:
    """Return a MIME boundary derived from ``key`` (repeatable for the same key).

    It starts with ``=_``, which quoted-printable and base64 output can never contain, so it
    cannot collide with a body line (RFC 2046 §5.1.1).
    """
    return "=_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
