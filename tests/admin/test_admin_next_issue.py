"""The next-issue page: preview, text, headers, preflight; build now; test copies; send now."""

import re

import pytest
from sqlalchemy import func, select

from mailer.admin import queries
from mailer.delivery.enqueue import status_counts
from mailer.models import (
    Delivery,
    Issue,
    IssueStatus,
    Item,
    SubscriberStatus,
    TransactionalMail,
)
from tests.support.admin import (
    ADMIN_EMAIL,
    add_items,
    add_subscribers,
    built_issue,
    post,
    signed_in_client,
)

DIGEST_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
)


@pytest.fixture
def admin_client(app, client):
    """A client signed in as an admin."""
    return signed_in_client(app, client)


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_next_issue_page_previews_what_a_build_would_contain(admin_client, session):
    add_items(session)
    page = admin_client.get("/admin/next").get_data(as_text=True)
    assert "The next issue is not built yet" in page
    assert "Typhoon season update 0" in page  # in the text part
    assert '<iframe class="preview" sandbox src="/admin/next/preview.html"' in page
    assert "List-Unsubscribe-Post" in page  # the headers a copy would carry
    assert "Preflight" in page
    assert _count(session, Issue) == 0  # a preview stores nothing

    preview = admin_client.get("/admin/next/preview.html")
    assert preview.status_code == 200
    assert preview.mimetype == "text/html"
    html = preview.get_data(as_text=True)
    assert "Typhoon season update 0" in html
    assert "@@" not in html  # per-recipient markers filled in for the web view
    csp = preview.headers["Content-Security-Policy"]
    assert "sandbox" in csp
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'self'" in csp
    assert preview.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_preview_parts_carry_the_test_unsubscribe_link_of_the_headers(admin_client, session):
    test_link = "https://news.example.com/unsubscribe/test"  # what a test copy carries
    add_items(session)
    for built in (False, True):
        if built:
            assert post(admin_client, "/admin/next/build").status_code == 302
        page = admin_client.get("/admin/next").get_data(as_text=True)
        assert f"<code>&lt;{test_link}&gt;" in page  # the List-Unsubscribe header shown
        text = re.search(r'<pre class="text-part">(.*?)</pre>', page, re.S).group(1)
        assert f"Unsubscribe:\n{test_link}\n" in text, text
        html = admin_client.get("/admin/next/preview.html").get_data(as_text=True)
        assert f'href="{test_link}"' in html
        assert 'href="https://news.example.com/"' not in html


def test_build_now_builds_the_issue_once(admin_client, session):
    add_items(session)
    response = post(admin_client, "/admin/next/build")
    assert response.status_code == 302
    issue = session.scalars(select(Issue)).one()
    assert issue.status == IssueStatus.DRAFT
    assert "Typhoon season update 0" in issue.text
    page = admin_client.get("/admin/next").get_data(as_text=True)
    assert f"Issue <strong>#{issue.number}</strong>" in page
    again = post(admin_client, "/admin/next/build", follow_redirects=True)
    assert again.status_code == 200
    assert f"Issue #{issue.number} ({issue.period}) is built." in again.get_data(as_text=True)
    assert _count(session, Issue) == 1  # idempotent per week


def test_build_now_without_items_says_so(admin_client, session):
    response = post(admin_client, "/admin/next/build", follow_redirects=True)
    assert "Nothing to build" in response.get_data(as_text=True)
    assert _count(session, Issue) == 0


