"""The MIME messages we send: a digest (compiled once, personalised in bytes), a test copy of
it, and a transactional mail such as the signup confirmation.

A digest message, CRLF line ends, no line over 998 octets (RFC 5322 §2.1.1)::

    DKIM-Signature            (when a DKIM key is configured, see dkim.py)
    From, To, Subject, Date, Message-ID, MIME-Version, List-Id, List-Unsubscribe,
    List-Unsubscribe-Post, Content-Type: multipart/alternative
        text/plain; charset="utf-8"   quoted-printable or base64
        text/html; charset="utf-8"    quoted-printable or base64

Choices, and why:

- Each part's Content-Transfer-Encoding is whichever of quoted-printable and base64 is
  shorter for the issue's text (``mime_body.choose_cte``): quoted-printable for mostly ASCII
  text (readable, about 1.05 times the size), base64 for mostly Japanese text (1.35 times
  instead of 3 times, which keeps a digest under Gmail's 102 KB clipping). Both give lines
  of at most 76 characters (RFC 2045 §6.7 and §6.8).
- No ``Precedence: bulk``: it is not a standard (RFC 2076 calls it discouraged), Gmail and
  Yahoo do not ask for it, and List-Id already tells auto-responders that this is list mail
  (RFC 3834 §2).
- The Date is the issue's send start (else its creation time) and the boundary is derived
  from the issue, so that the reference build and the fast path give the same bytes.
- Dot-stuffing (RFC 5321 §4.5.2): ``personalise`` returns the message as signed;
  ``CompiledIssue.personalise_parts`` gives it dot-stuffed and terminated for the sender,
  which writes DATA itself, with the fixed pieces stuffed once per issue;
  ``smtp.data_parts`` does the same for a whole message.
"""

import html
import re
from email.utils import make_msgid

from ... import clock
from ...digest.render import preferences_url_of
from . import headers as hdr
from .assemble import assemble
from .body import choose_cte
from .compiled import MARKERS, CompiledIssue, CompiledVariants
from .dkim import DkimSigner, signer_from_config
from .headers import message_id

__all__ = [
    "CompiledIssue",
    "CompiledVariants",
    "build_message",
    "build_test_message",
    "build_transactional",
    "compile_issue",
    "compile_variants",
    "message_id",
]

TEST_TOKEN = "test"  # {base}/unsubscribe/test: the subscriptions room's invalid-link page
_MARKER_RE = re.compile("|".join(re.escape(m) for m in MARKERS))


def fill_markers(text: str, unsubscribe_url: str, recipient: str, *, for_html: bool) -> str:
    """Replace the unsubscribe-URL, recipient and preference-URL markers in one pass.

    The preference page takes the unsubscribe URL's token. For the HTML part the values are
    HTML-escaped (quotes too: the URLs sit in an href).
    """
    unsubscribe_marker, recipient_marker, preferences_marker = MARKERS
    values = {
        unsubscribe_marker: unsubscribe_url,
        recipient_marker: recipient,
        preferences_marker: preferences_url_of(unsubscribe_url),
    }
    if for_html:
        values = {k: html.escape(v, quote=True) for k, v in values.items()}
    return _MARKER_RE.sub(lambda m: values[m.group(0)], text)


def unsubscribe_url_of_test_copy(config) -> str:
    """Return the unsubscribe URL of an admin's test copy: ``{MAILER_BASE_URL}/unsubscribe/test``.

    Harmless: ``TEST_TOKEN`` never verifies, and the subscriptions room answers it with a page
    saying that a test copy's link unsubscribes no one. ``config``: the app config mapping.
    """
    return f"{config['MAILER_BASE_URL'].rstrip('/')}/unsubscribe/{TEST_TOKEN}"


def _issue_parts(issue, unsubscribe_url: str, recipient: str) -> list[tuple[str, str, str]]:
    # The encoding is chosen on the stored text (markers in), as compile_issue does.
    return [
        (
            "plain",
            fill_markers(issue.text, unsubscribe_url, recipient, for_html=False),
            choose_cte(issue.text),
        ),
        (
            "html",
            fill_markers(issue.html, unsubscribe_url, recipient, for_html=True),
            choose_cte(issue.html),
        ),
    ]


def _sign(message: bytes, signer: DkimSigner | None) -> bytes:
    return signer.sign(message) if signer is not None else message


