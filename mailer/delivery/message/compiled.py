"""A digest message compiled once per issue and personalised per subscriber in bytes.

The message is first built by the same standard-library code as ``mime.build_message``,
with placeholders for the per-recipient values, and cut at them. The bodies come from
``mime_body`` templates, which give the same bytes as the standard library's encoders.
"""

import base64
import html
import secrets
from dataclasses import dataclass
from datetime import datetime

from ...digest.render import (
    PREFERENCES_URL_MARKER,
    RECIPIENT_MARKER,
    UNSUBSCRIBE_URL_MARKER,
    preferences_url_of,
)
from ...models import Section
from . import headers as hdr
from .assemble import assemble
from .body import body_template
from .canonical import PieceHasher
from .dkim import DkimSigner

MARKERS = (UNSUBSCRIBE_URL_MARKER, RECIPIENT_MARKER, PREFERENCES_URL_MARKER)
# Two recipients of different lengths: the body pieces they share are the same for everyone.
_SAMPLES = (
    ("a@example.invalid", "https://a.invalid/u/1"),
    ("a.much.longer.sample@mail.example.invalid", "https://sample.example.invalid/unsub/22222"),
)


class CompiledIssue:
    """An issue's message encoded once, split at the per-recipient slots.

    Slots: the To, Message-ID and List-Unsubscribe header values and, in both bodies, the
    lines (quoted-printable) or the tail (base64) holding the unsubscribe-URL and recipient
    markers. Holds no connection or session; safe to share between threads.
    """

    def __init__(self, issue, config, signer: DkimSigner | None):
        """Compile ``issue`` (a models.Issue) for ``config``; sign with ``signer`` if given."""
        self.issue_id = issue.id
        # What compiling needs of the issue, as plain values: a helper process compiles the
        # same issue from it (sender/signing.py).
        fields = ("id", "number", "subject", "text", "html", "send_started_at", "created_at")
        self.source = {name: getattr(issue, name) for name in fields}
        self.domain = hdr.sender(config)[2]
        self.mailto = config.get("MAILER_UNSUBSCRIBE_MAILTO", "")
        self.signer = signer
        self.text_cte, self._text = body_template(issue.text, MARKERS)
        self.html_cte, self._html = body_template(issue.html, MARKERS)
        self._pieces, head, slots, self._body_at = _skeleton(
            issue, config, self.text_cte, self.html_cte
        )
        if signer is not None:
            # h=, the fixed headers' canonical form and the body's fixed start: once per issue.
            self._prepared = signer.prepare(head, slots)
            samples = [
                self._pieces_for(self._fills(0, email, url), url, False)[self._body_at :]
                for email, url in _SAMPLES
            ]
            self._body_hasher = PieceHasher(*samples)

    def _signature(self, fills: dict[str, bytes], unsubscribe_url: str) -> bytes:
        # The DKIM-Signature header(s), the body hashed from its pieces before any stuffing.
        body = self._pieces_for(fills, unsubscribe_url, False)[self._body_at :]
        bh = self._body_hasher.hash(body)
        return self.signer.signature_prepared(self._prepared, fills, bh)

    def personalise(self, subscriber_id: int, email: str, unsubscribe_url: str) -> bytes:
        """Return the subscriber's message: the bytes ``mime.build_message`` gives.

        Args:
            subscriber_id: Subscriber.id. email: the recipient address (RFC 5321 mailbox).
            unsubscribe_url: the https URL with the subscriber's token.

        Returns:
            The message (CRLF, not dot-stuffed), DKIM-signed when configured; tens of
            microseconds unsigned, plus the signing time when signed.

        Raises:
            mime_headers.HeaderValueError: ``email`` is not one bare address, or the URL is
                empty or holds whitespace or angle brackets.
        """
        fills = self._fills(subscriber_id, email, unsubscribe_url)
        pieces = self._pieces_for(fills, unsubscribe_url, False)
        if self.signer is None:
            return b"".join(pieces)
        bh = self._body_hasher.hash(pieces[self._body_at :])
        return b"".join([self.signer.signature_prepared(self._prepared, fills, bh), *pieces])

    def personalise_parts(
        self, subscriber_id: int, email: str, unsubscribe_url: str
    ) -> list[bytes]:
        """Return :meth:`personalise`'s message as DATA content, in parts to write in order.

        Dot-stuffed and ended by ``CRLF.CRLF`` (RFC 5321 §4.5.2, §4.1.1.4), ready to write
        after the server's 354 reply. The pieces that are the same for every recipient were
        stuffed once, when the issue was compiled; per message only the filled-in body lines
        are, and nothing is joined (the socket gathers the parts). A signature header goes
        first as it is: none of its lines starts with a dot.

        Raises:
            mime_headers.HeaderValueError: as :meth:`personalise`.
        """
        fills = self._fills(subscriber_id, email, unsubscribe_url)
        parts = self._pieces_for(fills, unsubscribe_url, True)
        if self.signer is not None:
            parts.insert(0, self._signature(fills, unsubscribe_url))
        parts.append(b".\r\n" if parts[-1].endswith(b"\r\n") else b"\r\n.\r\n")
        return parts

    def _fills(self, subscriber_id: int, email: str, unsubscribe_url: str) -> dict[str, bytes]:
        # The per-recipient header values, by slot name.
        unsubscribe = hdr.list_unsubscribe_value(unsubscribe_url, self.mailto)
        return {
            "TO": hdr.address_value(email).encode("utf-8"),
            "MSGID": hdr.message_id(self.issue_id, subscriber_id, self.domain).encode("ascii"),
            "LU": unsubscribe.encode("ascii"),
        }

    def _pieces_for(self, fills: dict[str, bytes], unsubscribe_url: str, stuffed: bool):
        # Only the bodies can hold a line that starts with a dot: every other line of the
        # message starts with a header name, a folding space or a MIME boundary's "--".
        to = fills["TO"].decode("utf-8")
        out: list[bytes] = []
        for piece in self._pieces:
            if piece.__class__ is bytes:
                out.append(piece)
            elif piece == "TEXT":
                values = {
                    UNSUBSCRIBE_URL_MARKER: unsubscribe_url,
                    RECIPIENT_MARKER: to,
                    PREFERENCES_URL_MARKER: preferences_url_of(unsubscribe_url),
                }
                self._text.extend(out, values, stuffed)
            elif piece == "HTML":
                values = {
                    UNSUBSCRIBE_URL_MARKER: html.escape(unsubscribe_url),
                    RECIPIENT_MARKER: html.escape(to),
                    PREFERENCES_URL_MARKER: html.escape(preferences_url_of(unsubscribe_url)),
                }
                self._html.extend(out, values, stuffed)
            else:
                out.append(fills[piece])
        return out

    def personalise_smtp_data(self, subscriber_id: int, email: str, unsubscribe_url: str):
        """Return :meth:`personalise_parts` joined into one bytes object."""
        return b"".join(self.personalise_parts(subscriber_id, email, unsubscribe_url))


