"""The fixed cost of a command: what starting the app imports, and a built issue's stored
preflight (never timed: counted through what a real process imported or ran)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

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
