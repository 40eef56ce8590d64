"""The welcome mail: one per confirmation, queued like the confirmation mail, built and sent
by the delivery room, with links to the latest archived issue and the preference page."""

import re

from flask import current_app
from sqlalchemy import select

from mailer import clock
from mailer.delivery.dispatch import send_transactional
from mailer.extensions import db
from mailer.models import IssueStatus, Subscriber, TransactionalMail
from mailer.subscriptions.records import change_status
from tests.support.deliveries import make_issue
from tests.support.signup import confirm_path, path_of, run_signup_job, text_part


def _welcomes(smtp_server, email: str):
    return [m for m in smtp_server.messages_to(email) if m["Subject"].startswith("Welcome")]


def test_one_welcome_per_confirmation(app, client, session, smtp_server):
    make_issue(session, number=1, status=IssueStatus.SENT)
    make_issue(session, number=2, status=IssueStatus.SENT)
    make_issue(session, number=3, status=IssueStatus.DRAFT)
    client.post("/subscribe", data={"email": "new@example.com", "sections": "openings"})
    path = confirm_path(session, "new@example.com")
    assert _welcomes(smtp_server, "new@example.com") == []

    assert client.post(path).status_code == 200
    assert client.post(path).status_code == 200  # twice: still one confirmation
    send_transactional(app)
    (welcome,) = _welcomes(smtp_server, "new@example.com")
    assert welcome["Subject"] == f"Welcome to {current_app.config['MAILER_NAME']}"
    assert welcome["Auto-Submitted"] == "auto-generated" and welcome["List-Unsubscribe"] is None
    text = text_part(welcome)
    base = current_app.config["MAILER_BASE_URL"]
    assert f"{base}/archive/2\n" in text.replace("\r\n", "\n")  # the latest public issue
    assert "(job openings)" in text
    (preferences,) = re.findall(re.escape(base) + r"/preferences/\S+", text)
    html = welcome.get_body(preferencelist=("html",)).get_content()
    assert f'href="{preferences}"' in html and f'href="{base}/archive/2"' in html
    page = client.get(path_of(preferences))
    assert page.status_code == 200 and "Choose what you get" in page.get_data(as_text=True)

    send_transactional(app)
    assert len(_welcomes(smtp_server, "new@example.com")) == 1


def test_a_new_confirmation_after_leaving_gets_a_new_welcome(app, client, session, smtp_server):
    client.post("/subscribe", data={"email": "back@example.com"})
    client.post(confirm_path(session, "back@example.com"))
    send_transactional(app)
    subscriber = session.scalars(select(Subscriber)).one()
    change_status(session, subscriber, "unsubscribe", _now())
    session.commit()
    client.post("/subscribe", data={"email": "back@example.com"})
    run_signup_job(session)
    client.post(confirm_path(session, "back@example.com"))
    send_transactional(app)
    welcomes = _welcomes(smtp_server, "back@example.com")
    assert len(welcomes) == 2
    # No archive yet: the mail points to the archive's index.
    assert "/archive\n" in text_part(welcomes[0]).replace("\r\n", "\n")


def test_a_welcome_for_someone_who_left_before_it_was_built_is_skipped(app, client, session):
    client.post("/subscribe", data={"email": "gone@example.com"})
    client.post(confirm_path(session, "gone@example.com"))
    subscriber = session.scalars(select(Subscriber)).one()
    change_status(session, subscriber, "unsubscribe", _now())
    session.commit()
    send_transactional(app)
    with app.app_context():
        welcome = db.session.scalars(
            select(TransactionalMail).where(TransactionalMail.kind == "welcome")
        ).one()
        assert (welcome.status, welcome.body) == ("skipped", None)
        assert welcome.last_reply == "not sent: the subscriber is no longer subscribed"


def _now():
    return clock.now()