def test_test_copy_reaches_the_relay_with_the_full_header_set(admin_client, session, smtp_server):
    issue = built_issue(session)
    add_subscribers(session, 3)
    before = queries.issue_stats(session, [issue])[issue.id]
    response = post(
        admin_client,
        f"/admin/issues/{issue.number}/test",
        {"addresses": "first@example.com,\nSecond@Example.com"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Test copy sent to first@example.com (250" in response.get_data(as_text=True)

    assert len(smtp_server.received) == 2
    for address in ("first@example.com", "Second@example.com"):
        (message,) = smtp_server.messages_to(address)
        for name in DIGEST_HEADERS:
            assert message[name], f"{name} missing"
        assert message["Subject"] == f"[TEST] {issue.subject}"
        assert message["To"].addresses[0].addr_spec.lower() == address.lower()
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["List-Unsubscribe"].startswith("<https://news.example.com/unsubscribe/")
        assert message.get_content_type() == "multipart/alternative"
        assert "Typhoon season update 0" in message.get_body(("plain",)).get_content()

    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert _count(session, Delivery) == 0
    assert _count(session, TransactionalMail) == 0
    after = queries.issue_stats(session, [issue])[issue.id]
    assert after == before
    assert session.get(Issue, issue.id).status == IssueStatus.DRAFT


def test_test_copy_refused_by_the_relay_is_reported(admin_client, session, smtp_server):
    issue = built_issue(session)
    smtp_server.script("nobody@example.com", "550 5.1.1 no such user")
    response = post(
        admin_client,
        f"/admin/issues/{issue.number}/test",
        {"addresses": "nobody@example.com"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Test copy to nobody@example.com failed: 550" in page
    assert _count(session, Delivery) == 0


def test_test_copy_with_a_bad_address_sends_nothing(admin_client, session, smtp_server):
    issue = built_issue(session)
    response = post(
        admin_client,
        f"/admin/issues/{issue.number}/test",
        {"addresses": "ok@example.com, not-an-address"},
        follow_redirects=True,
    )
    assert "not-an-address" in response.get_data(as_text=True)
    assert smtp_server.received == []


def test_test_copies_are_rate_limited(app_config, request, smtp_server):
    app_config["MAILER_TEST_SEND_RATE_LIMIT"] = "2/hour"
    app = request.getfixturevalue("app")
    client = signed_in_client(app, app.test_client())
    session = request.getfixturevalue("session")
    issue = built_issue(session)
    url = f"/admin/issues/{issue.number}/test"
    for _ in range(2):
        assert post(client, url, {"addresses": ADMIN_EMAIL}).status_code == 302
    assert post(client, url, {"addresses": ADMIN_EMAIL}).status_code == 429
    assert len(smtp_server.received) == 2


def test_send_now_asks_again_with_the_count_and_sends_nothing_before(admin_client, session):
    # Issue 12: one click mailed every subscriber, with no count and no confirmation.
    issue = built_issue(session)
    add_subscribers(session, 5)
    add_subscribers(session, 2, status=SubscriberStatus.PENDING, prefix="pending")
    url = f"/admin/issues/{issue.number}/send"
    page = admin_client.get("/admin/next").get_data(as_text=True)
    assert "Send now to 5 confirmed subscribers" in page

    asked = post(admin_client, url)
    text = asked.get_data(as_text=True)
    assert asked.status_code == 200
    assert '<strong id="recipient-count">5</strong> confirmed subscribers?' in text
    assert 'name="confirm_recipients" value="5"' in text
    stale = post(admin_client, url, {"confirm_recipients": "4"}).get_data(as_text=True)
    assert "changed since you asked: it is 5 now" in stale
    session.rollback()
    assert session.get(Issue, issue.id).status == IssueStatus.DRAFT
    assert _count(session, Delivery) == 0


def test_send_now_queues_every_confirmed_subscriber_and_starts(admin_client, session):
    issue = built_issue(session)
    add_subscribers(session, 5)
    add_subscribers(session, 2, status=SubscriberStatus.PENDING, prefix="pending")
    confirm = {"confirm_recipients": "5"}
    response = post(
        admin_client, f"/admin/issues/{issue.number}/send", confirm, follow_redirects=True
    )
    assert f"Issue #{issue.number} is sending to 5 subscribers." in response.get_data(as_text=True)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.SENDING
    counts = status_counts(session, issue.id)
    assert counts["queued"] == 5
    assert sum(counts.values()) == 5
    again = post(admin_client, f"/admin/issues/{issue.number}/send", confirm, follow_redirects=True)
    assert "cannot be sent now" in again.get_data(as_text=True)
    assert _count(session, Delivery) == 5


def test_send_now_is_refused_while_preflight_finds_errors(admin_client, session):
    add_subscribers(session, 2)
    # An issue without the unsubscribe link: the preflight check reports an error.
    issue = Issue(number=1, period="2026-W01", subject="Broken", html="<p>hi</p>", text="hi")
    session.add(issue)
    session.commit()
    response = post(admin_client, "/admin/issues/1/send", follow_redirects=True)
    assert "Not sent: the preflight check found errors." in response.get_data(as_text=True)
    confirmed = {"confirm_recipients": "2"}  # the second step checks again
    response = post(admin_client, "/admin/issues/1/send", confirmed, follow_redirects=True)
    assert "Not sent: the preflight check found errors." in response.get_data(as_text=True)
    session.rollback()  # a fresh read: end the snapshot of the last transaction
    assert session.get(Issue, issue.id).status == IssueStatus.DRAFT
    assert _count(session, Delivery) == 0


def test_unknown_issue_is_404(admin_client):
    assert post(admin_client, "/admin/issues/99/send").status_code == 404
    assert admin_client.get("/admin/issues/99").status_code == 404


def test_a_test_copy_of_the_unbuilt_preview_arrives_and_builds_nothing(
    admin_client, session, smtp_server
):
    # Issue 12: a test copy needed "Build now", which froze the issue.
    add_items(session, 2)
    page = admin_client.get("/admin/next").get_data(as_text=True)
    assert "The next issue is not built yet" in page
    assert 'action="/admin/next/test"' in page

    response = post(
        admin_client, "/admin/next/test", {"addresses": "tester@example.com"}, follow_redirects=True
    )

    assert "Test copy sent to tester@example.com (250" in response.get_data(as_text=True)
    (copy,) = smtp_server.messages_to("tester@example.com")
    assert copy["Subject"] == "[TEST] Japan Weekly: Typhoon season update 0"
    assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Typhoon season update 0" in copy.get_body(("plain",)).get_content()
    session.rollback()
    assert _count(session, Issue) == 0
    assert session.scalar(select(func.count()).where(Item.issue_id.is_not(None))) == 0


def test_digest_test_copies_the_unbuilt_next_issue_from_the_cli(app, session, runner, smtp_server):
    add_items(session, 1)
    with app.app_context():
        result = runner.invoke(args=["digest", "test", "a@example.com", "b@example.com"])

    assert result.exit_code == 0, result.output
    assert "Test copy of #1 to a@example.com: sent (250" in result.output
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == ["a@example.com", "b@example.com"]
    session.rollback()
    assert _count(session, Issue) == 0
    missing = runner.invoke(args=["digest", "test", "a@example.com", "--number", "7"])
    assert missing.exit_code == 1 and "there is no issue #7" in missing.output
