"""The content room: fetch (real HTTP on loopback), parse, sanitize, dedupe, items, demo, CLI."""

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import func, select

from mailer import clock
from mailer.content import demo, feeds, items
from mailer.content.errors import FeedError, ItemError
from mailer.content.sanitize import absolute_http_url, clean_html
from mailer.models import Feed, Issue, Item
from tests.support.feeds import FeedServer

REL = 'rel="noopener noreferrer nofollow"'


# --- helpers: feed documents and the real HTTP server's fixture ------------------------------


def rss(entries: list[dict], *, title="Test feed", link="https://feeds.example/") -> str:
    """An RSS 2.0 document; each entry dict may have title, link, guid, date, summary, extra."""
    parts = []
    for entry in entries:
        fields = [f"<title>{escape(entry['title'])}</title>"] if "title" in entry else []
        if "link" in entry:
            fields.append(f"<link>{escape(entry['link'])}</link>")
        if "guid" in entry:
            fields.append(f'<guid isPermaLink="false">{escape(entry["guid"])}</guid>')
        if "date" in entry:
            fields.append(f"<pubDate>{format_datetime(entry['date'])}</pubDate>")
        if "summary" in entry:
            fields.append(f"<description>{escape(entry['summary'])}</description>")
        fields.append(entry.get("extra", ""))
        parts.append("<item>" + "".join(fields) + "</item>")
    channel_link = f"<link>{escape(link)}</link>" if link else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title>{channel_link}{''.join(parts)}</channel></rss>"
    )


def write_feed(tmp_path, name: str, document: str, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(document.encode(encoding))
    return path


@pytest.fixture
def app_config(app_config):
    """The feed servers here listen on 127.0.0.1: allow fetching from loopback."""
    app_config["MAILER_FEED_ALLOW_PRIVATE"] = True
    return app_config


@pytest.fixture
def feed_server():
    with FeedServer() as server:
        yield server


def conditional(body: bytes, etag='"v1"', last_modified="Sat, 28 Nov 2026 10:00:00 GMT"):
    """A route that honours If-None-Match / If-Modified-Since like a real server."""

    def respond(request):
        if request.headers.get("If-None-Match") == etag or (
            request.headers.get("If-Modified-Since") == last_modified
        ):
            return 304, {"ETag": etag}, b""
        headers = {
            "Content-Type": "application/rss+xml",
            "ETag": etag,
            "Last-Modified": last_modified,
        }
        return 200, headers, body

    return respond


def count_items(session, feed=None) -> int:
    query = select(func.count()).select_from(Item)
    if feed is not None:
        query = query.where(Item.feed_id == feed.id)
    return session.scalar(query)


def items_of(session, feed) -> list[Item]:
    return session.scalars(select(Item).where(Item.feed_id == feed.id).order_by(Item.id)).all()


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


# --- sanitizing and links (no database) ---------------------------------------------------


@pytest.mark.nodb
def test_clean_html_removes_active_content_and_keeps_absolute_links():
    dirty = (
        '<p onclick="steal()">Hello <a href="javascript:alert(1)">bad</a> '
        '<a href="/story" target="_blank">story</a><script>alert(1)</script>'
        "<style>p{color:red}</style><iframe src='https://evil.example/'>frame</iframe>"
        '<img src="https://t.example/p.gif" onerror="x()"><span style="color:red">red</span> '
        '<a href="mailto:desk@news.example">mail</a><!-- note --></p>'
    )
    assert clean_html(dirty, "https://news.example/feed/") == (
        f'<p>Hello <a {REL}>bad</a> <a href="https://news.example/story" {REL}>story</a>red '
        f'<a href="mailto:desk@news.example" {REL}>mail</a></p>'
    )
    # Without a base a relative link cannot be made absolute: the href goes, the text stays.
    assert clean_html('<a href="story.html">story</a>') == f"<a {REL}>story</a>"


@pytest.mark.nodb
def test_absolute_http_url_accepts_web_urls_only_and_encodes_iris():
    assert absolute_http_url("https://例え.jp/記事?q=日本") == (
        "https://xn--r8jz45g.jp/%E8%A8%98%E4%BA%8B?q=%E6%97%A5%E6%9C%AC"
    )
    assert absolute_http_url("記事1のURL", "https://feeds.example/ja/rss") == (
        "https://feeds.example/ja/%E8%A8%98%E4%BA%8B1%E3%81%AEURL"
    )
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "/relative", "記事1のURL", "", None):
        assert absolute_http_url(bad) is None


