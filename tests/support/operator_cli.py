"""Running the app as an operator would: ``flask --app wsgi ...`` in production mode."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

GOOD_KEY = "k" * 32
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
