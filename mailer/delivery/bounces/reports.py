"""Reading a mailed report: a delivery status notification, a complaint, or an auto-reply.

Pure parsing, no database. A report is attacker-written text: it is only parsed (links never
followed), capped at :data:`MAX_REPORT_BYTES`, and what is kept of it is cut to
:data:`DIAGNOSTIC_LIMIT` characters.

- **Complaints**: an ARF report (RFC 5965), ``multipart/report; report-type=feedback-report``
  whose ``message/feedback-report`` part names the complainer (``Original-Rcpt-To``, else the
  quoted original's ``To``).
- **Auto-replies** (RFC 3834 ``Auto-Submitted: auto-replied``, ``X-Autoreply``, vacation and
  out-of-office subjects) are not bounces: :attr:`Report.kind` ``"autoreply"``.
- **Bounces**: flufl.bounce (GNU Mailman's detector set: RFC 3464 DSNs and the non-standard
  formats of Postfix, Exim, qmail, Exchange, Yahoo and others) finds the failed recipients,
  permanent (hard) or temporary (soft, e.g. a delay warning). The DSN's per-recipient
  ``Status`` and ``Diagnostic-Code`` (RFC 3464 §2.3) are kept when present.
"""

import logging
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

from flufl.bounce import all_failures

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 1024 * 1024
DIAGNOSTIC_LIMIT = 1000
HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"<issue-(\d{1,19})\.sub-(\d{1,19})@([A-Za-z0-9.-]+)>")
_DAEMONS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|auto:|"
    r"vacation|abwesenheit|absence|r[ée]ponse automatique|自動応答|不在)",
    re.IGNORECASE,
)


class ReportTooLarge(ValueError):
    """A report over :data:`MAX_REPORT_BYTES` (1 MiB): refused unread."""


@dataclass(frozen=True)
class Finding:
    """One recipient the report is about: ``kind`` hard, soft or complaint."""

    recipient: str
    kind: str
    status_code: str | None = None
    diagnostic: str | None = None


@dataclass
class Report:
    """What a report says. ``kind``: bounce, complaint, autoreply, or unknown (nothing found).

    ``text``: the report decoded (for the VERP and Message-ID searches). ``message_id``: the
    report's own Message-ID (its identity against replays), or None.
    """

    kind: str
    findings: list[Finding] = field(default_factory=list)
    text: str = ""
    message_id: str | None = None

    def quoted_message_ids(self, domain: str) -> list[tuple[int, int]]:
        """(issue id, subscriber id) of each of our deterministic Message-IDs quoted in the
        report (``<issue-N.sub-M@domain>``, ``message.headers.message_id``), in order."""
        found = []
        for issue, sub, host in _MESSAGE_ID.findall(self.text):
            if host.lower() == domain.lower() and (int(issue), int(sub)) not in found:
                found.append((int(issue), int(sub)))
        return found


def parse_report(raw: bytes) -> Report:
    """Read ``raw`` (one RFC 5322 message, as received) into a :class:`Report`.

    Raises:
        ReportTooLarge: ``raw`` is over 1 MiB.
    """
    if len(raw) > MAX_REPORT_BYTES:
        raise ReportTooLarge(f"report of {len(raw)} bytes refused (at most {MAX_REPORT_BYTES})")
    message = message_from_bytes(raw, policy=policy.compat32)
    text = raw.decode("utf-8", "replace")
    own_id = str(message.get("Message-ID") or "").strip()[:255] or None
    report = Report("unknown", text=text, message_id=own_id)
    complaint = _complaint(message)
    if complaint is not None:
        report.kind, report.findings = COMPLAINT, [complaint]
    elif _is_autoreply(message):
        report.kind = "autoreply"
    else:
        report.findings = _bounces(message)
        report.kind = "bounce" if report.findings else "unknown"
    return report


def _is_autoreply(message: Message) -> bool:
    # RFC 3834 §5: "auto-replied" marks a responder's reply; DSNs say "auto-generated".
    if message.get_content_type() == "multipart/report":
        return False
    sender = parseaddr(str(message.get("From", "")))[1].lower()
    if sender.partition("@")[0] in _DAEMONS:  # a non-standard bounce marked auto-replied
        return False
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto.startswith("auto-replied"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.match(_header_text(message.get("Subject", ""))))


