"""Polling the bounce mailbox (``MAILER_BOUNCE_MAILBOX``): IMAP (imap-tools) or POP3.

Each message not yet flagged goes through the one processor (:func:`.process.process_report`,
source ``mailbox``). A processed one (recorded, a replay, an auto-reply, unmatched, a forged
VERP token) is deleted, or with ``MAILER_BOUNCE_MAILBOX_DONE`` moved to that folder (IMAP). An
unrecognised one, or one over 1 MiB, stays, flagged (\\Flagged) for a person to look at, and
is not read again. When the database is unreachable the poll stops and leaves the rest as it
was, for the next poll. POP3 has no flags and no folders: unrecognised messages stay and are
read again at each poll (they change nothing).

URLs: ``imaps://USER:PASSWORD@HOST:993/FOLDER`` and ``pop3s://USER:PASSWORD@HOST:995`` verify
the server's certificate. The plain ``imap://`` and ``pop3://`` are accepted for a loopback
host only (a local Dovecot, the tests), so a password never crosses a network in clear.
"""

import ipaddress
import logging
import poplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from imap_tools import AND, MailBox, MailBoxUnencrypted
from sqlalchemy.engine import Engine

from .process import process_report
from .reports import MAX_REPORT_BYTES

log = logging.getLogger(__name__)

SCHEMES = {"imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110}
TIMEOUT = 60.0  # seconds for each network call to the mail server


@dataclass(frozen=True)
class MailboxSettings:
    """Where the bounce mailbox is: parsed from ``MAILER_BOUNCE_MAILBOX``."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    folder: str
    done_folder: str

    @classmethod
    def from_config(cls, config: Mapping) -> "MailboxSettings | None":
        """The settings, or None when ``MAILER_BOUNCE_MAILBOX`` is empty.

        Raises:
            ValueError: not an imaps/pop3s URL with a user, a password and a host, or a plain
                imap:// or pop3:// URL of a host that is not loopback.
        """
        url = str(config.get("MAILER_BOUNCE_MAILBOX", "") or "").strip()
        if not url:
            return None
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.hostname or ''}"
        if parts.scheme not in SCHEMES or not (parts.hostname and parts.username):
            raise ValueError(
                "MAILER_BOUNCE_MAILBOX must be imaps://USER:PASSWORD@HOST:993/INBOX or "
                f"pop3s://USER:PASSWORD@HOST:995, got {shown!r}"
            )
        if not parts.scheme.endswith("s") and not _is_loopback(parts.hostname):
            raise ValueError(
                f"MAILER_BOUNCE_MAILBOX: {parts.scheme}:// sends the password in clear; use "
                f"{parts.scheme}s:// (plain is for a loopback host only), got {shown!r}"
            )
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or SCHEMES[parts.scheme],
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            done_folder=str(config.get("MAILER_BOUNCE_MAILBOX_DONE", "") or "").strip(),
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class FetchSummary:
    """What one poll did: messages processed (then deleted or moved) and kept (flagged)."""

    processed: int = 0
    kept: int = 0


def fetch_mailbox(engine: Engine, config: Mapping) -> FetchSummary:
    """Poll ``MAILER_BOUNCE_MAILBOX`` once; returns the counts (nothing to do when unset).

    Raises:
        ValueError: a malformed ``MAILER_BOUNCE_MAILBOX``.
        OSError, imaplib/poplib errors: the mail server cannot be reached or refused the login.
        sqlalchemy.exc.OperationalError: the database went away (what was done stays done).
    """
    settings = MailboxSettings.from_config(config)
    if settings is None:
        return FetchSummary()
    if settings.scheme.startswith("imap"):
        return _fetch_imap(engine, config, settings)
    return _fetch_pop3(engine, config, settings)


def _handle(engine: Engine, config: Mapping, raw: bytes) -> bool:
    """Process one message; True when it is done with (delete or move it)."""
    if len(raw) > MAX_REPORT_BYTES:
        log.warning("bounce mailbox: a message of %d bytes left flagged (over 1 MiB)", len(raw))
        return False
    outcome = process_report(engine, config, raw, "mailbox")
    if not outcome.recognised:
        log.warning("bounce mailbox: a message left flagged: %s", outcome.reason)
    return outcome.recognised


def _fetch_imap(engine: Engine, config: Mapping, s: MailboxSettings) -> FetchSummary:
    if s.scheme == "imaps":
        box = MailBox(s.host, s.port, timeout=TIMEOUT, ssl_context=ssl.create_default_context())
    else:
        box = MailBoxUnencrypted(s.host, s.port, timeout=TIMEOUT)
    summary = FetchSummary()
    try:
        box.login(s.user, s.password, initial_folder=s.folder)
    except BaseException:
        box.client.shutdown()  # a refused login or a missing folder: no socket left open
        raise
    with box as mailbox:
        waiting = [
            (msg.uid, msg.size_rfc822)
            for msg in mailbox.fetch(AND(flagged=False), headers_only=True, mark_seen=False)
        ]
        for uid, size in waiting:
            raw = b"" if size > MAX_REPORT_BYTES else _imap_raw(mailbox, uid)
            if size <= MAX_REPORT_BYTES and _handle(engine, config, raw):
                summary.processed += 1
                if s.done_folder:
                    mailbox.move(uid, s.done_folder)
                else:
                    mailbox.delete(uid)
            else:
                summary.kept += 1
                mailbox.flag(uid, "\\Flagged", True)
    return summary


def _imap_raw(mailbox, uid: str) -> bytes:
    status, data = mailbox.client.uid("FETCH", uid, "(BODY.PEEK[])")
    if status != "OK":
        return b""
    return next((part[1] for part in data if isinstance(part, tuple)), b"")


def _fetch_pop3(engine: Engine, config: Mapping, s: MailboxSettings) -> FetchSummary:
    if s.scheme == "pop3s":
        client = poplib.POP3_SSL(
            s.host, s.port, timeout=TIMEOUT, context=ssl.create_default_context()
        )
    else:
        client = poplib.POP3(s.host, s.port, timeout=TIMEOUT)
    summary = FetchSummary()
    try:
        client.user(s.user)
        client.pass_(s.password)
        for entry in client.list()[1]:
            number, size = (int(x) for x in entry.split()[:2])
            if size <= MAX_REPORT_BYTES:
                raw = b"\r\n".join(client.retr(number)[1]) + b"\r\n"
                if _handle(engine, config, raw):
                    client.dele(number)
                    summary.processed += 1
                    continue
            summary.kept += 1
    finally:
        client.quit()  # POP3 deletes the marked messages only at QUIT (RFC 1939 §6)
    return summary
