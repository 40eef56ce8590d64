"""SMTP to the relay: a blocking connection with a timeout on every call.

``smtplib`` opens the session (connect, EHLO, STARTTLS, AUTH: well-tested code); then each
message is one transaction written straight on the socket, pipelined when the relay offers
it (RFC 2920: MAIL, RCPT and DATA in one write, the content in a second). The message bytes
go out as given (CRLF line ends, from ``mime``): only dot-stuffing (RFC 5321 §4.5.2) is
applied, with two C-speed byte scans, instead of smtplib's per-message regular expressions.

:class:`SmtpConnection` serves one-off and transactional mail; the digest's senders drive
the same sessions from an event loop (:mod:`.channel`, :mod:`.sender`).
"""

import smtplib
import socket
from collections.abc import Mapping
from functools import cache

from ..errors import RelayError
from .framing import data_parts, envelope_commands
from .settings import RelaySettings, SmtpReply, envelope_refusal

__all__ = ["RelaySettings", "SmtpConnection", "SmtpReply", "send_message"]


@cache
def _local_hostname() -> str:
    # socket.getfqdn(), smtplib's default, may wait for DNS; the plain host name never does.
    return socket.gethostname() or "localhost"


class _Closing(Exception):
    """The relay sent 421: it is closing the connection (RFC 5321 §3.8)."""

    def __init__(self, reply: SmtpReply):
        super().__init__(str(reply))
        self.reply = reply


