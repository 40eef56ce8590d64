"""The MIME messages we send: a digest (compiled once, personalised in bytes), a test copy of
it, and a transactional mail such as the signup confirmation.

A digest message, CRLF line ends, no line over 998 octets (RFC 5322 §2.1.1)::

    DKIM-Signature            (when a DKIM key is configured, see dkim.py)
    From, To, Subject, Date, Message-ID, MIME-Version, List-Id, List-Unsubscribe,
    List-Unsubscribe-Post, Content-Type: multipart/alternative
        text/plain; charset="utf-8"   quoted-printable
        text/html; charset="utf-8"    quoted-printable

Choices, and why:

- Quoted-printable, not base64: lines of at most 76 characters (RFC 2045 §6.7), bodies that
  spam filters and people can read, and an encoding that works line by line, which is what
  lets :meth:`CompiledIssue.personalise` re-encode only the lines holding a marker.
- No ``Precedence: bulk``: it is not a standard (RFC 2076 calls it discouraged), Gmail and
  Yahoo do not ask for it, and List-Id already tells auto-responders that this is a list
  (RFC 3834 §2).
- Date is the issue's send start (else its creation time) and the boundary is derived from the
  issue id, so that the reference build and the fast path give the same bytes.
- Dot-stuffing (RFC 5321 §4.5.2) is the SMTP layer's job: :meth:`CompiledIssue.personalise`
  returns the message as it is signed; :meth:`CompiledIssue.personalise_smtp_data` returns it
  dot-stuffed and terminated for a sender that writes DATA itself.
"""

import html
import re
import secrets
from datetime import datetime
from email.utils import make_msgid

from .. import clock
from ..digest.render import RECIPIENT_MARKER, UNSUBSCRIBE_URL_MARKER
from . import mime_headers as hdr
from .dkim import DkimSigner, signer_from_config
from .mime_build import assemble
from .mime_qp import BodyTemplate, escape

MARKERS = (UNSUBSCRIBE_URL_MARKER, RECIPIENT_MARKER)
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1
TEST_TOKEN = "test"  # /unsubscribe/test: the subscriptions room shows its invalid-link page
message_id = hdr.message_id
_MARKER_RE = re.compile("|".join(re.escape(m) for m in MARKERS))


def issue_date(issue) -> datetime:
    """Return the Date of an issue's messages: send start, else creation, else now (UTC)."""
    return issue.send_started_at or issue.created_at or clock.now()


def issue_boundary(issue) -> str:
    """Return the multipart boundary of an issue's messages (derived from its id)."""
    return hdr.boundary_for(f"issue-{issue.id}-{issue.number}")


def _list_headers(config, unsubscribe_url: str) -> list[tuple[str, str]]:
    mailto = config.get("MAILER_UNSUBSCRIBE_MAILTO", "")
    return [
        ("List-Id", hdr.list_id_value(config)),
        ("List-Unsubscribe", hdr.list_unsubscribe_value(unsubscribe_url, mailto)),
        ("List-Unsubscribe-Post", ONE_CLICK),
    ]


def _digest_headers(config, *, to, subject, date, msgid, unsubscribe_url):
    return [
        ("From", hdr.from_value(config)),
        ("To", hdr.address_value(to)),
        ("Subject", hdr.text_value("Subject", subject)),
        ("Date", hdr.date_value(date)),
        ("Message-ID", msgid),
        ("MIME-Version", "1.0"),
        *_list_headers(config, unsubscribe_url),
    ]


def fill_markers(text: str, unsubscribe_url: str, recipient: str, *, for_html: bool) -> str:
    """Replace the markers in one pass (HTML-escaping the values for the HTML part)."""
    values = {UNSUBSCRIBE_URL_MARKER: unsubscribe_url, RECIPIENT_MARKER: recipient}
    if for_html:
        values = {k: html.escape(v, quote=True) for k, v in values.items()}
    return _MARKER_RE.sub(lambda m: values[m.group(0)], text)


def _sign(message: bytes, signer: DkimSigner | None) -> bytes:
    return signer.sign(message) if signer is not None else message