def build_message(issue, subscriber_id: int, email: str, unsubscribe_url: str, config) -> bytes:
    """Build one subscriber's digest message from scratch with the standard library.

    The slow reference (milliseconds): ``compile_issue(issue, config).personalise(...)``
    gives the same bytes in microseconds. Both DKIM-sign when a key is configured; the
    signature's t= is the signing time, so signed copies made in different seconds differ
    there only.

    Args:
        issue: a models.Issue (``id``, ``number``, ``subject``, ``text``, ``html``,
            ``send_started_at``, ``created_at``).
        subscriber_id: Subscriber.id (for the Message-ID).
        email: the recipient address. unsubscribe_url: the https one-click URL.
        config: the app config mapping.

    Returns:
        The RFC 5322 message, CRLF line ends, not dot-stuffed.

    Raises:
        mime_headers.HeaderValueError: an address, URL or setting cannot be written safely.
        dkim.DkimConfigError: the DKIM settings are incomplete or the key is unusable.
    """
    domain = hdr.sender(config)[2]
    headers = hdr.digest_headers(
        config,
        to=email,
        subject=issue.subject,
        date=hdr.issue_date(issue),
        msgid=message_id(issue.id, subscriber_id, domain),
        unsubscribe_url=unsubscribe_url,
    )
    parts = _issue_parts(issue, unsubscribe_url, email)
    message = assemble(headers, parts, hdr.issue_boundary(issue))
    return _sign(message, signer_from_config(config))


def compile_issue(issue, config) -> CompiledIssue:
    """Encode and assemble ``issue``'s message once (the DKIM key is read here, once).

    Returns:
        A :class:`CompiledIssue`; its ``personalise(subscriber_id, email, unsubscribe_url)``
        returns what :func:`build_message` returns, in tens of microseconds.

    Raises:
        What :func:`build_message` raises for the settings.
    """
    return CompiledIssue(issue, config, signer_from_config(config))


def compile_variants(issue, config) -> CompiledVariants:
    """Compile ``issue`` once per variant (the whole issue and each ``IssueVariant``).

    The sender picks each subscriber's message with ``for_sections(subscriber.sections)``.
    Raises what :func:`build_message` raises for the settings.
    """
    return CompiledVariants(issue, config, signer_from_config(config))


def build_test_message(issue, recipient: str, config) -> bytes:
    """Build a test copy of ``issue`` for ``recipient`` with the subject ``[TEST] ...``.

    The same header set as a subscriber's copy. Its unsubscribe URL is
    ``{MAILER_BASE_URL}/unsubscribe/test``, a token that never verifies (harmless: the
    page says the link is not valid); its Message-ID is random and its Date is now.
    DKIM-signed when configured. Raises what :func:`build_message` raises.
    """
    domain = hdr.sender(config)[2]
    url = unsubscribe_url_of_test_copy(config)
    headers = hdr.digest_headers(
        config,
        to=recipient,
        subject=f"[TEST] {issue.subject}",
        date=clock.now(),
        msgid=make_msgid(domain=domain),
        unsubscribe_url=url,
    )
    parts = _issue_parts(issue, url, recipient)
    message = assemble(headers, parts, hdr.boundary_for(f"test-{make_msgid()}"))
    return _sign(message, signer_from_config(config))


def build_transactional(recipient: str, mail, config) -> bytes:
    """Build a transactional mail (e.g. the signup confirmation) for ``recipient``.

    Args:
        recipient: one bare address. mail: a ``templating.RenderedMail`` (subject, text,
            html). config: the app config mapping.

    Returns:
        The message with From, To, Subject, Date (now), a random Message-ID, MIME-Version
        and ``Auto-Submitted: auto-generated`` (RFC 3834 §5), and no List-* headers (it is
        not list mail); multipart/alternative, or text/plain alone when ``mail.html`` is
        empty. DKIM-signed when configured.

    Raises:
        mime_headers.HeaderValueError, dkim.DkimConfigError: as :func:`build_message`.
    """
    domain = hdr.sender(config)[2]
    headers = hdr.transactional_headers(
        config,
        to=recipient,
        subject=mail.subject,
        date=clock.now(),
        msgid=make_msgid(domain=domain),
    )
    parts = [("plain", mail.text, choose_cte(mail.text))]
    if mail.html:
        parts.append(("html", mail.html, choose_cte(mail.html)))
    message = assemble(headers, parts, hdr.boundary_for(f"mail-{make_msgid()}"))
    return _sign(message, signer_from_config(config))
