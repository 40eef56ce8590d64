"""Every real feed in ../shared/data/feeds gives items or a clear error on its Feed row.

Entry counts come from the table in ../shared/data/feeds/README.md; titles and links were read
from the files themselves.
"""

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailer.content import feeds
from mailer.content.parse import parse_feed
from mailer.models import Feed, Item
from tests.support.feeds import FeedServer

NO_LINK = (
    "none of the 1 entries is usable: 1 without an absolute http(s) link (and no site link to "
    'fall back to) (the first is "{title}"); feedparser also reported: character encoding '
    "missing or wrong in the document; read as {encoding}"
)
# file: (entries in the document (README), items stored, error recorded on the Feed row)
EXPECTED = {
    "atom-feedburner-thoughtbot.xml": (3, 3, None),
    "atom-samruby-xhtml-relative.atom": (20, 20, None),
    # Recovered: a bozo document whose one entry has a good link (and no title).
    "bad-corrupted-ampersands.xml": (1, 1, None),
    "bad-empty-document.xml": (
        0,
        0,
        "not an RSS or Atom feed: no feed elements found (not well-formed XML (no element found))",
    ),
    # The README only says "bozo"; feedparser finds one entry with nothing in it.
    "bad-incomplete-cdata.xml": (
        1,
        0,
        "none of the 1 entries is usable: 1 empty (no title, summary or link); feedparser also "
        "reported: not well-formed XML (XML or text declaration not at start of entity)",
    ),
    "bad-not-a-feed.html": (
        0,
        0,
        "not an RSS or Atom feed: no feed elements found (not well-formed XML (mismatched tag))",
    ),
    "bad-truncated-reuters.xml": (
        0,
        0,
        "broken RSS 2.0 feed, no entries could be read: not well-formed XML (no element found)",
    ),
    # Decoded right, but the entry has no link and the feed no site link to fall back to.
    "ja-eucjp-undeclared-rss.xml": (
        1,
        0,
        NO_LINK.format(title="ゲーム三昧な正月", encoding="EUC-JP"),
    ),
    "ja-rss1.0-hatena-diary.xml": (3, 3, None),
    "ja-rss1.0-rdf-bad-date.xml": (2, 2, None),
    "ja-rss1.0-tdiary-eucjp.rdf": (15, 15, None),
    "ja-shiftjis-undeclared-atom.xml": (
        1,
        0,
        NO_LINK.format(title="DrecomRSSに記事投稿が反映されない…", encoding="CP932"),
    ),
    "rss1.0-rdf-craigslist.xml": (25, 25, None),
    # Every other "entry" is an empty shell made by the illegal nesting.
    "rss2-feedburner-illegally-nested.xml": (20, 10, None),
    "rss2-iso8859-1-portuguese.xml": (40, 40, None),
    "rss2-nytimes-categories.xml": (1, 1, None),
    "wp-rss2-arstechnica-wp4.8.xml": (1, 1, None),
    "wp-rss2-earthquakenews-wp5.1.xml": (1, 1, None),
    "wp-rss2-techcrunch-wordpresscom.xml": (20, 20, None),
    "wp-rss2-tenderlovemaking-wp2.7.xml": (10, 10, None),
}
RELATIVE_HREF = re.compile(r'href="(?!https?://|mailto:)')
EVENT_HANDLER = re.compile(r"<[^>]*\son\w+\s*=", re.IGNORECASE)


@pytest.fixture
def app_config(app_config):
    """The FeedServer here listens on 127.0.0.1: allow fetching from loopback."""
    app_config["MAILER_FEED_ALLOW_PRIVATE"] = True
    return app_config


def feed_files(feeds_dir) -> dict:
    return {path.name: path for path in sorted(feeds_dir.iterdir()) if path.suffix != ".md"}


def load(session, feeds_dir, *names: str) -> dict:
    """Add the named shared files as feeds, refresh all; return name -> (feed, result)."""
    files = feed_files(feeds_dir)
    added = {
        name: feeds.add_feed(session, str(files[name]), "news", allow_local=True) for name in names
    }
    session.commit()
    results = {result.feed_id: result for result in feeds.refresh_all(session)}
    return {name: (feed, results[feed.id]) for name, feed in added.items()}


