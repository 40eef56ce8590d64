"""The preference page: GET shows and changes nothing; POST switches topics, pauses, resumes or
unsubscribes with a reason; reasons are counted on the dashboard; the digest's footer links
it; RFC 8058 one-click still unsubscribes from everything. Real SMTP server on loopback."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailer import clock
from mailer.delivery.dispatch import send_pending, start_issue
from mailer.digest.build import build_issue
from mailer.models import ConsentEvent, DeliveryStatus, Subscriber
from mailer.subscriptions.tokens import make_unsubscribe_token
from tests.support.admin import signed_in_client
from tests.support.deliveries import deliveries_by_email
from tests.support.signup import path_of, snapshot, text_part

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def reader(app, session):
    """A confirmed subscriber of both topics; returns (subscriber id, preference path)."""
    clock.freeze(T0)
    subscriber = Subscriber(
        email="reader@example.com", status="confirmed", created_at=T0, confirmed_at=T0
    )
    session.add(subscriber)
    session.commit()
    token = make_unsubscribe_token(app.config["SECRET_KEY"], subscriber.id, subscriber.version)
    return subscriber.id, f"/preferences/{token}"


def _fresh(session, subscriber_id: int) -> Subscriber:
    session.expire_all()
    return session.get(Subscriber, subscriber_id)


def _events(session, subscriber_id: int) -> list[tuple]:
    query = select(ConsentEvent.action, ConsentEvent.sections, ConsentEvent.reason).where(
        ConsentEvent.subscriber_id == subscriber_id
    )
    return [tuple(row) for row in session.execute(query.order_by(ConsentEvent.id))]


def test_get_shows_the_choices_and_changes_nothing(client, session, reader):
    before = snapshot(session)
    response = client.get(reader[1])
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<strong>r***@e***.com</strong>" in page
    assert 'name="sections" value="news" checked' in page
    assert 'name="sections" value="openings" checked' in page
    assert "Pause for 4 weeks" in page
    assert 'value="never_signed_up"' in page
    assert response.headers["Cache-Control"] == "no-store"
    client.head(reader[1])
    assert snapshot(session) == before


def test_post_switches_topics(client, session, reader):
    subscriber_id, path = reader
    response = client.post(path, data={"action": "topics", "sections": "openings"})
    assert response.status_code == 200
    assert "Saved" in response.get_data(as_text=True)
    assert _fresh(session, subscriber_id).sections == "openings"
    assert _events(session, subscriber_id) == [("topics_changed", "openings", None)]
    page = client.get(path).get_data(as_text=True)
    assert 'value="news">' in page and 'value="openings" checked' in page


def test_no_topic_at_all_is_refused_with_a_message(client, session, reader):
    subscriber_id, path = reader
    response = client.post(path, data={"action": "topics"})
    assert response.status_code == 400
    assert "Choose at least one" in response.get_data(as_text=True)
    assert _fresh(session, subscriber_id).sections == "news,openings"
    assert _events(session, subscriber_id) == []


def test_a_pause_skips_the_subscriber_until_it_ends(
    app, client, session, reader, make_item, smtp_server
):
    subscriber_id, path = reader
    response = client.post(path, data={"action": "pause"})
    assert "no digest until 31 December 2026" in response.get_data(as_text=True)
    assert _fresh(session, subscriber_id).paused_until == T0 + timedelta(weeks=4)
    make_item("news", title="While away")
    session.commit()
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number)
    send_pending(app)
    assert smtp_server.received == []
    row = deliveries_by_email(session)["reader@example.com"]
    assert row.status == DeliveryStatus.SKIPPED and "paused" in row.last_reply

    clock.freeze(T0 + timedelta(weeks=4, hours=1))
    make_item("news", title="Back again")
    session.commit()
    issue = build_issue(session, period="2027-W01")
    start_issue(session, issue.number)
    send_pending(app)
    (message,) = smtp_server.messages_to("reader@example.com")
    assert "Back again" in text_part(message)
    assert [action for action, *_ in _events(session, subscriber_id)] == ["paused"]


def test_resume_ends_a_pause_at_once(client, session, reader):
    subscriber_id, path = reader
    client.post(path, data={"action": "pause"})
    page = client.post(path, data={"action": "resume"}).get_data(as_text=True)
    assert "Welcome back" in page
    assert _fresh(session, subscriber_id).paused_until is None


def test_unsubscribe_with_a_reason_is_counted_on_the_dashboard(app, client, session, reader):
    subscriber_id, path = reader
    page = client.post(path, data={"action": "unsubscribe", "reason": "too_many"})
    assert "You're unsubscribed" in page.get_data(as_text=True)
    assert _fresh(session, subscriber_id).status == "unsubscribed"
    assert _events(session, subscriber_id) == [("unsubscribed", None, "too_many")]
    # Another leaver without a reason, by the one-click link.
    other = Subscriber(email="other@example.com", status="confirmed", created_at=T0)
    session.add(other)
    session.commit()
    token = make_unsubscribe_token(app.config["SECRET_KEY"], other.id, other.version)
    client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})

    admin = signed_in_client(app, client)
    dashboard = admin.get("/admin/").get_data(as_text=True)
    counts = dict(re.findall(r'data-reason="([^"]+)">(\d+)<', dashboard))
    assert counts == {
        "Too many emails": "1",
        "Not relevant to me": "0",
        "I never signed up": "0",
        "Other": "0",
        "No reason given": "1",
    }


def test_an_unknown_reason_is_refused(client, session, reader):
    subscriber_id, path = reader
    response = client.post(path, data={"action": "unsubscribe", "reason": "spam"})
    assert response.status_code == 400
    assert _fresh(session, subscriber_id).status == "confirmed"


def test_one_click_still_unsubscribes_from_everything(app, client, session, reader):
    subscriber_id, path = reader
    client.post(path, data={"action": "topics", "sections": "news"})
    one_click = path.replace("/preferences/", "/unsubscribe/")
    response = client.post(one_click, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert _fresh(session, subscriber_id).status == "unsubscribed"
    page = client.get(path).get_data(as_text=True)
    assert "You're unsubscribed" in page and "Save topics" not in page


def test_a_forged_link_changes_nothing(client, session, reader):
    subscriber_id, path = reader
    response = client.post(path + "x", data={"action": "topics", "sections": "news"})
    assert response.status_code == 400
    assert _fresh(session, subscriber_id).sections == "news,openings"


def test_every_digest_links_the_page_for_its_recipient(
    app, client, session, reader, make_item, smtp_server
):
    subscriber_id, path = reader
    make_item("openings", title="A job")
    session.commit()
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number)
    send_pending(app)
    (message,) = smtp_server.messages_to("reader@example.com")
    html = message.get_body(preferencelist=("html",)).get_content()
    links = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>Choose what you get</a>', html)
    assert [path_of(link) for link in links] == [path]
    text = text_part(message).replace("\r\n", "\n")
    assert f"Choose what you get (topics, a pause):\n{app.config['MAILER_BASE_URL']}{path}" in text
    assert client.get(path).status_code == 200


def test_the_unsubscribe_page_offers_the_preferences_instead(client, session, reader):
    subscriber_id, path = reader
    page = client.get(path.replace("/preferences/", "/unsubscribe/")).get_data(as_text=True)
    assert f'<a href="{path}">Choose what you get</a>' in page
    assert _fresh(session, subscriber_id).status == "confirmed"
