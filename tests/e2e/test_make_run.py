"""`make run` as a newcomer uses it: start the dev server, see the site, send a digest, stop it.

Starts ``python -m mailer.devserver`` (what ``make run`` runs after installing) as a process on
free ports with its instance folder in a temporary directory, and stops it with SIGINT (Ctrl-C)
or SIGHUP (the terminal closed).
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.smtpd import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.nodb]
ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD = 180.0  # seconds; only stops a hung run, never a timing assertion


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


def _post_json(url: str, payload: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_for(predicate, what: str, log: Path):
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}; dev server output:\n{log.read_text()}")


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def dev_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILER_", "DATABASE_URL"))}
    web_port, smtp_port = free_port(), free_port()
    env.update(
        FLASK_DEBUG="1",
        MAILER_INSTANCE_DIR=str(tmp_path / "instance"),
        MAILER_DEV_PORT=str(web_port),
        MAILER_DEV_SMTP_PORT=str(smtp_port),
        # What a developer's second terminal needs to reach the same catcher and links.
        MAILER_SMTP_HOST="127.0.0.1",
        MAILER_SMTP_PORT=str(smtp_port),
        MAILER_BASE_URL=f"http://127.0.0.1:{web_port}",
        MAILER_SENDER_INTERVAL="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _flask(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _start_devserver(env: dict[str, str], log: Path) -> subprocess.Popen:
    # In a session of its own: a signal sent here reaches the dev server alone, as the
    # terminal's would, and never this test run.
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "mailer.devserver"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill_left_over(pids) -> None:
    """SIGKILL whichever of ``pids`` (processes this test started) and their children live."""
    for pid in {*pids, *(child for parent in pids for child in _descendants(parent))}:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _children(server: subprocess.Popen) -> set[int]:
    """The dev server's descendant pids; asserts the web app and the worker are among them."""
    children = _descendants(server.pid)
    assert len(children) >= 2, "the web app and the worker run as child processes"
    return children


def _assert_stops_everything(
    server: subprocess.Popen, sig: signal.Signals, children: set[int], base: str, log: Path
) -> None:
    """Send ``sig`` to the dev server: it exits 0, ``children`` exit, the web port is free."""
    server.send_signal(sig)
    assert server.wait(timeout=HANG_GUARD) == 0, log.read_text()
    _wait_for(lambda: not any(_alive(pid) for pid in children), "the children to exit", log)
    assert _get(f"{base}/healthz")[0] == 0, "nothing answers on the web port any more"


def test_make_run_serves_the_site_and_catches_a_digest(dev_env, tmp_path):
    base = dev_env["MAILER_BASE_URL"]
    mailbox = Path(dev_env["MAILER_INSTANCE_DIR"]) / "mailbox"
    log = tmp_path / "devserver.log"
    server = _start_devserver(dev_env, log)
    try:
        _wait_for(lambda: _get(f"{base}/healthz")[0] == 200, "/healthz", log)
        status, page = _get(f"{base}/")
        assert status == 200 and "<form" in page, "the signup page"

        # The worker is running: a signup's confirmation mail is sent by its sender loop.
        assert _post_json(f"{base}/subscribe", {"email": "newcomer@example.com"}) < 300
        _wait_for(
            lambda: any(b"newcomer@example.com" in p.read_bytes() for p in mailbox.glob("*.eml")),
            "the confirmation mail in the mailbox",
            log,
        )

        # The README's recipe from a second terminal: a test copy of the next issue, which
        # builds nothing (it no longer sends next week's issue), lands in the mailbox too.
        _flask(dev_env, "digest", "next")
        _flask(dev_env, "digest", "test", "reader@example.com")
        digests = [p for p in mailbox.glob("*.eml") if b"reader@example.com" in p.read_bytes()]
        assert digests, f"no digest in {mailbox}: {sorted(p.name for p in mailbox.iterdir())}"
        status, listing = _get(f"{base}/dev/mailbox")
        assert status == 200 and f"/dev/mailbox/{digests[0].name}" in listing
        status, shown = _get(f"{base}/dev/mailbox/{digests[0].name}")
        assert status == 200 and "List-Unsubscribe" in shown

        _assert_stops_everything(server, signal.SIGINT, _children(server), base, log)
    finally:
        _kill_left_over([server.pid, *_descendants(server.pid)])
        server.wait()


def test_closing_the_terminal_stops_the_web_app_and_the_worker_too(dev_env, tmp_path):
    # Closing the terminal sends SIGHUP to the dev server; its children run in sessions of
    # their own (so that Ctrl-C reaches them only through it) and get nothing from the
    # terminal: the dev server must stop them, or they keep the web port.
    base = dev_env["MAILER_BASE_URL"]
    log = tmp_path / "devserver.log"
    server = _start_devserver(dev_env, log)
    children: set[int] = set()
    try:
        _wait_for(lambda: _get(f"{base}/healthz")[0] == 200, "/healthz", log)
        children = _children(server)
        _assert_stops_everything(server, signal.SIGHUP, children, base, log)
    finally:
        _kill_left_over([server.pid, *children, *_descendants(server.pid)])
        server.wait()


def test_dev_children_send_to_the_mail_catcher_whatever_the_environment(tmp_path):
    from mailer.devserver import DevSettings, child_environment

    settings = DevSettings(web_port=5123, smtp_port=2626, reload=False, mailbox=tmp_path)
    real_relay = {
        "MAILER_SMTP_HOST": "smtp.example.net",
        "MAILER_SMTP_PORT": "587",
        "MAILER_SMTP_SECURITY": "starttls",
        "MAILER_SMTP_USERNAME": "newsletter",
        "MAILER_SMTP_PASSWORD": "secret",
    }
    env = child_environment(settings, real_relay)
    assert (env["MAILER_SMTP_HOST"], env["MAILER_SMTP_PORT"]) == ("127.0.0.1", "2626")
    assert env["MAILER_SMTP_SECURITY"] == "none" and env["MAILER_SMTP_PASSWORD"] == ""
    assert env["MAILER_BASE_URL"] == "http://127.0.0.1:5123"
    assert env["FLASK_DEBUG"] == "1"
    kept = child_environment(settings, {"MAILER_BASE_URL": "http://dev.local:8000"})
    assert kept["MAILER_BASE_URL"] == "http://dev.local:8000"