# --- adding and removing feeds ------------------------------------------------------------


def test_add_feed_accepts_web_urls_and_local_files_only_when_allowed(session, tmp_path):
    feed = feeds.add_feed(session, " https://news.example/feed.xml ", "news")
    assert (feed.url, feed.section) == ("https://news.example/feed.xml", "news")
    path = write_feed(tmp_path, "f.xml", rss([]))
    local = feeds.add_feed(session, str(path), "openings", allow_local=True)
    assert local.url == str(path.resolve())

    cases = [
        (("ftp://files.example/feed.xml", "news"), {}, "only http:// and https://"),
        ((str(path), "news"), {}, "only http:// and https://"),  # the web form's case
        ((str(tmp_path / "missing.xml"), "news"), {"allow_local": True}, "no such file"),
        (("https://news.example/feed.xml", "news"), {}, f"feed {feed.id} already has this URL"),
        (("https://other.example/feed", "jobs"), {}, "section must be one of news, openings"),
        (("   ", "news"), {}, "the feed URL is empty"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(FeedError, match=message):
            feeds.add_feed(session, *args, **kwargs)
    assert session.scalar(select(func.count()).select_from(Feed)) == 2


def test_remove_feed_keeps_items_already_sent_in_an_issue(session, tmp_path):
    path = write_feed(
        tmp_path,
        "f.xml",
        rss(
            [{"title": f"T{i}", "link": f"https://n.example/{i}", "guid": f"g{i}"} for i in (1, 2)]
        ),
    )
    feed = feeds.add_feed(session, str(path), "news", allow_local=True)
    feeds.refresh_feed(session, feed)
    sent, waiting = items_of(session, feed)
    issue = Issue(number=1, period="2026-W48", subject="Issue 1")
    session.add(issue)
    session.flush()
    sent.issue_id = issue.id
    session.commit()

    assert feeds.remove_feed(session, feed) == 1
    session.commit()
    remaining = session.scalars(select(Item)).all()
    assert [(item.title, item.feed_id, item.issue_id) for item in remaining] == [
        ("T1", None, issue.id)
    ]


def test_set_feed_section_moves_waiting_items_only(session, tmp_path):
    path = write_feed(tmp_path, "f.xml", rss([{"title": "Job", "link": "https://j.example/1"}]))
    feed = feeds.add_feed(session, str(path), "news", allow_local=True)
    feeds.refresh_feed(session, feed)
    assert feeds.set_feed_section(session, feed, "openings") == 1
    session.commit()
    assert [item.section for item in items_of(session, feed)] == ["openings"]
    with pytest.raises(FeedError, match="section must be one of"):
        feeds.set_feed_section(session, feed, "sports")


# --- refresh: dedupe, dates, links, sections ----------------------------------------------


def test_dedupe_across_refreshes(session, tmp_path):
    entries = [
        {"title": f"Story {i}", "link": f"https://n.example/{i}", "guid": f"story-{i}"}
        for i in (1, 2, 3)
    ]
    path = write_feed(tmp_path, "f.xml", rss(entries))
    feed = feeds.add_feed(session, str(path), "news", allow_local=True)

    first = feeds.refresh_feed(session, feed)
    second = feeds.refresh_feed(session, feed)
    assert (first.new_items, first.known, first.error) == (3, 0, None)
    assert (second.new_items, second.known, second.error) == (0, 3, None)

    write_feed(
        tmp_path, "f.xml", rss([*entries, {"title": "Story 4", "link": "https://n.example/4"}])
    )
    third = feeds.refresh_feed(session, feed)
    assert (third.new_items, third.known) == (1, 3)
    assert [item.dedupe_key for item in items_of(session, feed)] == [
        "story-1",
        "story-2",
        "story-3",
        "sha256:" + hashlib.sha256(b"https://n.example/4\nStory 4").hexdigest(),
    ]


def test_guid_repeated_within_a_fetch_falls_back_to_link_and_title(session, tmp_path):
    long_guid = "urn:example:" + "x" * 300
    entries = [
        {"title": "A", "link": "https://n.example/a", "guid": "same"},
        {"title": "B", "link": "https://n.example/b", "guid": "same"},
        {"title": "C", "link": "https://n.example/c", "guid": long_guid},
        {"title": "A", "link": "https://n.example/a"},  # the same story again, without guid
    ]
    path = write_feed(tmp_path, "f.xml", rss(entries))
    feed = feeds.add_feed(session, str(path), "news", allow_local=True)

    result = feeds.refresh_feed(session, feed)
    assert (result.new_items, result.skipped) == (3, {"repeated within this fetch": 1})
    keys = [item.dedupe_key for item in items_of(session, feed)]
    assert keys == [
        "sha256:" + hashlib.sha256(b"https://n.example/a\nA").hexdigest(),
        "sha256:" + hashlib.sha256(b"https://n.example/b\nB").hexdigest(),
        "guid-sha256:" + hashlib.sha256(long_guid.encode()).hexdigest(),
    ]
    assert feeds.refresh_feed(session, feed).new_items == 0


def test_dates_are_honest(session, tmp_path):
    clock.freeze(NOW)
    entries = [
        {
            "title": "Past",
            "link": "https://n.example/1",
            "date": datetime(2026, 11, 20, 9, tzinfo=UTC),
        },
        {
            "title": "Future",
            "link": "https://n.example/2",
            "date": datetime(2035, 1, 1, tzinfo=UTC),
        },
        {"title": "Epoch", "link": "https://n.example/3", "date": datetime(1970, 1, 1, tzinfo=UTC)},
        {"title": "Undated", "link": "https://n.example/4"},
    ]
    path = write_feed(tmp_path, "f.xml", rss(entries))
    feed = feeds.add_feed(session, str(path), "news", allow_local=True)
    feeds.refresh_feed(session, feed)
    stored = items_of(session, feed)
    assert [(item.title, item.published_at) for item in stored] == [
        ("Past", datetime(2026, 11, 20, 9, tzinfo=UTC)),
        ("Future", NOW),
        ("Epoch", NOW),
        ("Undated", NOW),
    ]
    assert {item.first_seen_at for item in stored} == {NOW}
    assert (feed.last_fetched_at, feed.last_success_at, feed.last_error) == (NOW, NOW, None)


def test_entries_without_a_usable_link_fall_back_or_are_skipped(session, tmp_path):
    entries = [
        {"title": "記事1のタイトル", "link": "記事1のURL", "guid": "記事1のURL"},
        {"summary": "<p>Only a <b>summary</b> here</p>", "guid": "g2"},
        {"summary": "   "},
    ]
    with_site = write_feed(tmp_path, "site.xml", rss(entries, link="https://site.example/main"))
    feed = feeds.add_feed(session, str(with_site), "news", allow_local=True)
    result = feeds.refresh_feed(session, feed)
    assert result.skipped == {"empty (no title, summary or link)": 1}
    assert [(i.title, i.link) for i in items_of(session, feed)] == [
        ("記事1のタイトル", "https://site.example/main"),
        ("Only a summary here", "https://site.example/main"),
    ]

    no_site = write_feed(tmp_path, "nosite.xml", rss(entries[:1], link=None))
    bare = feeds.add_feed(session, str(no_site), "news", allow_local=True)
    result = feeds.refresh_feed(session, bare)
    assert result.error == (
        "none of the 1 entries is usable: 1 without an absolute http(s) link (and no site link "
        'to fall back to) (the first is "記事1のタイトル")'
    )
    assert bare.last_error == result.error
    assert count_items(session, bare) == 0


def test_openings_fields_come_from_categories(session, tmp_path):
    extra = (
        '<category domain="company">Sakura Language School</category>'
        "<category>location: Osaka</category><category domain='job_type'>Full-time</category>"
        "<category>Education</category>"
    )
    wp_job_manager = (
        "<job_listing:company>Example K.K.</job_listing:company>"
        "<job_listing:location>Tokyo</job_listing:location>"
        "<job_listing:job_type>Contract</job_listing:job_type>"
    )
    document = rss(
        [
            {"title": "Teacher", "link": "https://j.example/1", "extra": extra},
            {"title": "Engineer", "link": "https://j.example/2", "extra": wp_job_manager},
        ]
    ).replace("<rss ", '<rss xmlns:job_listing="https://wpjobmanager.com" ')
    path = write_feed(tmp_path, "jobs.xml", document)
    openings = feeds.add_feed(session, str(path), "openings", allow_local=True)
    feeds.refresh_feed(session, openings)
    assert [
        (i.section, i.company, i.location, i.job_type) for i in items_of(session, openings)
    ] == [
        ("openings", "Sakura Language School", "Osaka", "Full-time"),
        ("openings", "Example K.K.", "Tokyo", "Contract"),
    ]

    news_path = write_feed(tmp_path, "news.xml", document.replace("j.example", "n.example"))
    news = feeds.add_feed(session, str(news_path), "news", allow_local=True)
    feeds.refresh_feed(session, news)
    assert {(i.section, i.company, i.location) for i in items_of(session, news)} == {
        ("news", None, None)
    }


def test_summaries_are_sanitized_and_links_resolved_against_the_final_url(session, feed_server):
    summary = (
        '<p onclick="x()">Read <a href="/stories/1">more</a> <a href="javascript:alert(1)">x</a>'
        "<script>alert(1)</script><style>p{}</style><iframe src='https://e.example'></iframe></p>"
    )
    body = rss([{"title": "S", "link": "/stories/1", "guid": "s1", "summary": summary}], link=None)
    feed_server.routes["/old"] = (301, {"Location": feed_server.url("/feeds/news.xml")}, b"")
    feed_server.routes["/feeds/news.xml"] = (
        200,
        {"Content-Type": "application/rss+xml"},
        body.encode(),
    )
    feed = feeds.add_feed(session, feed_server.url("/old"), "news")

    assert feeds.refresh_feed(session, feed).new_items == 1
    (item,) = items_of(session, feed)
    story = feed_server.url("/stories/1")
    assert item.link == story
    assert item.summary_html == f'<p>Read <a href="{story}" {REL}>more</a> <a {REL}>x</a></p>'


# --- HTTP: conditional GET, errors, limits, charsets -------------------------------------


def test_conditional_get_second_refresh_is_a_304_and_adds_nothing(session, feed_server):
    clock.freeze(NOW)
    body = rss([{"title": "T", "link": "https://n.example/1", "guid": "t"}]).encode()
    feed_server.routes["/feed"] = conditional(body)
    feed = feeds.add_feed(session, feed_server.url("/feed"), "news")

    first = feeds.refresh_feed(session, feed)
    assert (first.new_items, first.not_modified) == (1, False)
    assert (feed.etag, feed.last_modified) == ('"v1"', "Sat, 28 Nov 2026 10:00:00 GMT")

    second = feeds.refresh_feed(session, feed)
    assert (second.new_items, second.not_modified, second.error) == (0, True, None)
    first_headers, second_headers = feed_server.headers_of("/feed")
    assert "If-None-Match" not in first_headers
    assert second_headers["If-None-Match"] == '"v1"'
    assert second_headers["If-Modified-Since"] == "Sat, 28 Nov 2026 10:00:00 GMT"
    assert second_headers["User-Agent"].startswith("japan-weekly-mailer/")
    assert "https://news.example.com" in second_headers["User-Agent"]
    assert count_items(session, feed) == 1
    assert (feed.last_error, feed.last_success_at) == (None, NOW)


def test_server_error_and_timeout_are_recorded_and_other_feeds_refresh(app, session, feed_server):
    app.config["MAILER_FEED_TIMEOUT"] = 0.5
    body = rss([{"title": "Good", "link": "https://n.example/good"}]).encode()
    feed_server.routes["/broken"] = (500, {"Content-Type": "text/plain"}, b"oops")

    def never_answers(request):
        feed_server.release.wait(30)
        return 200, {}, body

    feed_server.routes["/slow"] = never_answers
    feed_server.routes["/good"] = (200, {"Content-Type": "application/rss+xml"}, body)
    broken = feeds.add_feed(session, feed_server.url("/broken"), "news")
    slow = feeds.add_feed(session, feed_server.url("/slow"), "news")
    good = feeds.add_feed(session, feed_server.url("/good"), "news")
    session.commit()

    results = {result.feed_id: result for result in feeds.refresh_all(session)}
    feed_server.release.set()
    assert results[broken.id].error == (
        f"HTTP 500 Internal Server Error from {feed_server.url('/broken')}"
    )
    assert results[slow.id].error == f"timed out after 0.5 s fetching {feed_server.url('/slow')}"
    assert (results[good.id].new_items, results[good.id].error) == (1, None)
    assert broken.last_error == results[broken.id].error
    assert slow.last_error == results[slow.id].error
    assert broken.last_fetched_at is not None and broken.last_success_at is None
    assert good.last_error is None


def test_a_fixed_feed_clears_its_error(session, feed_server):
    feed_server.routes["/feed"] = (200, {"Content-Type": "text/html"}, b"<html><p>nope</p></html>")
    feed = feeds.add_feed(session, feed_server.url("/feed"), "news")
    assert feeds.refresh_feed(session, feed).error.startswith("not an RSS or Atom feed")
    assert feed.etag is None
    body = rss([{"title": "Back", "link": "https://n.example/back"}]).encode()
    feed_server.routes["/feed"] = (200, {"Content-Type": "application/rss+xml"}, body)
    assert feeds.refresh_feed(session, feed).new_items == 1
    assert feed.last_error is None


def test_size_cap_and_unreachable_host_are_errors(app, session, feed_server):
    app.config["MAILER_FEED_MAX_BYTES"] = 1000
    body = rss([{"title": "x" * 2000, "link": "https://n.example/big"}]).encode()
    feed_server.routes["/big"] = (200, {"Content-Type": "application/rss+xml"}, body)
    big = feeds.add_feed(session, feed_server.url("/big"), "news")
    assert feeds.refresh_feed(session, big).error == (
        f"the feed is larger than 1000 bytes ({len(body)} declared)"
    )
    feed_server.routes["/moved"] = (302, {"Location": "ftp://files.example/feed"}, b"")
    moved = feeds.add_feed(session, feed_server.url("/moved"), "news")
    assert (
        "redirect to ftp://files.example/feed refused" in feeds.refresh_feed(session, moved).error
    )

    # A port that nobody listens on: bind one, note it, close it.
    with FeedServer() as closed:
        dead_url = closed.url("/feed")
    dead = feeds.add_feed(session, dead_url, "news")
    assert feeds.refresh_feed(session, dead).error.startswith(f"could not fetch {dead_url}: ")
    assert count_items(session) == 0


def test_charset_from_content_type_header_and_chardet(session, feed_server):
    portuguese = rss([{"title": "Notícias de Ação", "link": "https://n.example/pt"}])
    undeclared = portuguese.replace(' encoding="utf-8"', "")
    feed_server.routes["/pt"] = (
        200,
        {"Content-Type": "application/rss+xml; charset=iso-8859-1"},
        undeclared.encode("iso-8859-1"),
    )
    summary = "大阪の語学学校で、子どもと大人に英語を教える講師を募集しています。週五日勤務です。"
    japanese = rss(
        [{"title": "大阪で英語講師を募集", "link": "https://n.example/ja", "summary": summary}]
    )
    feed_server.routes["/ja"] = (
        200,
        {"Content-Type": "text/xml"},  # no charset, no XML declaration: chardet decides
        japanese.replace(' encoding="utf-8"', "").encode("euc-jp"),
    )
    pt = feeds.add_feed(session, feed_server.url("/pt"), "news")
    ja = feeds.add_feed(session, feed_server.url("/ja"), "news")
    feeds.refresh_all(session)
    assert [item.title for item in items_of(session, pt)] == ["Notícias de Ação"]
    assert [item.title for item in items_of(session, ja)] == ["大阪で英語講師を募集"]


# --- items written by admins --------------------------------------------------------------


def test_create_update_and_hide_items(session):
    clock.freeze(NOW)
    item = items.create_item(
        session,
        section="openings",
        title="  Backend engineer, Tokyo ",
        link="https://jobs.example/backend",
        summary=(
            '<p>Python <script>x()</script><a href="https://jobs.example/apply" '
            'onclick="y()">apply</a></p>'
        ),
        company="Example K.K.",
        location="Tokyo",
        job_type="Full-time",
    )
    session.commit()
    assert (item.feed_id, item.section, item.title, item.published_at, item.hidden) == (
        None,
        "openings",
        "Backend engineer, Tokyo",
        NOW,
        False,
    )
    assert item.dedupe_key.startswith("admin:")
    assert (
        item.summary_html == f'<p>Python <a href="https://jobs.example/apply" {REL}>apply</a></p>'
    )

    items.update_item(session, item, title="Backend engineer (Python), Tokyo", location=None)
    assert (item.title, item.location, item.company) == (
        "Backend engineer (Python), Tokyo",
        None,
        "Example K.K.",
    )
    items.set_hidden(session, item, True)
    session.commit()
    assert session.get(Item, item.id).hidden is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"section": "sports"}, "section must be one of news, openings"),
        ({"title": "   "}, "the title is empty"),
        ({"link": "/relative"}, "the link must be an absolute http:// or https:// URL"),
        ({"link": "javascript:alert(1)"}, "the link must be an absolute http"),
        ({"published_at": datetime(2026, 1, 1)}, "needs a time zone"),
        ({"job_type": "x" * 129}, "job type is longer than 128 characters"),
    ],
)
def test_item_validation_errors(session, fields, message):
    values = {"section": "news", "title": "T", "link": "https://n.example/t", **fields}
    with pytest.raises(ItemError, match=message):
        items.create_item(session, **values)
    assert count_items(session) == 0


