"""Issue 11, item 1: feed text can never fill in the per-recipient slots.

A feed item whose link, title and summary carry the markers the delivery room fills per
recipient (``@@UNSUBSCRIBE_URL@@``, ``@@RECIPIENT@@``, ``@@PREFERENCES_URL@@``) is sent
through the real engine to a real SMTP server on loopback; what arrived must hold the
subscriber's unsubscribe token and address only where our templates put them, never in the
feed's link (where a click would hand both to the feed's host). SQLite and PostgreSQL.
"""

import re
from email import message_from_bytes, policy

from mailer.delivery.dispatch import send_pending, start_issue
from mailer.digest.build import build_issue
from mailer.digest.render import MARKERS, inert, inert_link
from mailer.subscriptions import service

EVIL = "https://evil.example/steal?u=@@UNSUBSCRIBE_URL@@&who=@@RECIPIENT@@&p=@@PREFERENCES_URL@@"


def test_markers_in_feed_text_reach_no_reader_and_no_feed_host(
    app, session, smtp_server, make_item
):
    service.add_subscriber(session, "reader@example.com", confirmed=True, source="cli")
    make_item(
        title="Win a prize @@RECIPIENT@@ @@UNSUBSCRIBE_URL@@",
        link=EVIL,
        summary_html="<p>Click @@UNSUBSCRIBE_URL@@ now, @@RECIPIENT@@.</p>",
    )
    make_item(section="openings", title="Engineer in Osaka")
    session.commit()
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number)

    assert send_pending(app).sent == 1

    (received,) = smtp_server.received
    message = message_from_bytes(received.data, policy=policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    token_url = re.search(r"<(https://[^>]+/unsubscribe/[^>]+)>", message["List-Unsubscribe"])[1]
    token = token_url.rsplit("/", 1)[1]
    for part in (html, text):
        assert not any(marker in part for marker in MARKERS)  # every slot was ours, filled
        links = re.findall(r"https?://[^\s\"'<>]+", part)
        evil = [link for link in links if "evil.example" in link]
        assert evil, "the feed's link is still there"
        assert all(token not in link and "reader%40" not in link for link in evil)
        assert all("reader@example.com" not in link for link in evil)
    # The title is shown as the feed wrote it (an invisible word joiner breaks each "@@").
    assert "Win a prize @\u2060@RECIPIENT@\u2060@" in text.replace("\n", " ")


def test_inert_breaks_every_marker_and_keeps_other_text():
    for marker in MARKERS:
        assert marker not in inert(f"x {marker} y")
        assert marker not in inert_link(f"https://a.example/?q={marker}")
    assert inert("mail me at a@b.example") == "mail me at a@b.example"
    assert inert_link("https://a.example/@user") == "https://a.example/@user"


def test_a_title_with_both_at_signs_and_braces_does_not_block_the_send(
    app, session, smtp_server, make_item
):
    # Found by a fresh attacker's test: "@@" (made inert) next to "{{" failed preflight.
    service.add_subscriber(session, "reader@example.com", confirmed=True, source="cli")
    make_item(title="Evil @@RECIPIENT@@ {{ config.SECRET_KEY }} feed")
    session.commit()
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number, config=app.config)
    assert send_pending(app).sent == 1
