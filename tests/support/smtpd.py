"""A real SMTP server on loopback for tests (aiosmtpd), with replies a test can script.

``ScriptedSMTPServer`` accepts every message by default and keeps the raw bytes it received.
A test can make it answer a recipient with a chosen reply, once or every time:

    server.script("bad@example.com", "550 5.1.1 no such user")          # every attempt
    server.script("slow@example.com", "451 4.3.0 try later", times=1)  # first attempt only
    server.script("x@example.com", "drop")       # close the connection after DATA, no reply
    server.script("y@example.com", "hang:5")     # wait 5 s before answering DATA

Replies are given at RCPT time for "4xx/5xx" codes (the usual place for per-recipient
refusals), and at DATA time for "drop" and "hang:SECONDS". A "421 ..." reply hangs up after
it is sent, as a relay closing the channel does (RFC 5321 §3.8).

The recipient ``"*"`` scripts every recipient that has no rule of its own, as a relay that
refuses everything from us (a quota, a rate limit) does; ``unscript("*")`` makes it accept
again. ``refused`` lists every (recipient, reply) the server refused.
"""

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    connection: int

    def message(self) -> EmailMessage:
        """Parse ``data`` with the modern e-mail policy."""
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class _Rule:
    reply: str
    times: int | None  # None: every time


@dataclass
class _State:
    received: list[Received] = field(default_factory=list)
    rules: dict[str, list[_Rule]] = field(default_factory=dict)
    connections: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, state: _State, pipelining: bool = True):
        self.state = state
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads pipelined commands in order; advertise it (RFC 2920) like relays do.
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    def _take(self, address: str, at_data: bool) -> str | None:
        with self.state.lock:
            rules = self.state.rules.get(address.lower()) or self.state.rules.get("*", [])
            for rule in rules:
                is_data_rule = rule.reply == "drop" or rule.reply.startswith("hang:")
                if is_data_rule != at_data:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        rules.remove(rule)
                return rule.reply
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self._take(address, at_data=False)
        if reply is not None:
            with self.state.lock:
                self.state.refused.append((address, reply))
            if reply.startswith("421"):
                # "Service closing transmission channel" (RFC 5321 §3.8): hang up after it.
                asyncio.get_running_loop().call_soon(server.transport.close)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            reply = self._take(rcpt, at_data=True)
            if reply == "drop":
                # Hang up without a reply: the client cannot know whether the mail went out.
                server.transport.abort()
                return "421 4.4.2 closing"  # never reaches the client: the socket is gone
            if reply is not None and reply.startswith("hang:"):
                await asyncio.sleep(float(reply.split(":", 1)[1]))
        with self.state.lock:
            self.state.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content or envelope.content),
                    id(session),
                )
            )
        return "250 2.0.0 Message accepted for delivery"


class ScriptedSMTPServer:
    """An aiosmtpd server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, port: int | None = None, *, smtputf8: bool = True, pipelining=True):
        self.state = _State()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        # Our own loop, so that stop() can close it (aiosmtpd leaves its default loop open).
        self._loop = asyncio.new_event_loop()
        self._controller = Controller(
            _Handler(self.state, pipelining),
            loop=self._loop,
            hostname=self.host,
            port=self.port,
            decode_data=False,
            data_size_limit=50 * 1024 * 1024,
            timeout=60,
            enable_SMTPUTF8=smtputf8,  # False: a relay without SMTPUTF8 (RFC 6531)
        )

    def start(self) -> "ScriptedSMTPServer":
        """Start listening; returns self."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and close open sessions."""
        self._controller.stop()
        self._loop.close()

    def __enter__(self) -> "ScriptedSMTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def script(self, recipient: str, reply: str, times: int | None = None) -> None:
        """Answer ``recipient`` with ``reply`` (see the module docstring) ``times`` times."""
        with self.state.lock:
            self.state.rules.setdefault(recipient.lower(), []).append(_Rule(reply, times))

    def unscript(self, recipient: str) -> None:
        """Forget the rules of ``recipient`` ("*": the rule for everyone): it is accepted."""
        with self.state.lock:
            self.state.rules.pop(recipient.lower(), None)

    @property
    def refused(self) -> list[tuple[str, str]]:
        """Every (recipient, reply) refused so far, in order (a copy)."""
        with self.state.lock:
            return list(self.state.refused)

    @property
    def received(self) -> list[Received]:
        """Messages accepted so far, in arrival order (a copy)."""
        with self.state.lock:
            return list(self.state.received)

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Parsed messages whose envelope recipients include ``address``."""
        wanted = address.lower()
        return [r.message() for r in self.received if wanted in (a.lower() for a in r.rcpt_tos)]

    def clear(self) -> None:
        """Forget received messages (rules stay)."""
        with self.state.lock:
            self.state.received.clear()
