"""Issue 12: a new feed's backlog stays out of the digest; an admin may include one item.

The first issue once carried items from 2006 and 2017, and the rest trickled out 10 per
section for weeks. Real database (SQLite and PostgreSQL), feeds read from files, the clock
set by the test.
"""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sqlalchemy import select

from mailer import clock
from mailer.content import feeds
from mailer.digest import build
from mailer.extensions import db
from mailer.models import Item
from tests.support.admin import post, signed_in_client

ADDED = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def _rss(entries: list[tuple[str, datetime]]) -> str:
    items = "".join(
        f"<item><title>{title}</title><link>https://feed.example/{n}</link>"
        f"<pubDate>{format_datetime(date)}</pubDate></item>"
        for n, (title, date) in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Old site</title><link>https://feed.example/</link>{items}</channel></rss>"
    )


def _new_feed(session, tmp_path, entries):
    path = tmp_path / "feed.xml"
    path.write_text(_rss(entries), encoding="utf-8")
    clock.freeze(ADDED)
    feed = feeds.add_feed(session, str(path), "news", allow_local=True)
    session.commit()
    feeds.refresh_feed(session, feed)
    return feed, path


def _pending_titles(session, app) -> set[str]:
    chosen = build.pending_items(session, 10)
    return {item.title for items in chosen.values() for item in items}


def test_a_new_feeds_old_items_are_stored_as_backlog_not_queued(app, session, tmp_path):
    feed, path = _new_feed(
        session,
        tmp_path,
        [
            ("From 2006", datetime(2006, 5, 1, tzinfo=UTC)),
            ("From 2017", datetime(2017, 5, 1, tzinfo=UTC)),
            ("A month old", ADDED - timedelta(days=30)),
            ("Last week", ADDED - timedelta(days=7)),
        ],
    )
    stored = {item.title: item.backlog for item in session.scalars(select(Item))}
    assert stored == {"From 2006": True, "From 2017": True, "A month old": True, "Last week": False}
    assert _pending_titles(session, app) == {"Last week"}

    # Later fetches bring news, whatever its date.
    path.write_text(_rss([("Late find", ADDED - timedelta(days=40))]), encoding="utf-8")
    clock.freeze(ADDED + timedelta(hours=1))
    feeds.refresh_feed(session, feed)
    assert _pending_titles(session, app) == {"Last week", "Late find"}
    issue = build.build_issue(session, period="2026-W50")
    assert {item.title for item in issue.items} == {"Last week", "Late find"}


def test_the_backlog_window_follows_the_setting(app, session, tmp_path):
    app.config["MAILER_FEED_BACKLOG_DAYS"] = 60
    _new_feed(session, tmp_path, [("A month old", ADDED - timedelta(days=30))])
    assert session.scalars(select(Item.backlog)).all() == [False]


def test_an_admin_includes_one_backlog_item_by_hand(app, client, tmp_path):
    admin = signed_in_client(app, client)
    with app.app_context():
        session = db.session
        _new_feed(
            session,
            tmp_path,
            [
                ("From 2017", datetime(2017, 5, 1, tzinfo=UTC)),
                ("From 2006", datetime(2006, 1, 1, tzinfo=UTC)),
            ],
        )
        wanted = session.scalar(select(Item).where(Item.title == "From 2017"))
        page = admin.get("/admin/items").get_data(as_text=True)
        assert page.count(">backlog</span>") == 2
        assert f"/admin/items/{wanted.id}/include" in page

        assert post(admin, f"/admin/items/{wanted.id}/include").status_code == 302
        session.expire_all()
        assert _pending_titles(session, app) == {"From 2017"}