def titles(session, feed) -> list[str]:
    query = select(Item.title).where(Item.feed_id == feed.id).order_by(Item.id)
    return list(session.scalars(query))


def test_every_shared_feed_gives_items_or_a_clear_error(session, feeds_dir):
    files = feed_files(feeds_dir)
    assert set(files) == set(EXPECTED), "a new shared feed file needs its expectation here"
    loaded = load(session, feeds_dir, *files)

    for name, (feed, result) in loaded.items():
        entries, stored, error = EXPECTED[name]
        parsed = parse_feed(files[name].read_bytes(), url=None, content_type=None)
        assert parsed.entry_count == entries, name
        assert (result.new_items, result.error) == (stored, error), name
        assert (feed.last_error, len(titles(session, feed))) == (error, stored), name
        assert feed.last_fetched_at is not None, name
        assert (feed.last_success_at is None) == (error is not None), name
        if error is None:
            assert result.entries == entries, name

    again = feeds.refresh_all(session)
    assert sum(result.new_items for result in again) == 0


def test_japanese_titles_are_decoded_right(session, feeds_dir):
    loaded = load(
        session,
        feeds_dir,
        "ja-rss1.0-hatena-diary.xml",
        "ja-rss1.0-tdiary-eucjp.rdf",
        "ja-rss1.0-rdf-bad-date.xml",
    )
    hatena, _ = loaded["ja-rss1.0-hatena-diary.xml"]
    assert hatena.title == "sampleの日記"
    assert titles(session, hatena) == ["今日のできごと", "今日の買い物", "記念撮影をしたよ"]
    tdiary, _ = loaded["ja-rss1.0-tdiary-eucjp.rdf"]  # declared EUC-JP
    assert tdiary.title == "いしなお!"
    assert titles(session, tdiary)[:3] == [
        "2005-09-06のツッコミ[6] (麻生)",
        "PHP 6のUnicodeサポート",
        "そういや",
    ]
    first = session.scalar(select(Item).where(Item.feed_id == tdiary.id).order_by(Item.id))
    assert first.link == "http://tdiary.ishinao.net/20050906.html#c06"
    assert first.published_at == datetime(2006, 8, 19, 13, 25, 24, tzinfo=UTC)  # +09:00


def test_undeclared_eucjp_and_shiftjis_decode_from_a_file_and_over_http(feeds_dir):
    files = feed_files(feeds_dir)
    expected = {
        "ja-eucjp-undeclared-rss.xml": ("ゲーム三昧な正月", "EUC-JP"),
        "ja-shiftjis-undeclared-atom.xml": ("DrecomRSSに記事投稿が反映されない…", "CP932"),
    }
    for name, (title, encoding) in expected.items():
        body = files[name].read_bytes()
        # A file, and HTTP responses whose Content-Type names no charset (RFC 7303 §3).
        for content_type in (None, "application/xml", "text/xml", "application/rss+xml"):
            parsed = parse_feed(body, url="https://feeds.example/ja", content_type=content_type)
            assert ([e.title for e in parsed.entries], parsed.encoding) == ([title], encoding)


def test_relative_links_become_absolute(session, feeds_dir):
    loaded = load(session, feeds_dir, "atom-samruby-xhtml-relative.atom")
    feed, _ = loaded["atom-samruby-xhtml-relative.atom"]
    stored = session.scalars(select(Item).where(Item.feed_id == feed.id).order_by(Item.id)).all()
    # A local file has no URL: its rel="self" link is the base.
    assert feed.site_url == "http://intertwingly.net/blog/"
    assert stored[0].link == "http://intertwingly.net/blog/2012/07/16/Inhibiting-Suspend"
    assert all(item.link.startswith("http://intertwingly.net/blog/2012/") for item in stored)
    assert not [item.title for item in stored if RELATIVE_HREF.search(item.summary_html)]
    assert "<svg" not in stored[0].summary_html and "style=" not in stored[0].summary_html


