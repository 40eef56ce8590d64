"""Items and feeds pages: add, edit, hide items; add, move, refresh, remove feeds."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from mailer.digest import build
from mailer.models import Feed, Item
from mailer.scheduler import refresh_requests_job
from tests.support.admin import post, signed_in_client

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>Tokyo Test News</title><link>https://tokyo.example.com/</link>
<description>test</description>
<item><title>Cherry blossoms early this year</title>
<link>https://tokyo.example.com/sakura</link><guid>sakura-1</guid>
<pubDate>Mon, 02 Mar 2026 09:00:00 +0900</pubDate>
<description>&lt;p&gt;Ueno park is pink.&lt;/p&gt;</description></item>
<item><title>New Shinkansen timetable</title>
<link>https://tokyo.example.com/shinkansen</link><guid>shinkansen-1</guid>
<pubDate>Tue, 03 Mar 2026 09:00:00 +0900</pubDate>
<description>Faster trains.</description></item>
</channel></rss>"""


class _FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path != "/feed.xml":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(RSS)))
        self.end_headers()
        self.wfile.write(RSS)

    def log_message(self, *args):
        pass


@pytest.fixture
def app_config(app_config):
    """The feed servers here listen on 127.0.0.1: allow fetching from loopback."""
    app_config["MAILER_FEED_ALLOW_PRIVATE"] = True
    return app_config


@pytest.fixture
def feed_server():
    """A real HTTP server on loopback serving /feed.xml (404 for anything else)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


ITEM = {
    "section": "openings",
    "title": "Data engineer in Osaka",
    "link": "https://jobs.example.com/osaka/7",
    "summary": "<p>Python and <b>SQL</b>.</p><script>alert(1)</script>",
    "company": "Kansai Data KK",
    "location": "Osaka",
    "job_type": "",
}


def test_add_edit_and_hide_an_item(admin_client, session):
    response = post(admin_client, "/admin/items/new", ITEM, token_from="/admin/items/new")
    assert response.status_code == 302
    item = session.scalars(select(Item)).one()
    assert (item.section, item.company, item.job_type) == ("openings", "Kansai Data KK", None)
    assert "<script" not in item.summary_html  # the content room's sanitizer ran
    page = admin_client.get("/admin/items").get_data(as_text=True)
    assert "Data engineer in Osaka" in page
    assert "Kansai Data KK · Osaka" in page

    edit_url = f"/admin/items/{item.id}/edit"
    form = admin_client.get(edit_url).get_data(as_text=True)
    assert 'value="Data engineer in Osaka"' in form
    changed = {**ITEM, "title": "Senior data engineer in Osaka", "job_type": "full-time"}
    assert post(admin_client, edit_url, changed, token_from=edit_url).status_code == 302
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    item = session.get(Item, item.id)
    assert (item.title, item.job_type) == ("Senior data engineer in Osaka", "full-time")

    response = post(admin_client, f"/admin/items/{item.id}/hidden", {"hidden": "1"})
    assert response.status_code == 302
    session.rollback()
    assert session.get(Item, item.id).hidden is True
    # A hidden item never enters an issue.
    preview = build.render_preview(session)
    assert "Senior data engineer" not in preview.text
    post(admin_client, f"/admin/items/{item.id}/hidden", {"hidden": "0"})
    session.rollback()
    assert "Senior data engineer" in build.render_preview(session).text


def test_item_with_a_bad_link_is_refused_with_a_message(admin_client, session):
    bad = {**ITEM, "link": "javascript:alert(1)"}
    response = post(admin_client, "/admin/items/new", bad, token_from="/admin/items/new")
    assert response.status_code == 200
    assert "Give a full http:// or https:// address." in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Item)) == 0


def test_hide_returns_only_to_admin_pages(admin_client, session):
    post(admin_client, "/admin/items/new", ITEM, token_from="/admin/items/new")
    item = session.scalars(select(Item)).one()
    back = post(
        admin_client,
        f"/admin/items/{item.id}/hidden",
        {"hidden": "1", "back": "https://evil.example.net/"},
    )
    assert back.location == "/admin/items"


def test_add_refresh_move_and_remove_a_feed(app, admin_client, session, feed_server):
    url = f"{feed_server}/feed.xml"
    response = post(admin_client, "/admin/feeds", {"url": url, "section": "news"})
    assert response.status_code == 302
    feed = session.scalars(select(Feed)).one()
    assert (feed.url, feed.section, feed.last_fetched_at) == (url, "news", None)

    refreshed = post(admin_client, f"/admin/feeds/{feed.id}/refresh", follow_redirects=True)
    assert f"Refresh of {url} queued" in refreshed.get_data(as_text=True)
    assert "refresh queued" in refreshed.get_data(as_text=True)
    refresh_requests_job(app)
    # The pages share this test's session: roll back to see the worker's commit.
    session.rollback()
    page = admin_client.get("/admin/feeds").get_data(as_text=True)
    assert "Tokyo Test News" in page
    assert '<td class="num">2</td>' in page  # item count
    session.rollback()
    assert session.get(Feed, feed.id).last_fetched_at is not None

    moved = post(
        admin_client,
        f"/admin/feeds/{feed.id}/section",
        {f"feed{feed.id}-section": "openings"},
        follow_redirects=True,
    )
    assert "2 waiting items moved" in moved.get_data(as_text=True)
    session.rollback()
    assert {i.section for i in session.scalars(select(Item))} == {"openings"}

    removed = post(admin_client, f"/admin/feeds/{feed.id}/remove", follow_redirects=True)
    assert f"Feed removed: {url}" in removed.get_data(as_text=True)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Feed)) == 0


def test_a_failing_feed_shows_its_error(app, admin_client, session, feed_server):
    url = f"{feed_server}/missing.xml"
    post(admin_client, "/admin/feeds", {"url": url, "section": "news"})
    feed = session.scalars(select(Feed)).one()
    post(admin_client, f"/admin/feeds/{feed.id}/refresh")
    refresh_requests_job(app)
    session.rollback()  # the pages share this test's session: see the worker's commit
    page = admin_client.get("/admin/feeds").get_data(as_text=True)
    assert "HTTP 404 Not Found from" in page, page[page.find("<table") :]


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "/etc/passwd", "javascript:alert(1)", "ftp://example.com/feed"],
)
def test_feeds_accept_only_http_and_https(admin_client, session, url):
    response = post(admin_client, "/admin/feeds", {"url": url, "section": "news"})
    assert response.status_code == 400
    assert "http" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Feed)) == 0


def test_the_same_feed_twice_is_refused_with_the_content_rooms_message(admin_client, session):
    data = {"url": "https://feeds.example.com/rss", "section": "news"}
    post(admin_client, "/admin/feeds", data)
    again = post(admin_client, "/admin/feeds", data)
    assert again.status_code == 400
    assert "already has this URL" in again.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Feed)) == 1