def build_message(issue, subscriber_id: int, email: str, unsubscribe_url: str, config) -> bytes:
    """Build one subscriber's digest message from scratch with the standard library.

    This is the slow reference (milliseconds): :meth:`CompiledIssue.personalise` gives the
    same bytes in microseconds. Both DKIM-sign when a key is configured (the signature's t=
    is the signing time, so signed copies made in different seconds differ in it).

    Args:
        issue: a models.Issue with ``id``, ``number``, ``subject``, ``text``, ``html``.
        subscriber_id: Subscriber.id (for the Message-ID).
        email: the recipient address. unsubscribe_url: the https one-click URL.
        config: the app config mapping.

    Returns:
        The RFC 5322 message, CRLF line ends, not dot-stuffed.

    Raises:
        mime_headers.HeaderValueError: an address, URL or setting cannot be written safely.
        dkim.DkimConfigError: the DKIM settings are incomplete or the key unusable.
    """
    _name, _address, domain = hdr.sender(config)
    headers = _digest_headers(
        config,
        to=email,
        subject=issue.subject,
        date=issue_date(issue),
        msgid=message_id(issue.id, subscriber_id, domain),
        unsubscribe_url=unsubscribe_url,
    )
    parts = [
        ("plain", fill_markers(issue.text, unsubscribe_url, email, for_html=False)),
        ("html", fill_markers(issue.html, unsubscribe_url, email, for_html=True)),
    ]
    message = assemble(headers, parts, issue_boundary(issue))
    return _sign(message, signer_from_config(config))


class CompiledIssue:
    """An issue's message encoded once, split at the per-recipient slots.

    Slots: the To, Message-ID and List-Unsubscribe header values and, in both bodies, the
    lines holding the unsubscribe-URL and recipient markers. Safe to share between threads.
    """

    def __init__(self, issue, config, signer: DkimSigner | None):
        """Compile ``issue`` for ``config``; see :func:`compile_issue`."""
        self.issue_id = issue.id
        self.domain = hdr.sender(config)[2]
        self.mailto = config.get("MAILER_UNSUBSCRIBE_MAILTO", "")
        self.signer = signer
        self._text = BodyTemplate(issue.text, MARKERS)
        self._html = BodyTemplate(issue.html, MARKERS)
        self._pieces = _skeleton(issue, config)

    def personalise(self, subscriber_id: int, email: str, unsubscribe_url: str) -> bytes:
        """Return the subscriber's message: what :func:`build_message` gives, in bytes.

        Args:
            subscriber_id: Subscriber.id. email: the recipient address (RFC 5321 mailbox).
            unsubscribe_url: the https URL with the subscriber's token.

        Returns:
            The message (CRLF, not dot-stuffed), DKIM-signed when configured.

        Raises:
            mime_headers.HeaderValueError: ``email`` is not one bare address, or the URL is
                empty or holds whitespace or angle brackets.
        """
        to = hdr.address_value(email)
        unsubscribe = hdr.list_unsubscribe_value(unsubscribe_url, self.mailto)
        plain = {UNSUBSCRIBE_URL_MARKER: escape(unsubscribe_url), RECIPIENT_MARKER: escape(to)}
        marked = {
            UNSUBSCRIBE_URL_MARKER: escape(html.escape(unsubscribe_url)),
            RECIPIENT_MARKER: escape(html.escape(to)),
        }
        out: list[bytes] = []
        for piece in self._pieces:
            if piece.__class__ is bytes:
                out.append(piece)
            elif piece == "TEXT":
                self._text.extend(out, plain)
            elif piece == "HTML":
                self._html.extend(out, marked)
            elif piece == "TO":
                out.append(to.encode("utf-8"))
            elif piece == "MSGID":
                out.append(message_id(self.issue_id, subscriber_id, self.domain).encode("ascii"))
            else:
                out.append(unsubscribe.encode("ascii"))
        message = b"".join(out)
        return _sign(message, self.signer)

    def personalise_smtp_data(self, subscriber_id: int, email: str, unsubscribe_url: str):
        """Return :meth:`personalise`'s message dot-stuffed and ended by ``CRLF.CRLF``.

        Ready to write after the server's 354 reply to DATA (RFC 5321 §4.5.2, §4.1.1.4).
        """
        message = self.personalise(subscriber_id, email, unsubscribe_url)
        return smtp_data(message)


