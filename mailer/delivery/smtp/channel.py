"""One SMTP connection driven by an event loop: non-blocking I/O after a blocking handshake.

:class:`~.smtp.SmtpConnection` opens the session (connect, EHLO, STARTTLS, AUTH, each with
the timeout); then the socket is switched to non-blocking mode and the sender's loop writes
pipelined commands and content into :attr:`Channel.out` and reads replies as they come, so
one thread keeps several connections busy without waiting on any of them.
"""

import ssl
import time
from collections import deque

from ..errors import RelayError
from .connection import SmtpConnection
from .settings import RelaySettings, SmtpReply

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
READ_SIZE = 65536


class Channel:
    """A relay connection for the event loop: output buffer, reply parser, expectations.

    ``expect`` holds, in order, what each coming reply answers: ``(kind, job)`` with kind
    "MAIL", "RCPT", "DATA", "END" (the reply to the content), "RSET" or "SKIP".
    """

    def __init__(self, settings: RelaySettings, index: int):
        self.settings = settings
        self.index = index
        self.session = SmtpConnection(settings)
        self.sock = None
        self.out = bytearray()
        self._in = bytearray()
        self._lines: list[bytes] = []
        self.expect: deque = deque()
        self.deadline = 0.0
        self.finished = 0  # messages whose content went out on this connection

    @property
    def is_open(self) -> bool:
        """True while connected."""
        return self.sock is not None

    @property
    def idle(self) -> bool:
        """Connected (or closed) with nothing on the wire: ready for the next message."""
        return not self.expect and not self.out

    @property
    def pipelining(self) -> bool:
        """True when the relay offers PIPELINING (RFC 2920)."""
        return self.session.pipelining

    @property
    def smtputf8(self) -> bool:
        """True when the relay offers SMTPUTF8 (RFC 6531)."""
        return self.session.smtputf8

    def open(self) -> None:
        """Open the session with blocking calls, then switch to non-blocking I/O.

        Raises:
            RelayError: the relay cannot be reached or refused the session.
        """
        self.session.open()
        self.sock = self.session.socket
        self.sock.setblocking(False)
        self.out.clear()
        self._in.clear()
        self._lines.clear()
        self.expect.clear()
        self.finished = 0

    def close(self, polite: bool = False) -> None:
        """Close the connection; ``polite`` sends QUIT first (when nothing is pending)."""
        if self.sock is not None and polite and self.idle:
            try:
                self.sock.send(b"QUIT\r\n")
            except (OSError, ValueError):
                pass  # closing anyway
        self.sock = None
        self.session.close(polite=False)
        self.out.clear()
        self.expect.clear()

    def write(self, parts: list[bytes], *expectations) -> None:
        """Send ``parts`` (in order) as far as the socket takes them now, queue the rest, and
        note what their replies will answer.

        The parts go out with one gathering ``sendmsg`` when nothing is queued, so a
        message's content is not copied into a buffer first (plain sockets; TLS joins them).

        Raises:
            RelayError: the connection broke.
        """
        self.expect.extend(expectations)
        self.touch()
        if self.out or isinstance(self.sock, ssl.SSLSocket):
            self.out += b"".join(parts)
            self.flush()
            return
        try:
            sent = self.sock.sendmsg(parts)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            raise RelayError(None, f"connection to the relay lost: {exc}") from exc
        for part in parts:
            if sent < len(part):
                self.out += memoryview(part)[sent:]
                sent = 0
            else:
                sent -= len(part)

    def touch(self) -> None:
        """Restart the timeout: the relay has ``settings.timeout`` seconds from now."""
        self.deadline = time.monotonic() + self.settings.timeout

    def flush(self) -> None:
        """Send queued output until the socket would block.

        Raises:
            RelayError: the connection broke.
        """
        try:
            while self.out:
                sent = self.sock.send(self.out)
                del self.out[:sent]
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            raise RelayError(None, f"connection to the relay lost: {exc}") from exc

    def read_replies(self) -> tuple[list[SmtpReply], RelayError | None]:
        """Read what has arrived; return the complete replies in it and, when the connection
        ended (closed by the relay or broken), the error to report after those replies.

        The replies come first: a relay that answers "250" and then hangs up has accepted
        the message before hanging up, and that must be recorded.
        """
        error = None
        try:
            while True:
                chunk = self.sock.recv(READ_SIZE)
                if not chunk:
                    error = RelayError(None, "connection to the relay lost: closed by the relay")
                    break
                self._in += chunk
                self.touch()
        except _WOULD_BLOCK:
            pass
        except OSError as exc:
            error = RelayError(None, f"connection to the relay lost: {exc}")
        return self._parse(), error

    def _parse(self) -> list[SmtpReply]:
        replies = []
        while (end := self._in.find(b"\r\n")) >= 0:
            line = bytes(self._in[:end])
            del self._in[: end + 2]
            self._lines.append(line)
            if line[3:4] != b"-":  # the last line of a reply (RFC 5321 §4.2.1)
                replies.append(_reply(self._lines))
                self._lines = []
        return replies


def _reply(lines: list[bytes]) -> SmtpReply:
    try:
        code = int(lines[0][:3])
    except ValueError:
        code = 0
    text = " ".join(line[4:].decode("utf-8", "replace") for line in lines)
    return SmtpReply(code, text)
