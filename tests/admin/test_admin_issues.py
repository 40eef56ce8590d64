"""Issues: list and detail, progress, pause / resume / cancel / retry failed during real sends."""

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer import clock
from mailer.admin import queries
from mailer.delivery.dispatch import send_pending
from mailer.delivery.enqueue import status_counts
from mailer.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber
from tests.support.admin import (
    add_subscribers,
    built_issue,
    csrf_token,
    post,
    signed_in_client,
)

BATCH = 5


@pytest.fixture
def app_config(app_config):
    """One SMTP connection, one process, small batches: the send order is predictable."""
    app_config.update(
        MAILER_BATCH_SIZE=BATCH,
        MAILER_SMTP_CONNECTIONS=1,
        MAILER_SENDER_PROCESSES=1,
        MAILER_SEND_RATE=0.0,
    )
    return app_config


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def _start(client, session, subscribers: int) -> Issue:
    issue = built_issue(session)
    add_subscribers(session, subscribers)
    confirm = {"confirm_recipients": str(subscribers)}
    response = post(client, f"/admin/issues/{issue.number}/send", confirm)
    assert response.status_code == 302
    return issue


def _pause_after(smtp_server, client, url: str, messages: int) -> list[int]:
    """Make the SMTP server pause the send through the admin after ``messages`` messages.

    The POST happens inside the server's DATA handler, before it answers the message: so the
    pause is committed while the sender is in the middle of its batch, waiting for a reply.
    Returns a list that receives the number of messages received when the pause was made.
    """
    token = csrf_token(client, "/admin/settings")
    handler = smtp_server._controller.handler
    original = handler.handle_DATA
    paused_at: list[int] = []

    async def handle_DATA(server, session, envelope):
        reply = await original(server, session, envelope)
        if not paused_at and len(smtp_server.received) == messages:
            response = client.post(url, data={"csrf_token": token})
            assert response.status_code == 302
            paused_at.append(len(smtp_server.received))
        return reply

    handler.handle_DATA = handle_DATA
    return paused_at


def test_pause_stops_the_send_within_one_batch_and_resume_sends_everyone_once(
    app, admin_client, session, smtp_server
):
    issue = _start(admin_client, session, 23)
    pause_url = f"/admin/issues/{issue.number}/pause"
    paused_at = _pause_after(smtp_server, admin_client, pause_url, messages=7)

    first = send_pending(app, issue_number=issue.number)
    assert paused_at == [7]
    assert 7 <= first.sent < 7 + BATCH  # stopped inside the batch it was working on
    assert len(smtp_server.received) == first.sent
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.PAUSED
    assert status_counts(session, issue.id)[DeliveryStatus.QUEUED] == 23 - first.sent
    page = admin_client.get(f"/admin/issues/{issue.number}").get_data(as_text=True)
    assert f"{first.sent} / 23 sent" in page
    assert ">Resume</button>" in page

    # While paused, the worker sends nothing.
    assert send_pending(app, issue_number=issue.number).sent == 0
    assert len(smtp_server.received) == first.sent

    assert post(admin_client, f"/admin/issues/{issue.number}/resume").status_code == 302
    second = send_pending(app, issue_number=issue.number)
    assert first.sent + second.sent == 23

    per_address = Counter(r.rcpt_tos[0].lower() for r in smtp_server.received)
    emails = {s.email.lower() for s in session.scalars(select(Subscriber))}
    assert set(per_address) == emails
    assert set(per_address.values()) == {1}  # every subscriber exactly once
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.SENT
    assert status_counts(session, issue.id)[DeliveryStatus.SENT] == 23


def test_cancel_skips_what_is_left(app, admin_client, session, smtp_server):
    issue = _start(admin_client, session, 4)
    response = post(admin_client, f"/admin/issues/{issue.number}/cancel", follow_redirects=True)
    assert f"Issue #{issue.number} cancelled." in response.get_data(as_text=True)
    assert send_pending(app).sent == 0
    assert smtp_server.received == []
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.CANCELLED
    assert status_counts(session, issue.id)[DeliveryStatus.SKIPPED] == 4


def test_an_impossible_action_is_explained(admin_client, session):
    issue = built_issue(session)
    response = post(admin_client, f"/admin/issues/{issue.number}/resume", follow_redirects=True)
    assert "cannot be resumed" in response.get_data(as_text=True)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.DRAFT


def test_failed_deliveries_show_the_smtp_reply_and_can_be_retried(
    app, admin_client, session, smtp_server
):
    smtp_server.script("reader00001@example.com", "550 5.1.1 mailbox unavailable", times=1)
    issue = _start(admin_client, session, 3)
    send_pending(app, issue_number=issue.number)
    page = admin_client.get(f"/admin/issues/{issue.number}").get_data(as_text=True)
    assert "reader00001@example.com" in page
    assert "5.1.1 mailbox unavailable" in page
    assert ">550<" in page
    assert ">Retry failed</button>" in page

    response = post(
        admin_client, f"/admin/issues/{issue.number}/retry_failed", follow_redirects=True
    )
    flashed = f"Issue #{issue.number} queued again for its failed deliveries."
    assert flashed in response.get_data(as_text=True)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.SENDING
    failed = session.scalars(
        select(Delivery).where(Delivery.issue_id == issue.id, Delivery.last_code == 550)
    ).one()
    assert failed.status in (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)