def test_relative_links_resolve_against_the_url_the_feed_came_from(session, feeds_dir):
    files = feed_files(feeds_dir)
    with FeedServer() as server:
        for name in ("atom-samruby-xhtml-relative.atom", "ja-rss1.0-rdf-bad-date.xml"):
            body = files[name].read_bytes()
            server.routes[f"/{name}"] = (200, {"Content-Type": "application/xml"}, body)
        samruby = feeds.add_feed(session, server.url("/atom-samruby-xhtml-relative.atom"), "news")
        rdf = feeds.add_feed(session, server.url("/ja-rss1.0-rdf-bad-date.xml"), "news")
        feeds.refresh_all(session)
        base = server.url("")
    assert titles(session, samruby)[0] == "Inhibiting Suspend"
    first = session.scalar(select(Item).where(Item.feed_id == samruby.id).order_by(Item.id))
    assert first.link == f"{base}/blog/2012/07/16/Inhibiting-Suspend"
    links = session.scalars(select(Item.link).where(Item.feed_id == rdf.id).order_by(Item.id))
    # "記事1のURL" is a relative reference: resolved against the feed's URL, then UTF-8 escaped.
    assert list(links) == [
        f"{base}/%E8%A8%98%E4%BA%8B1%E3%81%AEURL",
        f"{base}/%E8%A8%98%E4%BA%8B2%E3%81%AEURL",
    ]


def test_non_url_links_fall_back_to_the_site_link(session, feeds_dir):
    loaded = load(session, feeds_dir, "ja-rss1.0-rdf-bad-date.xml")
    feed, result = loaded["ja-rss1.0-rdf-bad-date.xml"]
    stored = session.scalars(select(Item).where(Item.feed_id == feed.id).order_by(Item.id)).all()
    assert [(i.title, i.link, i.dedupe_key) for i in stored] == [
        ("記事1のタイトル", "http://www.example.com/main.html", "記事1のURL"),
        ("記事2のタイトル", "http://www.example.com/main.html", "記事2のURL"),
    ]
    # Item 2's malformed "+00:0" offset is read leniently as UTC.
    assert [i.published_at for i in stored] == [
        datetime(2017, 6, 13, 9, 0, tzinfo=UTC),
        datetime(2017, 6, 13, 3, 18, tzinfo=UTC),
    ]
    assert result.error is None


def test_lenient_and_recovered_feeds_keep_their_good_entries(session, feeds_dir):
    loaded = load(
        session,
        feeds_dir,
        "bad-corrupted-ampersands.xml",
        "rss2-feedburner-illegally-nested.xml",
        "rss2-iso8859-1-portuguese.xml",
        "wp-rss2-techcrunch-wordpresscom.xml",
    )
    ampersands, result = loaded["bad-corrupted-ampersands.xml"]
    (item,) = session.scalars(select(Item).where(Item.feed_id == ampersands.id)).all()
    assert (item.link, item.title) == ("http://link/get?a=1&b=2", "http://link/get?a=1&b=2")
    assert result.warning == "not well-formed XML (unclosed token)"

    nested, result = loaded["rss2-feedburner-illegally-nested.xml"]
    assert result.skipped == {"empty (no title, summary or link)": 10}
    assert titles(session, nested)[0] == "My Professional Armchair Analysis of CES"

    portuguese, _ = loaded["rss2-iso8859-1-portuguese.xml"]
    assert portuguese.title == "Jornal de Notícias - Últimas Notícias"
    assert titles(session, portuguese)[0] == "Mãe de utente é a nova presidente da Raríssimas"

    techcrunch, result = loaded["wp-rss2-techcrunch-wordpresscom.xml"]
    # The blank line before "<?xml" no longer makes the document bozo.
    assert (result.warning, result.new_items) == (None, 20)
    assert titles(session, techcrunch)[0] == (
        "Angie’s List Sets Price Range IPO At $11 To $13 Per Share; Valued At Over $600M"
    )


@pytest.mark.parametrize(
    "name", ["wp-rss2-techcrunch-wordpresscom.xml", "ja-rss1.0-hatena-diary.xml"]
)
def test_shared_summaries_are_sanitized(session, feeds_dir, name):
    loaded = load(session, feeds_dir, name)
    feed, _ = loaded[name]
    for item in session.scalars(select(Item).where(Item.feed_id == feed.id)):
        html = item.summary_html
        for banned in ("<img", "<script", "<style", "<iframe", "style=", "class="):
            assert banned not in html, (item.title, banned)
        assert not EVENT_HANDLER.search(html), item.title
        assert not RELATIVE_HREF.search(html), item.title
    assert session.get(Feed, feed.id).last_error is None
