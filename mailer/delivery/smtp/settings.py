"""What the SMTP client needs to know and tells: the relay's settings and its replies."""

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

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


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
