"""When the rate-limit storage (Redis) is down, signups go on and stay limited, counted in the
process's memory, and the log says why. SQLite and PostgreSQL.

Before, every ``POST /subscribe`` answered 500 while Redis was down.

The app runs in a child process: Flask-Limiter's limiter is one object per process, and
once it has marked its storage dead it stays so until it sees the storage answer again,
which must not leak into the other tests of this process.
"""

import json
import os
import subprocess
import sys

from sqlalchemy import func, select

from mailer.models import SignupRequest
from tests.conftest import ROOT
from tests.support.smtpd import free_port

HANG_GUARD = 120  # seconds; only stops a hung process, never a timing assertion
CHILD = """
import json, os
from mailer import create_app
app = create_app(json.loads(os.environ["MAILER_TEST_APP_CONFIG"]))
client = app.test_client()
codes = [
    client.post("/subscribe", data={"email": f"down{n}@example.com"}).status_code
    for n in range(4)
]
print(json.dumps(codes))
"""


def test_signups_go_on_limited_in_memory_while_redis_is_down(app, app_config, session):
    port = free_port()  # nothing listens there: Redis "down", the connection refused
    config = {
        **app_config,
        "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{port}/0",
        "MAILER_SIGNUP_RATE_LIMIT": "3/hour",
    }
    env = {**os.environ, "MAILER_TEST_APP_CONFIG": json.dumps(config)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [200, 200, 200, 429]
    warning = (
        "Rate limit storage unreachable - falling back to in-memory storage: ConnectionError: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."
    )
    assert result.stderr.splitlines() == [warning]
    stored = session.scalar(select(func.count()).select_from(SignupRequest))
    assert stored == 3