def test_update_item_refuses_unknown_fields(session):
    item = items.create_item(session, section="news", title="T", link="https://n.example/t")
    with pytest.raises(ItemError, match="cannot be changed: dedupe_key, hidden"):
        items.update_item(session, item, hidden=True, dedupe_key="x")


# --- the demo feed ------------------------------------------------------------------------


def test_demo_feed_loads_once_with_news_and_openings(session):
    feed = demo.load_demo_feed(session)
    assert feed is not None and feed.last_error is None
    assert feed.title == "Japan Weekly demo feed"
    stored = items_of(session, feed)
    assert len(stored) == 8
    assert {item.link.split("/")[3] for item in stored} == {"news", "jobs"}
    openings = {
        i.title: (i.company, i.location, i.job_type) for i in stored if i.section == "openings"
    }
    assert openings["Bilingual English teacher, Osaka / バイリンガル英語講師（大阪）"] == (
        "Sakura Language School",
        "Osaka",
        "Full-time",
    )
    assert openings["Backend engineer (Python, PostgreSQL), Tokyo"] == (
        "Example Systems K.K.",
        "Tokyo",
        "Full-time",
    )
    assert len(openings) == 4
    assert sum(1 for item in stored if item.section == "news") == 4
    assert demo.load_demo_feed(session) is None
    assert session.scalar(select(func.count()).select_from(Feed)) == 1


