"""Running the app as an operator would: ``flask --app wsgi ...`` in production mode."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import Config, ConfigError
from mailer import create_app
from tests.conftest import PRODUCTION_KEY, ROOT

GOOD_KEY = PRODUCTION_KEY  # 32 characters, not guessable
HANG_GUARD = 120  # seconds; only stops a hung process, never a timing assertion


def run_flask(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    """Run ``flask --app wsgi ARGS`` as an operator would, in production mode."""
    env = {k: v for k, v in os.environ.items() if k not in {"FLASK_DEBUG", "MAILER_TIMEZONE"}}
    env.update(
        SECRET_KEY=GOOD_KEY,
        MAILER_INSTANCE_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
    )
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def refusal(env, **settings: str) -> str:
    """The message ``create_app(Config)`` refuses to start with once ``settings`` are set.

    ``env`` is the monkeypatch of ``production_env``; each keyword is an environment variable
    set on it. Fails the test when create_app raises no ConfigError.
    """
    for name, value in settings.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError) as excinfo:
        create_app(Config)
    return str(excinfo.value)
