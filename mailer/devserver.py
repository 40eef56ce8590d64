"""``python -m mailer.devserver`` (what ``make run`` runs): the whole service on one machine.

In one foreground command, with no set-up: migrate the database (``flask db upgrade``), load
the bundled demo feed on first start, then run

- the local mail catcher (in this process) on 127.0.0.1:MAILER_DEV_SMTP_PORT (8025),
- the web app (``flask run``, DEBUG on) on 127.0.0.1:MAILER_DEV_PORT (5000),
- the worker (``flask worker``: schedule and sender loop), sending to the mail catcher.

Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed) stops all three; if the web app or
the worker dies, the rest stop too. Each child runs in its own session and process group and
gets the signal from here (the terminal's signals reach this process alone), so a reloader's
own child process is stopped with it.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import flask_migrate

from config import BASE_DIR, ConfigError

from . import create_app
from .content.demo import load_demo_feed
from .devmail import MailCatcher
from .extensions import db

log = logging.getLogger("mailer.devserver")
HOST = "127.0.0.1"
STOP_TIMEOUT = 15.0  # seconds a child gets for each of SIGINT and SIGTERM
# The signals that stop the dev server and its children. SIGHUP too: closing the terminal
# would otherwise end this process alone and leave the children (in sessions of their own)
# running, the web app still holding its port.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DevSettings:
    """Where the development services listen, and whether the web app reloads on edits."""

    web_port: int
    smtp_port: int
    reload: bool
    mailbox: Path


def child_environment(settings: DevSettings, environ: dict[str, str]) -> dict[str, str]:
    """Return the environment of the web app and the worker.

    DEBUG is on, the SMTP relay is the local mail catcher (so ``make run`` never mails real
    people, whatever MAILER_SMTP_* say), and links point at the dev web app unless
    MAILER_BASE_URL is set.
    """
    env = dict(environ)
    env.setdefault("FLASK_DEBUG", "1")
    env["MAILER_SMTP_HOST"] = HOST
    env["MAILER_SMTP_PORT"] = str(settings.smtp_port)
    env["MAILER_SMTP_SECURITY"] = "none"
    env["MAILER_SMTP_USERNAME"] = ""
    env["MAILER_SMTP_PASSWORD"] = ""
    if not env.get("MAILER_BASE_URL"):
        env["MAILER_BASE_URL"] = f"http://{HOST}:{settings.web_port}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def prepare_database(app) -> None:
    """Bring the schema to the latest migration; load the demo feed when there is no feed.

    Raises:
        RuntimeError: the migration failed; the message says what to do.
    """
    with app.app_context():
        try:
            flask_migrate.upgrade()
        except Exception as exc:
            raise RuntimeError(
                f"`flask db upgrade` failed on {db.engine.url!r}: {exc}. If that database "
                "was made without migrations, delete it (`make clean`) and start again."
            ) from exc
        if app.config["MAILER_DEMO_FEED"]:
            feed = load_demo_feed(db.session)
            db.session.commit()
            if feed is not None:
                log.info("loaded the demo feed %s", feed.url)
        db.engine.dispose()  # the children open their own connections


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _start_children(settings: DevSettings, env: dict[str, str]) -> dict[str, subprocess.Popen]:
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    web = [*flask, "run", "--host", HOST, "--port", str(settings.web_port)]
    if not settings.reload:
        web.append("--no-reload")
    commands = {"web": web, "worker": [*flask, "worker"]}
    return {
        name: subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        for name, command in commands.items()
    }


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    """Stop each child's process group: SIGINT, then SIGTERM, then SIGKILL, waiting between."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        running = [p for p in children.values() if p.poll() is None]
        if not running:
            return
        for process in running:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop on %s", process.args[-1], sig.name)


class _StopFlag:
    """Set by the ``STOP_SIGNALS``. A plain attribute, not a threading.Event: the handler runs in
    the main thread, which may be holding the Event's lock at that moment (a deadlock)."""

    def __init__(self) -> None:
        self.raised = False

    def set(self, *_signal_args) -> None:
        self.raised = True


def _wait_until_listening(port: int, children, stop: _StopFlag) -> bool:
    # Polls rather than sleeps a fixed time: the first start compiles and migrates for a while.
    while not stop.raised and all(p.poll() is None for p in children.values()):
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _supervise(children: dict[str, subprocess.Popen], stop: _StopFlag) -> int:
    while not stop.raised:
        time.sleep(0.2)
        for name, process in children.items():
            if process.poll() is not None:
                log.error("%s exited with code %s; stopping the others", name, process.returncode)
                return 1
    return 0


def run(settings: DevSettings, env: dict[str, str]) -> int:
    """Start the catcher, the web app and the worker; return the exit code once stopped."""
    stop = _StopFlag()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop.set)
    with MailCatcher(settings.mailbox, HOST, settings.smtp_port):
        children = _start_children(settings, env)
        try:
            if _wait_until_listening(settings.web_port, children, stop):
                _banner(settings)
            code = _supervise(children, stop)
        finally:
            log.info("stopping the web app, the worker and the mail catcher")
            stop_children(children)
    return code


def _banner(settings: DevSettings) -> None:
    url = f"http://{HOST}:{settings.web_port}"
    print(
        f"\n  Web app       {url}/\n  Mailbox       {url}/dev/mailbox  ({settings.mailbox})\n"
        f"  Mail catcher  smtp://{HOST}:{settings.smtp_port}\n  Press Ctrl-C to stop.\n",
        flush=True,
    )


def main() -> int:
    """Prepare the database and run the development services until Ctrl-C; return a code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devserver %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per connection
    os.environ.setdefault("FLASK_DEBUG", "1")
    os.environ.setdefault("MAILER_DEMO_FEED", "1")
    try:
        app = create_app()
    except ConfigError as exc:
        log.error("%s", exc)
        return 1
    settings = DevSettings(
        web_port=app.config["MAILER_DEV_PORT"],
        smtp_port=app.config["MAILER_DEV_SMTP_PORT"],
        reload=app.config["MAILER_DEV_RELOAD"],
        mailbox=Path(app.instance_path) / "mailbox",
    )
    for name, port in (
        ("MAILER_DEV_PORT", settings.web_port),
        ("MAILER_DEV_SMTP_PORT", settings.smtp_port),
    ):
        if not _port_free(port):
            log.error("port %s is in use: stop what uses it or set %s", port, name)
            return 1
    try:
        prepare_database(app)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    return run(settings, child_environment(settings, dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main())
