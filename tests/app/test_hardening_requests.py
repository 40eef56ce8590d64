"""Issue 11, item 2: request bodies are limited per route, before they are read.

Through the real HTTP server (werkzeug on loopback, raw sockets): a body declared larger than
MAILER_MAX_REQUEST_BYTES is answered 413 after only its first bytes were sent; a chunked body
(no Content-Length) is cut off at the limit; nothing is stored. The CSV import has its own,
larger, limit (MAILER_MAX_IMPORT_BYTES).
"""

import json
import socket

import pytest
from sqlalchemy import func, select

from mailer.models import SignupRequest, Subscriber
from tests.support.admin import post, signed_in_client
from tests.support.signup import LiveServer

LIMIT = 64 * 1024


def _exchange(server: LiveServer, head: str, body_parts: list[bytes]) -> bytes:
    """Send ``head`` and then ``body_parts`` on one connection; return the whole answer.

    A server that answers before reading the body may close the socket while we still send:
    a reset after the answer arrived is fine, the answer is what counts.
    """
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            # Done sending: werkzeug's server drains what is left of a refused body until EOF.
            sock.shutdown(socket.SHUT_WR)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _stored(session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(SignupRequest)) + session.scalar(
        select(func.count()).select_from(Subscriber)
    )


def test_huge_declared_signup_is_refused_before_its_body_is_read(app, session):
    declared = 150 * 1024 * 1024
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    with LiveServer(app) as server:
        # Only 1 KiB of the 150 MB is ever sent: a server that read the body would wait forever
        # (the socket timeout would end the test with an error instead of a 413).
        answer = _exchange(server, head, [b"email=victim%40example.com&x=" + b"a" * 1000])
    assert _status(answer) == 413
    assert b"65,536 bytes at most" in answer
    assert _stored(session) == 0


def test_chunked_signup_body_is_cut_off_at_the_limit(app, session):
    chunk = b"a" * 8192
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    start = b"email=victim%40example.com&x="
    parts = [b"%x\r\n%s\r\n" % (len(start), start)] + [framed] * (2 * LIMIT // len(chunk))
    with LiveServer(app) as server:
        answer = _exchange(server, head, [*parts, b"0\r\n\r\n"])
    assert _status(answer) == 413
    assert _stored(session) == 0


def test_json_client_gets_json_413(app, session):
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {LIMIT + 1}\r\n\r\n"
    )
    with LiveServer(app) as server:
        answer = _exchange(server, head, [b'{"email": "a@example.com"'])
    assert _status(answer) == 413
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["status"] == "error" and "bytes at most" in body["message"]


def test_admin_login_does_not_read_a_huge_body(app, session):
    head = (
        "POST /admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
    )
    with LiveServer(app) as server:
        answer = _exchange(server, head, [b"email=a%40example.com&password=" + b"x" * 1000])
    assert _status(answer) == 413


def test_a_body_within_the_limit_is_still_taken(app, session):
    body = b"email=taken%40example.com&pad=" + b"a" * 1000
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with LiveServer(app) as server:
        answer = _exchange(server, head, [body])
    assert _status(answer) == 200
    assert _stored(session) == 1


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def _csv(size: int) -> bytes:
    # Three rows padded with a wide "note" column: the size, not the row count, matters here.
    rows = [b"email,note"] + [
        b"person%d@example.com,%s" % (n, b"x" * (size // 3)) for n in (1, 2, 3)
    ]
    return b"\r\n".join(rows) + b"\r\n"


def test_csv_import_has_its_own_larger_limit(admin_client, app, session):
    import io

    data = _csv(200 * 1024)  # over MAILER_MAX_REQUEST_BYTES, within MAILER_MAX_IMPORT_BYTES
    response = post(
        admin_client,
        "/admin/subscribers/import",
        {"file": (io.BytesIO(data), "people.csv"), "consent": "opt_in"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    app.config["MAILER_MAX_IMPORT_BYTES"] = 100 * 1024
    refused = post(
        admin_client,
        "/admin/subscribers/import",
        {"file": (io.BytesIO(data), "people.csv"), "consent": "opt_in"},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 413