class SmtpConnection:
    """One connection to the relay, reused for up to ``max_messages`` messages.

    Not thread-safe: each sender uses its own. Every network call has ``settings.timeout``
    seconds (socket timeout). After a 421, a dropped connection or a timeout the connection
    is closed and :meth:`send` raises :class:`RelayError`; the next :meth:`send` reconnects.
    """

    def __init__(self, settings: RelaySettings):
        self.settings = settings
        self._client: smtplib.SMTP | None = None
        self._pipelining = False
        self._smtputf8 = False
        self.messages_on_connection = 0

    @property
    def is_open(self) -> bool:
        """True while a connection is established."""
        return self._client is not None

    @property
    def socket(self):
        """The connected socket (None when closed), for a caller that drives it itself."""
        return self._client.sock if self._client is not None else None

    @property
    def pipelining(self) -> bool:
        """True when the relay offered PIPELINING (RFC 2920) in its EHLO reply."""
        return self._pipelining

    @property
    def smtputf8(self) -> bool:
        """True when the relay offered SMTPUTF8 (RFC 6531) in its EHLO reply."""
        return self._smtputf8

    def open(self) -> None:
        """Connect, EHLO, STARTTLS or TLS per ``security``, and log in when a username is set.

        Raises:
            RelayError: refused, timed out, TLS or authentication failed, or a non-220 greeting.
        """
        self.close()
        client = None
        try:
            client = self._connect()
            self._handshake(client)
        except (OSError, smtplib.SMTPException) as exc:
            if client is not None:
                client.close()
            raise _relay_error(exc, "cannot open a session with the relay") from exc
        self._client = client
        self._pipelining = client.has_extn("pipelining")
        self._smtputf8 = client.has_extn("smtputf8")
        self.messages_on_connection = 0
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            return smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=_local_hostname(), timeout=s.timeout,
                context=s.tls_context(),
            )  # fmt: skip
        return smtplib.SMTP(s.host, s.port, local_hostname=_local_hostname(), timeout=s.timeout)

    def _handshake(self, client: smtplib.SMTP) -> None:
        client.ehlo_or_helo_if_needed()
        if self.settings.security == "starttls":
            client.starttls(context=self.settings.tls_context())
            client.ehlo()
        if self.settings.username:
            client.login(self.settings.username, self.settings.password)

    def close(self, polite: bool = True) -> None:
        """Close the connection (QUIT first when ``polite``); never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if polite:
                client.quit()
        except (OSError, smtplib.SMTPException):
            pass  # the relay went away first; nothing is pending on a closed session
        finally:
            client.close()

    def send(self, recipient: str, body: bytes, sender: str | None = None) -> SmtpReply:
        """Send one message to one recipient and return the relay's reply to it.

        Args:
            recipient: the envelope recipient (the subscriber's address).
            body: the complete message, CRLF line ends, not dot-stuffed.
            sender: the envelope sender; ``settings.sender`` when None.

        Returns:
            The reply that decides the message: 2xx accepted, 4xx/5xx refused for this
            recipient (at RCPT or after the content).

        Raises:
            RelayError: connection failure, timeout, 421, or the envelope sender refused; the
                message was not accepted (or its acceptance is unknown).
            RecipientNotSupported: a non-ASCII address and a relay without SMTPUTF8.
        """
        if self._client is None:
            self.open()
        try:
            reply = self._transaction(sender or self.settings.sender, recipient, body)
        except _Closing as closing:
            self.close(polite=False)
            raise RelayError(closing.reply.code, closing.reply.text) from None
        except RelayError:
            raise  # the sender was refused; the session itself is still usable
        except (OSError, smtplib.SMTPException) as exc:
            self.close(polite=False)
            raise _relay_error(exc, "connection to the relay lost") from exc
        self.messages_on_connection += 1
        if self.messages_on_connection >= self.settings.max_messages:
            self.close()
        return reply

    def _transaction(self, sender: str, recipient: str, body: bytes) -> SmtpReply:
        mail, rcpt, data = self._envelope(sender, recipient)
        if data is None or data.code != 354:
            self._reset()
            return envelope_refusal(mail, rcpt, data)
        if not rcpt.ok:
            # A relay that answers DATA with 354 after refusing the only recipient: end the
            # empty transaction (no valid recipient: nothing is delivered) and report it.
            self._write(b".\r\n")
            self._read()
            self._reset()
            return envelope_refusal(mail, rcpt, None)
        self._write(b"".join(data_parts(body)))
        return self._read()

    def _envelope_commands(self, sender: str, recipient: str) -> bytes:
        return b"".join(envelope_commands(sender, recipient, self._smtputf8))

    def _envelope(self, sender: str, recipient: str):
        commands = self._envelope_commands(sender, recipient)
        if self._pipelining:
            self._write(commands)
            return self._read(), self._read(), self._read()
        replies: list[SmtpReply | None] = []
        for command in commands.splitlines(keepends=True):
            self._write(command)
            replies.append(self._read())
            if not (replies[-1].ok or replies[-1].code == 354):
                break
        replies += [None] * (3 - len(replies))
        return tuple(replies)

    def _write(self, data: bytes) -> None:
        self._client.sock.sendall(data)

    def _read(self) -> SmtpReply:
        code, text = self._client.getreply()
        reply = SmtpReply(code, text.decode("utf-8", "replace").replace("\n", " "))
        if code == 421:
            raise _Closing(reply)
        return reply

    def _reset(self) -> None:
        self._write(b"RSET\r\n")
        self._read()


def _relay_error(exc: Exception, what: str) -> RelayError:
    code = getattr(exc, "smtp_code", None)
    detail = getattr(exc, "smtp_error", None)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    text = f"{what}: {detail or exc or type(exc).__name__}"
    return RelayError(code if isinstance(code, int) and code > 0 else None, text)


def send_message(config: Mapping, recipient: str, body: bytes) -> SmtpReply:
    """Send one complete message on a connection of its own (test copies, one-off mails).

    Args:
        config: the app config (``MAILER_SMTP_*``, ``MAILER_FROM`` for the envelope sender).
        recipient: the envelope recipient.
        body: the complete RFC 5322 message, CRLF line ends.

    Returns:
        The relay's reply; check ``reply.ok`` (a refusal is returned, not raised).

    Raises:
        RelayError: the relay could not be reached, dropped the connection, timed out or
            refused the envelope sender (a ConnectionError, so ``except OSError`` works).
        RecipientNotSupported: a non-ASCII address and a relay without SMTPUTF8.
    """
    connection = SmtpConnection(RelaySettings.from_config(config))
    try:
        return connection.send(recipient, body)
    finally:
        connection.close()
