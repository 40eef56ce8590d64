"""The fixed cost of a command: what starting the app imports, and a built issue's stored
preflight (never timed: counted through what a real process imported or ran)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from sqlalchemy import select

from mailer.digest import spamcheck
from mailer.digest.preflight import preflight_key
from mailer.models import Issue
from tests.conftest import ROOT, missing
from tests.support.deliveries import add_subscribers

# Imported by the code that uses them, never by the app factory (`flask --help`, every
# command and every web worker would pay for them): `python -X importtime` named these.
HEAVY = (
    "dkim",  # dkimpy: verifying only (`deliverability check`)
    "dns.resolver",  # dnspython: signup DNS checks and `deliverability check`
    "feedparser",  # reading feeds
    "css_inline",  # rendering an issue
    "aiosmtpd",  # the dev mail catcher
    "apscheduler.schedulers",  # the worker's scheduler
)


# `flask --app wsgi --help` as an operator runs it, reporting what it imported when it exits.
HELP_WITH_MODULES = (
    "import atexit, json, sys\n"
    "from flask.cli import main\n"
    "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
    "sys.argv = ['flask', '--app', 'wsgi', '--help']\n"
    "main()\n"
)


@pytest.mark.nodb
def test_flask_help_imports_no_heavy_module(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FLASK_DEBUG"}
    env.update(
        SECRET_KEY="a-long-random-test-key-that-is-not-the-default-0123456789",
        MAILER_INSTANCE_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-c", HELP_WITH_MODULES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "digest" in result.stdout and "dkim" in result.stdout  # the commands are listed
    imported = set(json.loads(result.stderr.splitlines()[-1]))
    assert [m for m in HEAVY if m in imported] == []


@pytest.fixture
def spamassassin_runs(tmp_path, monkeypatch):
    """The real spamassassin behind a wrapper that notes each run; returns the run count.

    The program is found on PATH when it is run, so the wrapper comes first there. The
    in-process score cache is emptied: `digest build` and `digest send` are two processes.
    """
    real = shutil.which("spamassassin")
    if real is None:
        missing("spamassassin is not installed (Debian package 'spamassassin')")
    folder = tmp_path / "bin"
    folder.mkdir()
    runs = tmp_path / "spamassassin-runs"
    wrapper = folder / "spamassassin"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{runs}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    spamcheck._cache.clear()
    yield lambda: len(runs.read_text().splitlines()) if runs.exists() else 0
    spamcheck._cache.clear()


def build_then_send(runner, session, make_item, change=None):
    """`digest build` an issue (one item per section, one subscriber), optionally change it,
    then `digest send` it as a new process would (no in-process score cache)."""
    make_item("news")
    make_item("openings", location="Tokyo")
    session.commit()
    add_subscribers(session, ["reader@example.com"])
    built = runner.invoke(args=["digest", "build", "--period", "2026-W49"])
    assert built.exit_code == 0, built.output
    assert "SpamAssassin score: " in built.output
    issue = session.scalars(select(Issue)).one()
    if change is not None:
        change(issue)
        session.commit()
    session.close()
    spamcheck._cache.clear()
    sent = runner.invoke(args=["digest", "send", "1"])
    assert sent.exit_code == 0, sent.output
    return session.scalars(select(Issue)).one()


def test_sending_an_unchanged_built_issue_does_not_run_spamassassin_again(
    runner, session, make_item, smtp_server, spamassassin_runs
):
    issue = build_then_send(runner, session, make_item)

    assert spamassassin_runs() == 1  # at `digest build` only
    assert issue.status == "sent" and len(smtp_server.received) == 1
    stored = json.loads(issue.preflight)
    assert stored["spam_score"] is not None
    assert all(f["level"] != "error" for f in stored["findings"])


def test_an_issue_changed_after_its_build_is_checked_again_at_send(
    runner, session, make_item, smtp_server, spamassassin_runs
):
    def edit_subject(issue):
        issue.subject = issue.subject + " (corrected)"

    issue = build_then_send(runner, session, make_item, change=edit_subject)

    assert spamassassin_runs() == 2  # at `digest build`, and at `digest send` for the change
    assert issue.status == "sent"
    assert issue.preflight_key == preflight_key(issue, runner.app.config)