# --- the command line ---------------------------------------------------------------------


def test_cli_feeds_add_refresh_list_remove(runner, session, tmp_path):
    path = write_feed(
        tmp_path,
        "jobs.xml",
        rss(
            [{"title": "Teacher in Osaka", "link": "https://j.example/1", "guid": "j1"}],
            title="Jobs in Japan",
        ),
    )
    result = runner.invoke(args=["feeds", "add", str(path), "--section", "openings"])
    assert result.exit_code == 0, result.output
    assert f"Added feed 1 (openings): {path.resolve()}" in result.output

    result = runner.invoke(args=["feeds", "refresh"])
    assert result.exit_code == 0, result.output
    assert "feed 1 (Jobs in Japan): 1 new, 0 already stored, 0 skipped (of 1 entries)" in (
        result.output
    )
    assert "1 feeds refreshed: 1 new items, 0 failed." in result.output

    result = runner.invoke(args=["feeds", "list"])
    assert result.exit_code == 0
    assert "openings" in result.output and "1 items" in result.output
    assert "title: Jobs in Japan" in result.output

    result = runner.invoke(args=["feeds", "remove", "1", "--yes"])
    assert result.exit_code == 0
    assert "Removed feed 1 and 1 items that were in no issue yet." in result.output
    assert runner.invoke(args=["feeds", "remove", "1", "--yes"]).output.endswith(
        "Error: there is no feed 1\n"
    )


