"""The product's main job through real parts: feeds in, one digest built, mail out over SMTP.

Real feed files (../shared/data/feeds: WordPress RSS, Atom, Japanese RSS 1.0 in EUC-JP, an
undeclared Shift_JIS Atom feed), real SQLite and PostgreSQL, a real SMTP server on loopback,
driven through the same ``flask`` commands an operator types.
"""

import html
import re
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Feed, Issue, Item, Subscriber
from mailer.subscriptions.tokens import make_unsubscribe_token

FEEDS = [
    ("wp-rss2-earthquakenews-wp5.1.xml", "news"),
    ("atom-feedburner-thoughtbot.xml", "news"),
    ("ja-rss1.0-tdiary-eucjp.rdf", "news"),
    ("ja-shiftjis-undeclared-atom.xml", "openings"),
]
# Items each feed gives (as in tests/content/test_feeds_shared.py): the Shift_JIS feed's one
# entry has no link.
ITEMS_PER_FEED = {
    "wp-rss2-earthquakenews-wp5.1.xml": 1,
    "atom-feedburner-thoughtbot.xml": 3,
    "ja-rss1.0-tdiary-eucjp.rdf": 15,
    "ja-shiftjis-undeclared-atom.xml": 0,
}
CONFIRMED = ["ann@example.com", "bob@example.org", "chie@example.jp"]
# Titles that must arrive intact: ASCII, Latin-1 and Japanese decoded from EUC-JP.
KNOWN_TITLES = [
    "Minor earthquake, 3.5 mag was detected near Aris in Greece",
    "Avoiding Out of Memory Crashes on Mobile",
    "PHP 6のUnicodeサポート",
    "18:15〜18:30までサーバーが止まっていました",
]
SHIFT_JIS_TITLE = "DrecomRSSに記事投稿が反映されない"
DESIGN_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
]


@pytest.fixture
def app_config(app_config):
    # Every item of these feeds in one issue, so that each language's titles are checked.
    app_config["MAILER_DIGEST_ITEMS_PER_SECTION"] = 100
    return app_config


def _invoke(runner, *args: str):
    # Like the real `flask` command, which pushes an app context for every command.
    with runner.app.app_context():
        result = runner.invoke(args=list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"flask {' '.join(args)}:\n{result.output}"
    return result


def _load_feeds(runner, feeds_dir) -> None:
    for name, section in FEEDS:
        _invoke(runner, "feeds", "add", str(feeds_dir / name), "--section", section)
    _invoke(runner, "feeds", "refresh")


def _add_subscribers(app, runner, smtp_server) -> None:
    from mailer.delivery.dispatch import send_pending
    from mailer.subscriptions.service import unsubscribe_subscriber

    for address in CONFIRMED:
        _invoke(runner, "subscribers", "add", address, "--confirmed")
    _invoke(runner, "subscribers", "add", "pending@example.com")
    _invoke(runner, "subscribers", "add", "gone@example.com", "--confirmed")
    with app.app_context():
        gone = db.session.scalar(select(Subscriber).where(Subscriber.email == "gone@example.com"))
        unsubscribe_subscriber(db.session, gone, source="test")
        db.session.commit()
    # The pending subscriber's confirmation mail goes out first, as it would have days ago.
    send_pending(app)
    assert [r.rcpt_tos for r in smtp_server.received] == [["pending@example.com"]]
    smtp_server.clear()


def _parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    markup = message.get_body(("html",)).get_content()
    return text, html.unescape(markup)


def _unsubscribe_url(message: EmailMessage) -> str:
    first = re.match(r"\s*<([^>]+)>", str(message["List-Unsubscribe"]))
    assert first, message["List-Unsubscribe"]
    return first.group(1)


def test_feeds_to_inboxes(app, runner, smtp_server, feeds_dir):
    # The shared feeds are snapshots of the past: with the default window every entry would be
    # a new feed's backlog (kept out of the digest); this operator wants their history.
    app.config["MAILER_FEED_BACKLOG_DAYS"] = 365 * 100
    _load_feeds(runner, feeds_dir)
    _add_subscribers(app, runner, smtp_server)

    _invoke(runner, "digest", "build")
    _invoke(runner, "digest", "send")

    with app.app_context():
        issue = db.session.scalars(select(Issue)).one()
        items = db.session.scalars(select(Item).where(Item.issue_id == issue.id)).all()
        subscribers = {s.email: s for s in db.session.scalars(select(Subscriber))}
        feeds = {f.url: (len(f.items), f.last_error) for f in db.session.scalars(select(Feed))}
        secret = app.config["SECRET_KEY"]
        base_url = app.config["MAILER_BASE_URL"]
    by_file = {url.rsplit("/", 1)[-1]: outcome for url, outcome in feeds.items()}
    assert {name: count for name, (count, _error) in by_file.items()} == ITEMS_PER_FEED
    # The undeclared Shift_JIS feed's one entry has no link: it cannot become an item, and the
    # error recorded on its row (the only error) names it, decoded right.
    errors = {name: error for name, (_count, error) in by_file.items() if error}
    assert list(errors) == ["ja-shiftjis-undeclared-atom.xml"]
    assert SHIFT_JIS_TITLE in errors["ja-shiftjis-undeclared-atom.xml"]
    titles = {item.title for item in items}
    assert len(items) == sum(ITEMS_PER_FEED.values())
    assert set(KNOWN_TITLES) <= titles
    assert not any(SHIFT_JIS_TITLE in title for title in titles)

    received = smtp_server.received
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(CONFIRMED)
    assert all(len(r.rcpt_tos) == 1 for r in received), "one message per recipient"
    for arrival in received:
        address = arrival.rcpt_tos[0]
        message = arrival.message()
        for header in DESIGN_HEADERS:
            assert message[header], f"{header} missing in the message to {address}"
        assert message["To"].addresses[0].addr_spec == address
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        subscriber = subscribers[address]
        token = make_unsubscribe_token(secret, subscriber.id, subscriber.version)
        expected_url = f"{base_url}/unsubscribe/{token}"
        assert _unsubscribe_url(message) == expected_url, "https first, this recipient's own"
        assert expected_url.startswith("https://")

        text, markup = _parts(message)
        assert expected_url in text and expected_url in markup, "a visible unsubscribe link"
        for item in items:
            assert item.link.startswith(("http://", "https://")), item.link
            assert item.title in text and item.title in markup, item.title
            assert item.link in text and item.link in markup, item.link
        for other in CONFIRMED:
            if other != address:
                other_id = subscribers[other].id
                other_token = make_unsubscribe_token(secret, other_id, subscribers[other].version)
                assert other_token not in text and other_token not in markup