def smtp_data(message: bytes) -> bytes:
    """Return ``message`` (CRLF line ends) dot-stuffed and terminated for the DATA command."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


# A body slot is a whole encoded body: its placeholder line's CRLF belongs to the slot.
_SLOT_RE = re.compile(rb"@@SLOT-([0-9a-f]+)-(?:(TEXT|HTML)@@\r\n|(TO|MSGID|LU)@@)")


def _skeleton(issue, config) -> list[bytes | str]:
    # The message built by the same standard-library code as build_message, with slot
    # placeholders instead of the per-recipient values; split at them.
    nonce = secrets.token_hex(8)  # no subject or body text can guess it
    slot = "@@SLOT-" + nonce + "-{}@@"
    headers = _digest_headers(
        config,
        to=slot.format("TO"),
        subject=issue.subject,
        date=issue_date(issue),
        msgid=slot.format("MSGID"),
        unsubscribe_url=slot.format("LU"),
    )
    # The whole List-Unsubscribe value is the slot: its folding depends on the URL's length.
    headers[-2] = ("List-Unsubscribe", slot.format("LU"))
    parts = [("plain", slot.format("TEXT") + "\n"), ("html", slot.format("HTML") + "\n")]
    raw = assemble(headers, parts, issue_boundary(issue))
    pieces: list[bytes | str] = []
    position = 0
    for match in _SLOT_RE.finditer(raw):
        if match.group(1).decode() != nonce:
            continue
        pieces.append(raw[position : match.start()])
        pieces.append((match.group(2) or match.group(3)).decode())
        position = match.end()
    pieces.append(raw[position:])
    return [p for p in pieces if p != b""]


def compile_issue(issue, config) -> CompiledIssue:
    """Render, encode and assemble ``issue``'s message once; returns a :class:`CompiledIssue`.

    The DKIM key (when configured) is read here, once. Raises what :func:`build_message`
    raises for the settings.
    """
    return CompiledIssue(issue, config, signer_from_config(config))


def build_test_message(issue, recipient: str, config) -> bytes:
    """Build a test copy of ``issue`` for ``recipient``: subject ``[TEST] ...``.

    Same header set as a subscriber's copy; its unsubscribe URL is
    ``{MAILER_BASE_URL}/unsubscribe/test`` (an invalid token: harmless), its Message-ID is
    random and its Date is now. DKIM-signed when configured.
    """
    _name, _address, domain = hdr.sender(config)
    url = f"{config['MAILER_BASE_URL'].rstrip('/')}/unsubscribe/{TEST_TOKEN}"
    headers = _digest_headers(
        config,
        to=recipient,
        subject=f"[TEST] {issue.subject}",
        date=clock.now(),
        msgid=make_msgid(domain=domain),
        unsubscribe_url=url,
    )
    parts = [
        ("plain", fill_markers(issue.text, url, recipient, for_html=False)),
        ("html", fill_markers(issue.html, url, recipient, for_html=True)),
    ]
    message = assemble(headers, parts, hdr.boundary_for(f"test-{make_msgid()}"))
    return _sign(message, signer_from_config(config))


def build_transactional(recipient: str, mail, config) -> bytes:
    """Build a transactional mail (e.g. the signup confirmation) for ``recipient``.

    Args:
        recipient: one bare address. mail: a templating.RenderedMail (subject, text, html).
        config: the app config mapping.

    Returns:
        The message with From, To, Subject, Date (now), a random Message-ID, MIME-Version,
        ``Auto-Submitted: auto-generated`` (RFC 3834 §5) and no List-* headers (it is not
        list mail); multipart/alternative, or text/plain alone when ``mail.html`` is empty.
        DKIM-signed when configured.
    """
    _name, _address, domain = hdr.sender(config)
    headers = [
        ("From", hdr.from_value(config)),
        ("To", hdr.address_value(recipient)),
        ("Subject", hdr.text_value("Subject", mail.subject)),
        ("Date", hdr.date_value(clock.now())),
        ("Message-ID", make_msgid(domain=domain)),
        ("MIME-Version", "1.0"),
        ("Auto-Submitted", "auto-generated"),
    ]
    parts = [("plain", mail.text)] + ([("html", mail.html)] if mail.html else [])
    message = assemble(headers, parts, hdr.boundary_for(f"mail-{make_msgid()}"))
    return _sign(message, signer_from_config(config))
