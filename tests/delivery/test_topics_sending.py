"""Sending per topic: one issue a week, rendered and compiled once per variant; each
subscriber gets the variant of their topics, or nothing (a skipped delivery with the reason)
when their topics have no items that week or they paused. Real SMTP server on loopback."""

from datetime import UTC, datetime, timedelta

import pytest
from flask import template_rendered
from sqlalchemy import select

from mailer import clock
from mailer.delivery.dispatch import send_pending, start_issue
from mailer.digest.build import build_issue
from mailer.models import Delivery, DeliveryStatus, IssueVariant, Subscriber
from tests.support.deliveries import deliveries_by_email
from tests.support.signup import text_part

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _subscribe(session, email: str, sections: str, paused_until=None) -> None:
    session.add(
        Subscriber(
            email=email,
            status="confirmed",
            sections=sections,
            paused_until=paused_until,
            created_at=T0,
            confirmed_at=T0,
        )
    )
    session.commit()


@pytest.fixture
def renders(app):
    """Every render of the digest's HTML template: the ``variant`` it was rendered for."""
    seen: list[str] = []

    def record(sender, template, context, **extra):
        if template.name == "email/digest.html":
            seen.append(context["variant"])

    template_rendered.connect(record, app)
    yield seen
    template_rendered.disconnect(record, app)


def _items(make_item, news: int, openings: int) -> None:
    for n in range(news):
        make_item("news", title=f"News story {n + 1}")
    for n in range(openings):
        make_item("openings", title=f"Opening {n + 1}", company="Acme KK", location="Osaka")


def _send(app, session):
    clock.freeze(T0)
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number)
    summary = send_pending(app)
    assert summary.errors == []
    return issue


def test_only_openings_gets_the_openings_variant(app, session, make_item, smtp_server, renders):
    _items(make_item, news=2, openings=3)
    _subscribe(session, "jobs@example.com", "openings")
    _subscribe(session, "all@example.com", "news,openings")
    _subscribe(session, "news@example.com", "news")
    _send(app, session)

    (jobs,) = smtp_server.messages_to("jobs@example.com")
    text = text_part(jobs)
    html = jobs.get_body(preferencelist=("html",)).get_content()
    assert "Opening 1" in text and "Opening 3" in html
    assert "News story" not in text and "News story" not in html
    assert jobs["Subject"].endswith("Opening 3")  # the newest opening leads

    (everything,) = smtp_server.messages_to("all@example.com")
    assert "News story 1" in text_part(everything) and "Opening 1" in text_part(everything)
    (news,) = smtp_server.messages_to("news@example.com")
    assert "News story 2" in text_part(news) and "Opening" not in text_part(news)
    rows = deliveries_by_email(session)
    assert {email: row.status for email, row in rows.items()} == dict.fromkeys(
        ("jobs@example.com", "all@example.com", "news@example.com"), DeliveryStatus.SENT
    )


def test_each_variant_is_rendered_once_per_issue(app, session, make_item, smtp_server, renders):
    _items(make_item, news=1, openings=1)
    for n in range(3):
        _subscribe(session, f"o{n}@example.com", "openings")
        _subscribe(session, f"n{n}@example.com", "news")
        _subscribe(session, f"b{n}@example.com", "news,openings")
    issue = _send(app, session)
    assert sorted(renders) == ["news", "news,openings", "openings"]
    assert len(smtp_server.received) == 9
    stored = session.scalars(select(IssueVariant.sections).where(IssueVariant.issue_id == issue.id))
    assert sorted(stored) == ["news", "openings"]


def test_only_news_in_an_openings_week_gets_nothing(app, session, make_item, smtp_server, renders):
    _items(make_item, news=0, openings=2)
    _subscribe(session, "news@example.com", "news")
    _subscribe(session, "jobs@example.com", "openings")
    issue = _send(app, session)

    assert smtp_server.messages_to("news@example.com") == []
    assert len(smtp_server.messages_to("jobs@example.com")) == 1
    row = deliveries_by_email(session)["news@example.com"]
    assert row.status == DeliveryStatus.SKIPPED
    assert row.last_reply == "not sent: no new items in the subscriber's topics (news) this issue"
    assert row.sent_at is None
    assert sorted(renders) == ["news,openings", "openings"]  # no news-only variant to render
    assert issue.status == "sent"


def test_a_paused_subscriber_is_skipped_until_the_pause_ends(app, session, make_item, smtp_server):
    _items(make_item, news=1, openings=1)
    _subscribe(session, "away@example.com", "news,openings", paused_until=T0 + timedelta(days=28))
    _subscribe(session, "here@example.com", "news,openings")
    _send(app, session)
    assert smtp_server.messages_to("away@example.com") == []
    row = deliveries_by_email(session)["away@example.com"]
    assert row.status == DeliveryStatus.SKIPPED and "paused" in row.last_reply

    # Four weeks and a day later the pause is over: the next issue reaches them.
    clock.freeze(T0 + timedelta(days=29))
    make_item("news", title="Later story")
    session.commit()
    issue = build_issue(session, period="2027-W01")
    start_issue(session, issue.number)
    send_pending(app)
    (later,) = smtp_server.messages_to("away@example.com")
    assert "Later story" in text_part(later)


def test_topics_changed_after_enqueue_to_empty_ones_skip_at_send(
    app, session, make_item, smtp_server
):
    _items(make_item, news=0, openings=1)
    _subscribe(session, "mover@example.com", "openings")
    clock.freeze(T0)
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number)
    mover = session.scalars(select(Subscriber)).one()
    mover.sections = "news"
    session.commit()
    send_pending(app)
    assert smtp_server.received == []
    row = session.scalars(select(Delivery)).one()
    assert row.status == DeliveryStatus.SKIPPED and "(news)" in row.last_reply


def test_a_pause_taken_after_the_issue_was_queued_still_holds(app, session, make_item, smtp_server):
    _items(make_item, news=1, openings=0)
    _subscribe(session, "late@example.com", "news,openings")
    clock.freeze(T0)
    issue = build_issue(session, period="2026-W49")
    start_issue(session, issue.number)
    late = session.scalars(select(Subscriber)).one()
    late.paused_until = T0 + timedelta(weeks=4)
    session.commit()
    send_pending(app)
    assert smtp_server.received == []
    row = session.scalars(select(Delivery)).one()
    assert row.status == DeliveryStatus.SKIPPED and "paused" in row.last_reply


def test_the_archive_shows_the_whole_issue(app, client, session, make_item, smtp_server):
    _items(make_item, news=1, openings=1)
    _subscribe(session, "jobs@example.com", "openings")
    issue = _send(app, session)
    page = client.get(f"/archive/{issue.number}").get_data(as_text=True)
    assert "News story 1" in page and "Opening 1" in page
    assert "1 story and 1 job opening this week" in page


def test_the_next_issue_page_names_the_variants(app, client, session, make_item):
    from tests.support.admin import signed_in_client

    _items(make_item, news=0, openings=1)
    clock.freeze(T0)
    build_issue(session, period="2026-W49")
    admin = signed_in_client(app, client)
    page = admin.get("/admin/next").get_data(as_text=True)
    assert "Job openings only: <em>Japan Weekly: Opening 1</em>" in page
    assert "Subscribers of the other topic get nothing this week" in page
