"""Issue 11, items 3 and 7: the feed timeout is a deadline, and feeds cannot reach internal
addresses (SSRF). Real sockets on loopback: a server trickling one byte at a time, an
internal "service" with a banner, a redirect to it."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from mailer.content import feeds
from mailer.content.errors import FeedError, FetchError
from mailer.content.fetch import fetch
from mailer.models import Feed

BANNER = b"SSH-2.0-OpenSSH_9.2p1 internal-build-host-7\r\n"


class _Server:
    """A TCP server on loopback running ``serve(conn)`` for each connection, in threads."""

    def __init__(self, serve):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.serve = serve
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            try:
                self.serve(conn, self.stop)
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()


def _trickle(conn, stop):
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
    # Headers and body one byte at a time, a byte every 0.2 s: each read is quick, the whole
    # never ends (until the test stops the server).
    for byte in b"X-Slow: " + b"a" * 100000:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([byte]))


def _trickle_body(conn, stop):
    conn.recv(65536)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n"
    )
    for byte in b"<rss>" + b" " * 99995:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([byte]))


def _banner(conn, stop):
    conn.sendall(BANNER)
    stop.wait(5)


@pytest.mark.nodb
@pytest.mark.parametrize("serve", [_trickle, _trickle_body], ids=["headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_deadline(serve):
    with _Server(serve) as server:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"^timed out after 1 s fetching http://127"):
            fetch(f"http://127.0.0.1:{server.port}/feed", timeout=1.0, allow_private=True)
        elapsed = time.monotonic() - started
    # Loose: the old per-read timeout never ended (each byte came within it).
    assert elapsed < 30


@pytest.mark.nodb
def test_loopback_and_private_feed_urls_are_refused_by_default():
    with _Server(_banner) as service:
        url = f"http://127.0.0.1:{service.port}/"
        with pytest.raises(FetchError, match="MAILER_FEED_ALLOW_PRIVATE=1") as refused:
            fetch(url, timeout=5)
    assert "SSH" not in str(refused.value)
    for url in (
        "http://10.1.2.3/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
    ):
        with pytest.raises(FetchError, match="loopback, private or reserved"):
            fetch(url, timeout=5)


@pytest.mark.nodb
def test_errors_do_not_echo_an_internal_services_banner():
    with _Server(_banner) as service:
        with pytest.raises(FetchError) as failed:
            fetch(f"http://127.0.0.1:{service.port}/", timeout=5, allow_private=True)
    assert "SSH" not in str(failed.value) and "internal-build-host" not in str(failed.value)
    assert "not valid HTTP" in str(failed.value)


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.nodb
def test_a_redirect_to_an_internal_address_is_refused():
    """The first hop is allowed (as if public); the redirect to 127.0.0.1 is checked again."""
    from mailer.content import netguard

    with _Server(_banner) as service:
        _Redirect.target = f"http://127.0.0.1:{service.port}/admin"
        httpd = ThreadingHTTPServer(("127.0.0.2", 0), _Redirect)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        # 127.0.0.2 stands for a public host here: only 127.0.0.1 is treated as internal.
        original = netguard.refused_address
        netguard.refused_address = lambda address: address == "127.0.0.1"
        try:
            with pytest.raises(FetchError, match="MAILER_FEED_ALLOW_PRIVATE") as refused:
                fetch(f"http://127.0.0.2:{httpd.server_address[1]}/feed", timeout=5)
        finally:
            netguard.refused_address = original
            httpd.shutdown()
            httpd.server_close()
    assert "SSH" not in str(refused.value)


def test_admin_and_cli_refuse_internal_feed_urls(app, session, runner):
    app.config["MAILER_FEED_ALLOW_PRIVATE"] = False  # the default (this module turns it on)
    with app.app_context():
        with pytest.raises(FeedError, match="MAILER_FEED_ALLOW_PRIVATE=1"):
            feeds.add_feed(session, "http://localhost:8080/feed", "news")
    result = runner.invoke(args=["feeds", "add", "http://192.168.1.1/rss", "--section", "news"])
    assert result.exit_code != 0 and "MAILER_FEED_ALLOW_PRIVATE" in result.output
    session.rollback()
    assert session.scalars(select(Feed)).all() == []


@pytest.fixture
def app_config(app_config):
    """The trickling server listens on 127.0.0.1: allow fetching from loopback."""
    app_config["MAILER_FEED_ALLOW_PRIVATE"] = True
    app_config["MAILER_FEED_TIMEOUT"] = 1.0
    return app_config


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin (before ``session`` pushes an app context, whose ``g``
    would keep Flask-WTF's CSRF token of the sign-in page across requests)."""
    from tests.support.admin import signed_in_client

    return signed_in_client(app, client)


def test_refresh_now_queues_for_the_worker_and_never_waits_on_the_server(
    app, admin_client, session
):
    from mailer.scheduler import refresh_requests_job
    from tests.support.admin import post

    connections = []

    def trickle(conn, stop):
        connections.append(1)
        _trickle(conn, stop)

    client = admin_client
    with _Server(trickle) as server:
        url = f"http://127.0.0.1:{server.port}/feed"
        added = post(client, "/admin/feeds", {"url": url, "section": "news"})
        assert added.status_code == 302, added.get_data(as_text=True)[-3000:]
        feed = session.scalars(select(Feed)).one()
        answer = post(client, f"/admin/feeds/{feed.id}/refresh", follow_redirects=True)
        assert "queued" in answer.get_data(as_text=True)
        assert connections == []  # the web request did not contact the feed server
        refresh_requests_job(app)  # the worker, cut off at MAILER_FEED_TIMEOUT
    assert connections == [1]
    session.rollback()
    page = client.get("/admin/feeds").get_data(as_text=True)
    assert "timed out after 1 s fetching" in page
    assert session.get(Feed, feed.id).refresh_requested_at is None


def test_a_password_in_a_feed_url_is_masked_on_pages_and_in_logs(
    app, admin_client, session, caplog
):
    from mailer.scheduler import refresh_requests_job
    from tests.support.admin import post

    client = admin_client
    with _Server(_banner) as server:
        url = f"http://reader:hunter2secret@127.0.0.1:{server.port}/feed"
        post(client, "/admin/feeds", {"url": url, "section": "news"})
        feed = session.scalars(select(Feed)).one()
        answer = post(client, f"/admin/feeds/{feed.id}/refresh", follow_redirects=True)
        refresh_requests_job(app)
    session.rollback()
    page = client.get("/admin/feeds").get_data(as_text=True)
    for text in (answer.get_data(as_text=True), page, caplog.text):
        assert "hunter2secret" not in text
    assert f"reader:***@127.0.0.1:{server.port}" in page
    assert "reader:***@" in caplog.text
