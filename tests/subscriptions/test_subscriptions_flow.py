"""The whole subscriber lifecycle through real parts: a real SMTP server on loopback (aiosmtpd),
the delivery engine, a real digest; SQLite and PostgreSQL.
"""

import re
from datetime import timedelta

from mailer import clock
from mailer.delivery.dispatch import send_pending, start_issue
from mailer.digest.build import build_issue
from mailer.models import Delivery, TransactionalMail
from mailer.subscriptions import service
from tests.support.signup import confirm_url_in, path_of, run_signup_job, subscriber
from tests.support.smtpd import ScriptedSMTPServer, free_port

PHONE = {"User-Agent": "Mozilla/5.0 (iPhone)", "Referer": "https://news.example.com/"}


def _messages_to(smtp_server, address):
    return smtp_server.messages_to(address)


def _one_click_url(message) -> str:
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = re.findall(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
    assert len(urls) == 1
    return urls[0]


def _digest(session, make_item, period: str, title: str) -> int:
    make_item(section="news", title=title)
    make_item(section="openings", title=f"Opening for {title}")
    session.commit()
    issue = build_issue(session, period=period)
    assert issue is not None and title in issue.text
    number = issue.number
    start_issue(session, number)
    return number


def test_signup_confirm_digest_one_click_unsubscribe_then_no_later_digest(
    app, client, session, smtp_server, make_item
):
    reader = "reader@example.com"
    other = service.add_subscriber(session, "other@example.com", confirmed=True, source="cli")
    # 1. The form, as a phone posts it.
    response = client.post("/subscribe", data={"email": reader, "website": ""}, headers=PHONE)
    assert response.status_code == 200
    run_signup_job(session)  # what the worker's signups job does first (subscriptions)
    summary = send_pending(app)  # then delivery builds and sends the confirmation
    assert summary.transactional_sent == 1
    (confirmation,) = _messages_to(smtp_server, reader)
    assert "List-Unsubscribe" not in confirmation
    assert reader in confirmation.get_body(preferencelist=("plain",)).get_content()
    # 2. The link: GET shows the button and changes nothing; POST confirms.
    path = path_of(confirm_url_in(confirmation))
    page = client.get(path)
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    assert subscriber(session, reader).status == "pending"
    assert "You're subscribed" in client.post(path, headers=PHONE).get_data(as_text=True)
    assert subscriber(session, reader).status == "confirmed"
    # 3. A digest arrives, with the RFC 8058 headers.
    first = _digest(session, make_item, "2026-W10", "Tokyo opens a new line")
    send_pending(app)
    welcome, digest = _messages_to(smtp_server, reader)[1:]
    assert welcome["Subject"].startswith("Welcome") and "List-Unsubscribe" not in welcome
    assert "Tokyo opens a new line" in digest.get_body(preferencelist=("plain",)).get_content()
    url = _one_click_url(digest)
    assert url.startswith(app.config["MAILER_BASE_URL"] + "/unsubscribe/")
    # 4. One-click, exactly as a mailbox provider sends it: no cookies, no CSRF token.
    provider = app.test_client(use_cookies=False)
    one_click = provider.post(
        path_of(url),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        headers={"User-Agent": "MailboxProvider/1.0"},
    )
    assert one_click.status_code == 200 and "Location" not in one_click.headers
    assert subscriber(session, reader).status == "unsubscribed"
    # 5. The next digest goes to the others, not to the leaver.
    second = _digest(session, make_item, "2026-W11", "Osaka hiring fair")
    assert second == first + 1
    send_pending(app)
    assert len(_messages_to(smtp_server, reader)) == 3  # confirmation, welcome, first digest
    assert len(_messages_to(smtp_server, other.email)) == 2


def test_leaver_gets_nothing_from_an_issue_already_being_sent(
    app, client, session, smtp_server, make_item
):
    stay = service.add_subscriber(session, "stay@example.com", confirmed=True, source="cli")
    leave = service.add_subscriber(session, "leave@example.com", confirmed=True, source="cli")
    _digest(session, make_item, "2026-W12", "Kyoto festival")  # deliveries queued for both
    service.unsubscribe_subscriber(session, leave, source="unsubscribe page")
    send_pending(app)
    assert len(_messages_to(smtp_server, stay.email)) == 1
    assert _messages_to(smtp_server, leave.email) == []
    session.expire_all()
    row = session.query(Delivery).filter_by(subscriber_id=leave.id).one()
    assert row.status == "skipped"


def test_signup_while_the_relay_is_down_succeeds_and_the_mail_goes_later(app, client, session):
    app.config["MAILER_SMTP_PORT"] = free_port()  # nothing listens there: the relay is down
    response = client.post("/subscribe", data={"email": "patient@example.com"})
    assert response.status_code == 200
    assert subscriber(session, "patient@example.com").status == "pending"  # runs the signups job
    summary = send_pending(app)
    assert summary.transactional_sent == 0
    session.expire_all()
    mail = session.query(TransactionalMail).one()
    assert (mail.status, mail.attempts) == ("deferred", 1)
    assert mail.last_reply  # the relay error is kept on the row
    with ScriptedSMTPServer(port=app.config["MAILER_SMTP_PORT"]) as relay:
        clock.freeze(mail.next_attempt_at + timedelta(seconds=1))
        assert send_pending(app).transactional_sent == 1
        (message,) = relay.messages_to("patient@example.com")
    path = path_of(confirm_url_in(message))
    assert client.post(path).status_code == 200
    assert subscriber(session, "patient@example.com").status == "confirmed"