def test_issue_list_and_dashboard_stats(app, admin_client, session, smtp_server):
    smtp_server.script("reader00002@example.com", "550 5.1.1 no such user")
    issue = _start(admin_client, session, 4)
    send_pending(app, issue_number=issue.number)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    stats = queries.issue_stats(session, [session.get(Issue, issue.id)])[issue.id]
    assert (stats.count("sent"), stats.count("failed"), stats.total) == (3, 1, 4)
    assert stats.bounces == 1
    assert stats.bounce_rate == 0.25
    html = admin_client.get("/admin/issues").get_data(as_text=True)
    assert f'href="/admin/issues/{issue.number}">#{issue.number}</a>' in html
    assert "3 / 4" in html
    assert "25.0%" in html


def test_unsubscribes_after_an_issue_are_counted_for_it(app, admin_client, session):
    issue = _start(admin_client, session, 4)
    send_pending(app, issue_number=issue.number)
    leaving = session.scalars(select(Subscriber).order_by(Subscriber.id)).first()
    post(admin_client, f"/admin/subscribers/{leaving.id}/unsubscribe")
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    stats = queries.issue_stats(session, [session.get(Issue, issue.id)])[issue.id]
    assert stats.unsubscribes == 1
    assert stats.unsubscribe_rate == 0.25


def test_progress_rate_and_eta(app, session):
    issue = built_issue(session)
    add_subscribers(session, 30)
    from mailer.delivery import enqueue as queue
    from mailer.delivery import issues as states

    queue.enqueue_issue(session, issue)
    states.change_issue_status(session, issue, "start")
    session.commit()
    now = clock.now()
    issue.send_started_at = now - timedelta(minutes=30)
    deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    for delivery in deliveries[:20]:  # 20 sent in the last five minutes
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now - timedelta(minutes=5)
    session.commit()
    progress = queries.issue_progress(session, issue, now)
    assert progress.remaining == 10
    assert progress.percent == 67
    assert progress.per_minute == 2.0  # 20 over the ten-minute window
    assert not progress.rate_since_start
    assert progress.eta == timedelta(minutes=5)


def test_progress_rate_is_measured_from_the_first_minute_of_the_send(app, session):
    issue = built_issue(session)
    add_subscribers(session, 30)
    from mailer.delivery import enqueue as queue
    from mailer.delivery import issues as states

    queue.enqueue_issue(session, issue)
    states.change_issue_status(session, issue, "start")
    started = issue.send_started_at
    deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    for delivery in deliveries[:12]:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = started + timedelta(seconds=20)
    session.commit()

    early = queries.issue_progress(session, issue, started + timedelta(seconds=59))
    assert (early.per_minute, early.eta) == (None, None)
    assert early.remaining == 18  # the counts are there from the start

    # Three minutes in: 12 over the three minutes of the send, not over ten.
    later = queries.issue_progress(session, issue, started + timedelta(minutes=3))
    assert (later.per_minute, later.rate_since_start) == (4.0, True)
    assert later.eta == timedelta(minutes=4.5)

    states.change_issue_status(session, issue, "pause")
    session.commit()
    paused = queries.issue_progress(session, issue, started + timedelta(minutes=3))
    assert (paused.per_minute, paused.eta) == (None, None)  # nothing is sending


def test_sending_to_one_subscriber_reads_right_and_shows_no_rate_yet(
    app, admin_client, session, smtp_server
):
    issue = built_issue(session)
    add_subscribers(session, 1)
    url = f"/admin/issues/{issue.number}"
    confirm = {"confirm_recipients": "1"}
    page = post(admin_client, f"{url}/send", confirm, follow_redirects=True).get_data(as_text=True)
    assert f"Issue #{issue.number} is sending to 1 subscriber." in page
    assert "Rate — (measured after the first minute)" in page
    assert "per minute" not in page
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    clock.freeze(session.get(Issue, issue.id).send_started_at + timedelta(minutes=2))
    page = admin_client.get(url).get_data(as_text=True)
    assert "Rate 0.0 per minute since the send started" in page  # measured: none went out
    clock.freeze(None)

    assert send_pending(app, issue_number=issue.number).sent == 1
    page = admin_client.get(url).get_data(as_text=True)
    assert "1 / 1 sent" in page
    assert "Rate —" in page and "per minute" not in page  # sent: no send to measure


def test_cancelling_a_draft_gives_its_items_to_the_next_issue(admin_client, session):
    from mailer.digest import build
    from mailer.models import Item

    draft = built_issue(session)
    items = sorted(session.scalars(select(Item.id).where(Item.issue_id == draft.id)))
    assert items
    response = post(admin_client, f"/admin/issues/{draft.number}/cancel", follow_redirects=True)
    assert f"Issue #{draft.number} cancelled." in response.get_data(as_text=True)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    following = build.build_issue(session, period="2099-W01")
    session.commit()
    assert following is not None and following.id != draft.id
    assert sorted(session.scalars(select(Item.id).where(Item.issue_id == following.id))) == items


def test_cancelling_a_started_send_keeps_its_items(app, admin_client, session, smtp_server):
    from mailer.models import Item

    issue = _start(admin_client, session, 2)
    items = sorted(session.scalars(select(Item.id).where(Item.issue_id == issue.id)))
    assert post(admin_client, f"/admin/issues/{issue.number}/cancel").status_code == 302
    session.rollback()
    assert session.get(Issue, issue.id).status == IssueStatus.CANCELLED
    assert sorted(session.scalars(select(Item.id).where(Item.issue_id == issue.id))) == items
    assert items
