"""Rate limits on /subscribe and the token POSTs (Flask-Limiter), per client IP, and the
client IP behind a reverse proxy (MAILER_PROXY_HOPS / ProxyFix). SQLite and PostgreSQL.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from mailer.models import ConsentEvent
from tests.conftest import ROOT, missing
from tests.support.admin import add_admin, sign_in
from tests.support.signup import confirm_path, run_signup_job, subscriber

REDIS_URL = "redis://127.0.0.1:6379"


@pytest.fixture
def app_config(app_config):
    app_config["MAILER_SIGNUP_RATE_LIMIT"] = "3/hour"
    app_config["MAILER_TOKEN_RATE_LIMIT"] = "2/hour"
    return app_config


def _signup(client, n, **kwargs):
    return client.post("/subscribe", data={"email": f"ip{n}@example.com"}, **kwargs)


def test_per_ip_limit_answers_429_with_a_readable_page(client, session):
    assert [_signup(client, n).status_code for n in range(3)] == [200, 200, 200]
    limited = _signup(client, 3)
    html = limited.get_data(as_text=True)
    assert limited.status_code == 429
    assert "Too many requests" in html and "3 per 1 hour" in html
    assert limited.headers["Retry-After"].isdigit()
    assert subscriber(session, "ip3@example.com") is None
    as_json = client.post(
        "/subscribe", json={"email": "ip4@example.com"}, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 429 and as_json.get_json()["error"] == "rate_limited"
    # Another client address has its own budget.
    other = _signup(client, 5, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert other.status_code == 200


def test_retry_after_is_sent_with_429_only(app, client, session):
    # RFC 9110 §10.2.3: Retry-After on a 3xx means "wait before following", on a 200 nothing;
    # RFC 6585 §4 gives it to 429. The X-RateLimit-* counters may go on every answer.
    add_admin(app)
    answers = [
        _signup(client, 0),
        client.post("/subscribe", json={"email": "x"}),  # 422, and counted
        client.get("/subscribe"),  # a redirect to the signup page, not limited
        sign_in(client),  # a rate-limited route answering with a redirect
        _signup(client, 1),
    ]
    assert [answer.status_code for answer in answers] == [200, 422, 303, 302, 200]
    for answer in answers:
        assert "Retry-After" not in answer.headers, (answer.status_code, answer.headers)
    assert answers[-1].headers["X-RateLimit-Remaining"] == "0"
    limited = _signup(client, 2)
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 3600


def test_token_posts_are_limited_and_their_gets_are_not(client, session):
    _signup(client, 0)
    path = confirm_path(session, "ip0@example.com")
    assert [client.post(path).status_code for _ in range(2)] == [200, 200]
    assert client.post(path).status_code == 429
    assert client.post("/unsubscribe/whatever").status_code == 400  # its own budget
    assert [client.get(path).status_code for _ in range(5)] == [200] * 5


def test_forged_forwarded_for_is_ignored_without_proxy_hops(client, session):
    for n in range(3):
        forged = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert _signup(client, n, headers=forged).status_code == 200
    assert _signup(client, 9, headers={"X-Forwarded-For": "203.0.113.99"}).status_code == 429
    run_signup_job(session)
    ips = {event.ip_address for event in session.query(ConsentEvent)}
    assert ips == {"127.0.0.1"}


@pytest.fixture
def proxied_client(app_config):
    from mailer import create_app
    from mailer.extensions import db

    app_config["MAILER_PROXY_HOPS"] = 1
    app = create_app(app_config)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            db.create_all()
    yield app.test_client()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_one_proxy_hop_uses_the_address_the_proxy_saw(proxied_client, session):
    # The proxy appends the client's address; anything before it was sent by the client.
    for n in range(3):
        headers = {"X-Forwarded-For": f"10.9.9.9, 203.0.113.{n}"}
        assert _signup(proxied_client, n, headers=headers).status_code == 200
    again = {"X-Forwarded-For": "203.0.113.0"}
    for n in range(3, 5):
        assert _signup(proxied_client, n, headers=again).status_code == 200
    assert _signup(proxied_client, 5, headers=again).status_code == 429
    run_signup_job(session)
    recorded = sorted({event.ip_address for event in session.query(ConsentEvent)})
    assert recorded == ["203.0.113.0", "203.0.113.1", "203.0.113.2"]


CHILD = """
import json, os
from werkzeug.serving import make_server
from mailer import create_app
app = create_app(json.loads(os.environ["MAILER_TEST_APP_CONFIG"]))
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def redis_prefix():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"mailer-test-{uuid.uuid4().hex}"
    yield prefix
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


def _start(config: dict, log_path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "MAILER_TEST_APP_CONFIG": json.dumps(config)}
    log = open(log_path, "wb")  # closed once the port is read
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log
    )
    port = process.stdout.readline().decode().strip()
    log.close()
    assert port.isdigit(), f"the app process did not start; see {log_path}"
    return process, f"http://127.0.0.1:{port}"


def _post(url: str, email: str) -> int:
    request = urllib.request.Request(url + "/subscribe", data=f"email={email}".encode())
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_per_ip_limit_holds_across_two_processes_sharing_redis(
    app, app_config, redis_prefix, tmp_path
):
    config = {
        **app_config,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": redis_prefix,
        "MAILER_SIGNUP_RATE_LIMIT": "4/hour",
    }
    processes = []
    try:
        for name in ("a", "b"):
            processes.append(_start(config, tmp_path / f"web-{name}.log"))
        (_, first), (_, second) = processes
        statuses = [
            _post(url, f"r{n}@example.com") for n, url in enumerate([first, second, first, second])
        ]
        assert statuses == [200, 200, 200, 200]
        assert _post(first, "r5@example.com") == 429
        assert _post(second, "r6@example.com") == 429
    finally:
        for process, _ in processes:
            process.terminate()
            process.wait()
            process.stdout.close()
