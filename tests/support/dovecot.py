"""A real Dovecot (IMAP and POP3) on free loopback ports, for the bounce mailbox tests.

Debian's ``dovecot-imapd`` and ``dovecot-pop3d`` (``.ci/run`` installs them). A minimal
dovecot.conf in a fresh folder: plaintext auth from a passwd-file, SSL off (the service
accepts plain imap:// and pop3:// for loopback hosts only), Maildir storage owned by the
``dovecot`` user. Started in the foreground (``dovecot -F``) and stopped by its pid.
"""

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.smtpd import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "s3cret-pass"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailer-test-{port}
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
default_internal_user = dovecot
default_login_user = dovenull
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Done {{
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


class Dovecot:
    """A running Dovecot: ``imap_url``/``pop3_url`` for MAILER_BOUNCE_MAILBOX, and helpers
    that put messages in and look at what is left (over real IMAP)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
        self.port, self.pop3_port = free_port(), free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> "Dovecot":
        """Write the config and start the server; return once it accepts IMAP connections."""
        owner = pwd.getpwnam("dovecot")
        os.chmod(self.root, 0o755)
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir()
        for sub in ("mail", "home"):
            os.chown(self.root / sub, owner.pw_uid, owner.pw_gid)
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        config = CONFIG.format(root=self.root, port=self.port, pop3_port=self.pop3_port,
                               uid=owner.pw_uid, gid=owner.pw_gid)  # fmt: skip
        (self.root / "dovecot.conf").write_text(config)
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_for_port()
        return self

    def _wait_for_port(self) -> None:
        for _ in range(500):  # a start-up wait, not a limit on what a test measures
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise RuntimeError(f"dovecot exited at start: {output} {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        """The server's log so far."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server (by its pid) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.process is not None:
            self.process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def imap_url(self) -> str:
        """``imap://USER:PASSWORD@127.0.0.1:PORT/INBOX``."""
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    @property
    def pop3_url(self) -> str:
        """``pop3://USER:PASSWORD@127.0.0.1:PORT``."""
        return f"pop3://{USER}:{PASSWORD}@127.0.0.1:{self.pop3_port}"

    def _client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        client.login(USER, PASSWORD)
        return client

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver ``messages`` into ``folder`` (IMAP APPEND)."""
        client = self._client()
        try:
            for raw in messages:
                status, detail = client.append(folder, None, None, raw)
                assert status == "OK", detail
        finally:
            client.logout()

    def contents(self, folder: str = "INBOX") -> list[tuple[bytes, set[str]]]:
        """(Subject header line, flags) of each message left in ``folder``."""
        client = self._client()
        try:
            _status, count = client.select(folder, readonly=True)
            found = []
            if int(count[0]) == 0:
                return found
            _status, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            for part in data:
                if isinstance(part, tuple):
                    flags = imaplib.ParseFlags(part[0])
                    subject = part[1].strip()
                    found.append((subject, {f.decode() for f in flags}))
            return found
        finally:
            client.logout()

    def empty(self, *folders: str) -> None:
        """Delete every message of ``folders``."""
        client = self._client()
        try:
            for folder in folders:
                _status, count = client.select(folder)
                if int(count[0]) > 0:
                    client.store("1:*", "+FLAGS", "\\Deleted")
                    client.expunge()
        finally:
            client.logout()
