"""A real Postfix on a free loopback port, for the end-to-end bounce test.

Its own instance (``postfix -c DIR start-fg``: its own config, queue and master), never the
system's. It accepts mail for ``local.test`` from loopback and delivers it locally, where a
user that does not exist fails after the message was accepted: Postfix then mails a DSN
(RFC 3464) to the envelope sender. Mail for ``news.example.jp`` (the bounce domain) is
delivered by Postfix's ``virtual`` agent into the Maildir of the test Dovecot's ``bounces``
user, the mailbox the service polls.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.smtpd import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
LOCAL_DOMAIN = "local.test"
BOUNCE_DOMAIN = "news.example.jp"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{local}
mydomain = {local}
myorigin = {local}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = {local}
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
recipient_delimiter = +
virtual_mailbox_domains = {bounce}
virtual_mailbox_base = {maildirs}
virtual_mailbox_maps = static:bounces/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 100
maillog_file = /dev/stdout
biff = no
smtputf8_enable = no
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A running Postfix instance; ``port`` is its SMTP port on 127.0.0.1.

    Args:
        maildirs: the folder holding the Dovecot users' Maildirs (owned by ``dovecot``).
    """

    def __init__(self, maildirs: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
        self.maildirs = maildirs
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def config_dir(self) -> Path:
        """The instance's config folder (main.cf, master.cf)."""
        return self.root / "conf"

    def start(self) -> "Postfix":
        """Write the config and start the master; return once it accepts connections."""
        os.chmod(self.root, 0o755)
        for sub in ("conf", "queue", "data"):
            (self.root / sub).mkdir()
        owner = pwd.getpwnam("dovecot")
        shutil.chown(self.root / "data", "postfix")
        (self.config_dir / "main.cf").write_text(MAIN_CF.format(
            root=self.root, local=LOCAL_DOMAIN, bounce=BOUNCE_DOMAIN, maildirs=self.maildirs,
            uid=owner.pw_uid, gid=owner.pw_gid))  # fmt: skip
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=self.port))
        self.log_file = (self.root / "maillog").open("wb")
        self.process = subprocess.Popen(
            [POSTFIX, "-c", str(self.config_dir), "start-fg"],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        for _ in range(1500):  # a start-up wait, not a limit on what a test measures
            if self.process.poll() is not None:
                raise RuntimeError(f"postfix exited at start: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"postfix did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        """The instance's log so far."""
        return (self.root / "maillog").read_text(errors="replace")

    def stop(self) -> None:
        """Stop this instance's master (``postfix -c DIR stop``) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            subprocess.run([POSTFIX, "-c", str(self.config_dir), "stop"], check=False,
                           capture_output=True)  # fmt: skip
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait(timeout=30)
        if self.process is not None:
            self.log_file.close()
        shutil.rmtree(self.root, ignore_errors=True)
