"""What the SMTP client needs to know and tells: the relay's settings and its replies."""

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr

from ..errors import RelayError

SECURITY_MODES = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class SmtpReply:
    """A reply of the relay to one message: ``code`` (e.g. 250) and ``text`` (one line)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        """True for a 2xx reply: the relay took the message (RFC 5321 §4.2.1)."""
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        """True for a 4xx reply: try again later (a soft bounce)."""
        return 400 <= self.code < 500

    @property
    def pushback(self) -> bool:
        """True when the relay refuses us, not the recipient (:func:`is_pushback`)."""
        return is_pushback(self.code, self.text)

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


# What relays say when a sender is over its quota or rate (Postfix, Exim, SES, Gmail, M365,
# SendGrid, Mailgun): "quota exceeded", "rate limited", "too many messages/connections",
# "throttled", "slow down".
PUSHBACK_TEXT = re.compile(
    r"quota|rate[ -]?limit|\brate\b|too many|throttl|slow down|sending limit|exceeded",
    re.IGNORECASE,
)
# Anywhere a word starts: "sender refused: 4.5.3 ..." carries one too.
ENHANCED_CODE = re.compile(r"(?:^|[\s:(\[])4\.(\d{1,3})\.(\d{1,3})\b")
# Enhanced status subjects about the recipient (RFC 3463 §3.2, §3.3): addressing, mailbox.
RECIPIENT_SUBJECTS = ("1", "2")


def is_pushback(code: int | None, text: str) -> bool:
    """Whether a temporary refusal is the relay pushing back on the sender (quota, rate).

    Such a refusal says nothing about the recipient, so the send pauses instead of charging
    it (README, "Relay pushback"). True for a 4xx that is:

    - ``4.5.3`` ("too many recipients", RFC 3463 §3.6): we send one recipient per
      transaction, so it is the relay's quota (``452 4.5.3 Daily sending quota exceeded``);
    - a ``421`` with a ``4.7.x`` status: a policy hang-up (``421 4.7.0 Try again later``);
    - any other 4xx whose text says quota, rate or "too many" (``451 4.7.1 rate limited``).

    Never for a status about the recipient's address or mailbox (``4.1.x``, ``4.2.x``: a full
    mailbox, ``452 4.2.2 over quota``) or for greylisting: those defer that one message.
    """
    if code is None or not 400 <= code < 500:
        return False
    enhanced = ENHANCED_CODE.search(text)
    subject, detail = enhanced.groups() if enhanced else (None, None)
    if subject in RECIPIENT_SUBJECTS or "greylist" in text.lower():
        return False
    if (subject, detail) == ("5", "3") or (code == 421 and subject == "7"):
        return True
    return PUSHBACK_TEXT.search(text) is not None


@dataclass(frozen=True)
class RelaySettings:
    """Where and how to reach the relay; built from the app config with :meth:`from_config`."""

    host: str
    port: int
    security: str
    username: str
    password: str
    timeout: float
    max_messages: int
    sender: str
    ca_file: str = ""

    @classmethod
    def from_config(cls, config: Mapping) -> "RelaySettings":
        """Read the ``MAILER_SMTP_*`` settings and the envelope sender (from ``MAILER_FROM``).

        Raises:
            ValueError: ``MAILER_SMTP_SECURITY`` is not none, starttls or ssl.
        """
        security = str(config["MAILER_SMTP_SECURITY"]).lower()
        if security not in SECURITY_MODES:
            raise ValueError(
                f"MAILER_SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}, got {security!r}"
            )
        return cls(
            host=config["MAILER_SMTP_HOST"],
            port=int(config["MAILER_SMTP_PORT"]),
            security=security,
            username=config.get("MAILER_SMTP_USERNAME", ""),
            password=config.get("MAILER_SMTP_PASSWORD", ""),
            timeout=float(config["MAILER_SMTP_TIMEOUT"]),
            max_messages=max(1, int(config["MAILER_SMTP_MESSAGES_PER_CONNECTION"])),
            sender=parseaddr(config["MAILER_FROM"])[1],
            ca_file=config.get("MAILER_SMTP_CA_FILE", ""),
        )

    def tls_context(self) -> ssl.SSLContext:
        """A client TLS context that verifies the relay's certificate and host name.

        Uses ``MAILER_SMTP_CA_FILE`` when set (a private relay's CA), else the system's CAs.
        """
        return ssl.create_default_context(cafile=self.ca_file or None)


def envelope_refusal(mail: SmtpReply | None, rcpt: SmtpReply | None, data: SmtpReply | None):
    """The one rule for an envelope the relay did not accept (RFC 5321 §3.3, RFC 2920 §3.1).

    Args:
        mail, rcpt, data: the replies to MAIL FROM, RCPT TO and DATA (None when not sent).

    Returns:
        The reply that decides the message for its recipient: the RCPT refusal, else the
        DATA refusal (4xx deferred, 5xx failed by the caller).

    Raises:
        RelayError: the envelope sender was refused; that is the relay's problem, not the
            recipient's, so no recipient is charged.
    """
    if mail is not None and not mail.ok:
        raise RelayError(mail.code, f"sender refused: {mail.text}")
    return next(r for r in (rcpt, data) if r is not None and not r.ok)