def _skeleton(issue, config, text_cte: str, html_cte: str):
    # The message built by the same standard-library code as build_message, with slot
    # placeholders instead of the per-recipient values, cut at them. Also returns the
    # header block with its placeholders, and placeholder -> slot name, for the signer.
    nonce = secrets.token_hex(8)  # no subject or body text can guess it
    slot = "@@SLOT-" + nonce + "-{}@@"
    headers = hdr.digest_headers(
        config,
        to=slot.format("TO"),
        subject=issue.subject,
        date=hdr.issue_date(issue),
        msgid=slot.format("MSGID"),
        unsubscribe_url=slot.format("LU"),
    )
    # The whole List-Unsubscribe value is a slot: its folding depends on the URL's length.
    headers = [(n, slot.format("LU") if n == "List-Unsubscribe" else v) for n, v in headers]
    parts = [
        ("plain", slot.format("TEXT") + "\n", text_cte),
        ("html", slot.format("HTML") + "\n", html_cte),
    ]
    raw = assemble(headers, parts, hdr.issue_boundary(issue))
    # Each placeholder as it appears in the output: a body slot is the whole encoded body.
    wanted = {name: slot.format(name).encode("ascii") for name in ("TO", "MSGID", "LU")}
    wanted["TEXT"] = _encoded_placeholder(slot.format("TEXT"), text_cte)
    wanted["HTML"] = _encoded_placeholder(slot.format("HTML"), html_cte)
    found = sorted((raw.index(marker), name, len(marker)) for name, marker in wanted.items())
    # A cut where the body starts, so that the body is a run of whole pieces (for bh=).
    found.append((raw.index(b"\r\n\r\n") + 4, "BODY", 0))
    found.sort()
    pieces: list[bytes | str] = []
    position = 0
    for start, name, length in found:
        pieces += [raw[position:start], name]
        position = start + length
    pieces.append(raw[position:])
    head = raw[: raw.index(b"\r\n\r\n") + 2]
    slots = {wanted[name]: name for name in ("TO", "MSGID", "LU")}
    pieces = [p for p in pieces if p != b""]
    # Each slot before the body gives one piece per message, so this index holds in both.
    body_at = pieces.index("BODY")
    pieces.remove("BODY")
    return pieces, head, slots, body_at


def _encoded_placeholder(placeholder: str, cte: str) -> bytes:
    line = placeholder.encode("ascii") + b"\r\n"
    if cte == "base64":
        return base64.encodebytes(line).replace(b"\n", b"\r\n")
    return line  # quoted-printable leaves these characters as they are


@dataclass(frozen=True)
class _VariantIssue:
    # What CompiledIssue reads of an issue, with one variant's subject and bodies; the id,
    # number and dates are the issue's, so the Message-ID, boundary and Date stay the same.
    id: int
    number: int
    subject: str
    text: str
    html: str
    send_started_at: datetime | None
    created_at: datetime | None


class CompiledVariants:
    """An issue compiled once per variant: the whole issue, and each single-topic variant.

    ``for_sections(subscriber.sections)`` picks a subscriber's message. An issue stored
    without variants (built before topics existed, or with no items) is the whole issue for
    everyone.
    """

    def __init__(self, issue, config, signer: DkimSigner | None):
        """Compile ``issue`` (a models.Issue with its ``variants``) and each variant once."""
        self.issue_id = issue.id
        self.signer = signer
        self._whole = CompiledIssue(issue, config, signer)
        self._by_sections = {Section.BOTH: self._whole}
        for variant in issue.variants:
            view = _VariantIssue(
                issue.id,
                issue.number,
                variant.subject,
                variant.text,
                variant.html,
                issue.send_started_at,
                issue.created_at,
            )
            self._by_sections[variant.sections] = CompiledIssue(view, config, signer)
        self._everyone = len(self._by_sections) == 1

    def for_sections(self, sections: str) -> CompiledIssue | None:
        """The compiled message for subscribers of ``sections`` (``Section.key`` form), or
        None when their topics have no items in this issue."""
        if self._everyone:
            return self._whole
        return self._by_sections.get(sections)

    @property
    def single(self) -> CompiledIssue | None:
        """The one compiled message when every subscriber gets the same, else None (the
        signing helpers of sender/signing.py compile one message, so they serve only then)."""
        return self._whole if self._everyone else None

    @property
    def variants(self) -> tuple[str, ...]:
        """The topic sets compiled (for logs and tests)."""
        return tuple(self._by_sections)