def _complaint(message: Message) -> Finding | None:
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "feedback-report":
        return None
    fields, original = None, None
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            fields = _first_block(part)
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _first_block(part)
    if fields is None:
        return None
    if str(fields.get("Feedback-Type", "abuse")).strip().lower() == "not-spam":
        return None
    recipient = parseaddr(str(fields.get("Original-Rcpt-To", "")))[1]
    if not recipient and original is not None:
        recipient = parseaddr(str(original.get("To", "")))[1]
    feedback = str(fields.get("Feedback-Type", "abuse")).strip()[:32]
    agent = str(fields.get("User-Agent", "")).strip()
    diagnostic = f"Feedback-Type: {feedback}" + (f"; User-Agent: {agent}" if agent else "")
    return Finding(recipient.lower(), COMPLAINT, None, diagnostic[:DIAGNOSTIC_LIMIT])


def _first_block(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload else None
    if isinstance(payload, str):  # text/rfc822-headers
        return message_from_bytes(payload.encode("utf-8", "replace"), policy=policy.compat32)
    return None


def _detect(message: Message) -> tuple[frozenset, frozenset]:
    """flufl.bounce's (temporary, permanent) failures; nothing when a detector breaks."""
    if message.get("From") is None:
        message["From"] = "unknown@invalid"  # its Yale detector fails on a mail without From
    try:
        return all_failures(message)
    except Exception:  # noqa: BLE001 - attacker-written input; one odd report must not stop a poll
        log.warning("bounce report: flufl.bounce failed on it", exc_info=True)
        return frozenset(), frozenset()


def _bounces(message: Message) -> list[Finding]:
    temporary, permanent = _detect(message)
    details = _dsn_details(message)
    fallback = _fallback_diagnostic(message)
    findings = []
    for addresses, kind in ((permanent, HARD), (temporary, SOFT)):
        for raw_address in sorted(addresses):
            address = raw_address.decode("utf-8", "replace").strip().lower()
            if not address or any(f.recipient == address for f in findings):
                continue
            code, diagnostic = details.get(address, (None, None))
            if code is None:
                code = _status_in(fallback, kind)
            findings.append(Finding(address, kind, code, (diagnostic or fallback) or None))
    return findings


def _dsn_details(message: Message) -> dict[str, tuple[str | None, str | None]]:
    """{recipient: (Status, Diagnostic-Code)} from the message/delivery-status parts."""
    details = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks[1:] if isinstance(blocks, list) else []:
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
            status = _STATUS.search(str(block.get("Status", "")))
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            diagnostic = diagnostic.split(";", 1)[-1].strip()[:DIAGNOSTIC_LIMIT] or None
            details[address] = (status.group(0) if status else None, diagnostic)
    return details


def _fallback_diagnostic(message: Message) -> str:
    """The first text part, whitespace folded, cut to :data:`DIAGNOSTIC_LIMIT`."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                text = payload.decode(charset, "replace")
            except LookupError:
                text = payload.decode("utf-8", "replace")
            return " ".join(text.split())[:DIAGNOSTIC_LIMIT]
    return ""


def _status_in(text: str, kind: str) -> str | None:
    wanted = "5" if kind == HARD else "4"
    for found in _STATUS.finditer(text):
        if found.group(1) == wanted:
            return found.group(0)
    return None


def _header_text(value) -> str:
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError):
        return str(value)


def provider_finding(address, kind: str, code=None, diagnostic=None) -> list[Finding]:
    """A provider event's :class:`Finding` as a list (empty when ``address`` is no address);
    the code cut to 16 characters, the diagnostic folded and cut to 1,000."""
    if not isinstance(address, str) or "@" not in address:
        return []
    text = " ".join(str(diagnostic or "").split())[:DIAGNOSTIC_LIMIT] or None
    return [Finding(address.strip().lower(), kind, str(code)[:16] if code else None, text)]
