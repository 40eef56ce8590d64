"""The local development mail catcher (``make run``) and its pages at /dev/mailbox (DEBUG only).

:class:`MailCatcher` is an SMTP server (aiosmtpd) on loopback that accepts every message and
stores it as an ``.eml`` file under ``instance/mailbox/``; nothing is relayed anywhere. The
blueprint ``bp`` lists and shows those files; ``create_app`` registers it only when DEBUG is on.
"""

import asyncio
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html import unescape
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template

bp = Blueprint("devmail", __name__)

# Names we write ourselves: a UTC timestamp (so names sort by arrival) and a random suffix.
_NAME = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{8}\.eml")
# The HTML part is shown in a sandboxed iframe; this policy also keeps it from running scripts
# or loading anything but images, styles and fonts if the page is opened on its own. Links
# open in a new tab outside the sandbox (popups that escape it), so that a mail's Confirm or
# Unsubscribe button leads to a working page: a page inside the sandbox could post no form.
SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
_HTML_CSP = (
    f"sandbox {SANDBOX}; default-src 'none'; img-src data: cid: http: https:; "
    "style-src 'unsafe-inline' http: https:; font-src data: http: https:; frame-ancestors 'self'"
)
_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
_HREF = re.compile(r"""<a\s[^>]*?href\s*=\s*["'](https?://[^"']+)["']""", re.IGNORECASE)
NEW_TAB = '<base target="_blank">'


def links_in(html: str) -> list[str]:
    """Return the distinct http(s) link targets of ``html``, in order (entities unescaped)."""
    seen: dict[str, None] = {}
    for url in _HREF.findall(html):
        seen.setdefault(unescape(url), None)
    return list(seen)


def open_links_in_new_tab(html: str) -> str:
    """Return ``html`` with ``<base target="_blank">`` first in its head (or at its start)."""
    match = _HEAD.search(html)
    if match is None:
        return NEW_TAB + html
    return html[: match.end()] + NEW_TAB + html[match.end() :]


def save_message(directory: Path, mail_from: str, rcpt_tos: list[str], data: bytes) -> Path:
    """Store one received message as ``directory/NAME.eml`` and return its path.

    Args:
        directory: the mailbox folder (created if missing).
        mail_from, rcpt_tos: the SMTP envelope; written first as ``Return-Path`` and
            ``Delivered-To`` headers, as a real delivery agent does (RFC 5321 §4.4).
        data: the message exactly as received (CRLF line ends).

    The file is written under a temporary name and renamed, so readers never see half of it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:8]}.eml"
    trace = f"Return-Path: <{mail_from}>\r\n" + "".join(f"Delivered-To: {r}\r\n" for r in rcpt_tos)
    temporary = directory / f".{name}.tmp"
    temporary.write_bytes(trace.encode("utf-8") + data)
    os.replace(temporary, directory / name)
    return directory / name


class _StoreHandler:
    def __init__(self, directory: Path):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        save_message(
            self.directory,
            envelope.mail_from,
            list(envelope.rcpt_tos),
            bytes(envelope.original_content or envelope.content),
        )
        return "250 2.0.0 Stored in the development mailbox"


class MailCatcher:
    """An SMTP server on loopback that stores every message under ``directory``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``start`` raises
    OSError when the port is taken. Plain SMTP without TLS or AUTH: for development only.
    """

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 8025):
        self.directory = Path(directory)
        self.host = host
        self.port = port
        # Our own event loop, so that stop() can close it (aiosmtpd leaves a default one open).
        self._loop = asyncio.new_event_loop()
        # aiosmtpd is imported here: the app factory imports this module for its web pages.
        from aiosmtpd.controller import Controller  # noqa: PLC0415

        self._controller = Controller(
            _StoreHandler(self.directory),
            loop=self._loop,
            hostname=host,
            port=port,
            decode_data=False,
            data_size_limit=50 * 1024 * 1024,
            ready_timeout=10.0,
        )

    def start(self) -> "MailCatcher":
        """Start listening in a background thread; returns self."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the event loop."""
        self._controller.stop()
        self._loop.close()

    def __enter__(self) -> "MailCatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class MailSummary:
    """One stored message for the list: file name, Date header (or arrival), To, Subject."""

    name: str
    date: datetime
    to: str
    subject: str
    size: int


def list_messages(directory: Path, limit: int = 500) -> list[MailSummary]:
    """Return the newest ``limit`` stored messages, newest first (by arrival).

    Returns [] when there is no mailbox yet. Each listed file is parsed for its headers.
    """
    if not directory.is_dir():
        return []
    names = sorted((p.name for p in directory.iterdir() if _NAME.fullmatch(p.name)), reverse=True)
    return [_summary(directory / name) for name in names[:limit]]


def _summary(path: Path) -> MailSummary:
    message = read_message(path.parent, path.name)
    try:
        date = parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        date = datetime.strptime(path.name[:21], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    return MailSummary(
        name=path.name,
        date=date,
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        size=path.stat().st_size,
    )


def read_message(directory: Path, name: str) -> EmailMessage:
    """Parse the stored message ``name``.

    Raises:
        FileNotFoundError: ``name`` is not one of our file names or does not exist (so a
            crafted name such as ``../x`` can never reach outside the mailbox).
    """
    return message_from_bytes(_raw(directory, name), policy=policy.default)


def _raw(directory: Path, name: str) -> bytes:
    if not _NAME.fullmatch(name):
        raise FileNotFoundError(name)
    return (directory / name).read_bytes()


def body_parts(message: EmailMessage) -> tuple[str | None, str | None]:
    """Return ``(text, html)``: the decoded text/plain and text/html bodies, None if absent."""
    parts = []
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        # Stored bodies keep the wire's CRLF line ends; a page wants plain newlines.
        parts.append(part.get_content().replace("\r\n", "\n") if part is not None else None)
    return parts[0], parts[1]


def _mailbox() -> Path:
    return Path(current_app.instance_path) / "mailbox"


def _load(name: str) -> EmailMessage:
    try:
        return read_message(_mailbox(), name)
    except FileNotFoundError:
        abort(404)


@bp.get("/mailbox")
def mailbox():
    """List the caught messages, newest first."""
    return render_template(
        "devmail/index.html", messages=list_messages(_mailbox()), mailbox=_mailbox()
    )


@bp.get("/mailbox/<name>")
def message(name: str):
    """Show one message: the HTML part (sandboxed), the text part and the headers."""
    parsed = _load(name)
    text, html = body_parts(parsed)
    return render_template(
        "devmail/message.html",
        name=name,
        headers=[(key, str(value)) for key, value in parsed.items()],
        subject=str(parsed.get("Subject", "")),
        text=text,
        has_html=html is not None,
        links=links_in(html or ""),
        sandbox=SANDBOX,
    )


@bp.get("/mailbox/<name>/html")
def message_html(name: str):
    """The HTML part alone, under a strict Content-Security-Policy (framed by the page)."""
    _, html = body_parts(_load(name))
    if html is None:
        abort(404)
    response = Response(open_links_in_new_tab(html), mimetype="text/html")
    response.headers["Content-Security-Policy"] = _HTML_CSP
    # Shown in an iframe of /dev/mailbox/<name>: framing by our own pages only.
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/mailbox/<name>/raw")
def message_raw(name: str):
    """The stored .eml file as plain text (the exact bytes, with our trace headers)."""
    try:
        data = _raw(_mailbox(), name)
    except FileNotFoundError:
        abort(404)
    response = Response(data, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