def test_cli_rejects_bad_section_and_url(runner, session, tmp_path):
    result = runner.invoke(args=["feeds", "add", "https://n.example/feed", "--section", "jobs"])
    assert result.exit_code == 2
    assert "Invalid value for '--section': 'jobs' is not one of 'news', 'openings'." in (
        result.output
    )
    result = runner.invoke(args=["feeds", "add", "gopher://n.example/feed"])
    assert result.exit_code == 2
    assert "only http:// and https:// feed URLs are accepted" in result.output
    result = runner.invoke(args=["feeds", "add", str(tmp_path / "nope.xml")])
    assert result.exit_code == 2
    assert "no such file" in result.output
    assert session.scalar(select(func.count()).select_from(Feed)) == 0


def test_cli_refresh_reports_errors_and_can_fail(runner, session, tmp_path):
    path = write_feed(tmp_path, "bad.xml", "<html><body>not a feed</body></html>")
    runner.invoke(args=["feeds", "add", str(path)])
    result = runner.invoke(args=["feeds", "refresh"])
    assert result.exit_code == 0
    assert f"feed 1 ({path.resolve()}): ERROR: not an RSS or Atom feed" in result.output
    assert runner.invoke(args=["feeds", "refresh", "--fail-on-error"]).exit_code == 1


def test_cli_items_add_and_hide(runner, session):
    args = ["items", "add", "--section", "news", "--title", "Kyoto leaves", "--link"]
    result = runner.invoke(args=[*args, "https://n.example/kyoto"])
    assert result.exit_code == 0, result.output
    assert "Added item 1 (news): Kyoto leaves" in result.output
    result = runner.invoke(args=[*args, "not a url"])
    assert result.exit_code == 1
    assert "the link must be an absolute http:// or https:// URL" in result.output

    result = runner.invoke(args=["items", "hide", "1"])
    assert (result.exit_code, result.output) == (0, "Item 1 is now hidden: Kyoto leaves\n")
    assert session.get(Item, 1).hidden is True
    assert runner.invoke(args=["items", "hide", "99"]).exit_code == 1
