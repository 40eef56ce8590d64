"""Issue 11, items 5 and 6: nobody but the owner undoes an unsubscribe, and feed text with
"@@" or "{{" never blocks a send.

Item 5 goes through the real HTTP server (the stranger's signup) and the real CLI
(``subscribers add``), on SQLite and PostgreSQL.
"""

import urllib.parse
import urllib.request
from datetime import timedelta

from sqlalchemy import select

from mailer import clock
from mailer.digest import build
from mailer.digest.preflight import blocking_errors, check_issue
from mailer.models import ConsentEvent, Subscriber
from mailer.scheduler import purge_pending_job
from mailer.subscriptions import service
from tests.support.digest import copy_issue
from tests.support.signup import (
    LiveServer,
    confirm_path,
    events,
    run_signup_job,
    subscriber,
)

EMAIL = "leaver@example.com"


def _stranger_signs_up(url: str, email: str) -> int:
    data = urllib.parse.urlencode({"email": email}).encode()
    with urllib.request.urlopen(f"{url}/subscribe", data=data, timeout=30) as response:
        return response.status


def _left(client, session) -> Subscriber:
    client.post("/subscribe", data={"email": EMAIL})
    assert client.post(confirm_path(session, EMAIL)).status_code == 200
    sub = subscriber(session, EMAIL)
    assert service.unsubscribe_subscriber(session, sub, source="test")
    session.commit()
    return subscriber(session, EMAIL)


def test_a_strangers_signup_changes_no_status_until_the_owner_confirms(app, client, session):
    sub = _left(client, session)
    clock.freeze(clock.now() + timedelta(hours=1))
    with LiveServer(app) as server:
        assert _stranger_signs_up(server.url, EMAIL) == 200
    run_signup_job(session)
    sub = subscriber(session, EMAIL)
    assert sub.status == "unsubscribed"  # no digest goes to them
    link = confirm_path(session, EMAIL)  # but they were mailed a confirmation
    assert events(session, sub.id)[-1] == "resubscribe_requested"
    # Only the owner, from their mailbox, brings it back.
    assert client.post(link).status_code == 200
    assert subscriber(session, EMAIL).status == "confirmed"
    assert events(session, sub.id)[-2:] == ["resubscribe_requested", "confirmed"]


def test_the_purge_keeps_suppressions_and_their_consent_history(app, client, session):
    sub = _left(client, session)
    with LiveServer(app) as server:
        assert _stranger_signs_up(server.url, EMAIL) == 200
        assert _stranger_signs_up(server.url, "never@example.com") == 200
    run_signup_job(session)
    history = events(session, sub.id)
    clock.freeze(clock.now() + timedelta(days=45))
    purge_pending_job(app)
    session.expire_all()
    assert subscriber(session, EMAIL).status == "unsubscribed"
    assert events(session, sub.id) == history
    assert subscriber(session, "never@example.com") is None  # a mere signup does go


def test_the_cli_refuses_to_re_add_a_leaver_as_confirmed_without_a_reason(app, client, session):
    sub = _left(client, session)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["subscribers", "add", EMAIL, "--confirmed"])
    assert refused.exit_code != 0 and "--resubscribe" in refused.output
    assert subscriber(session, EMAIL).status == "unsubscribed"
    blank = runner.invoke(args=["subscribers", "add", EMAIL, "--resubscribe", "  "])
    assert blank.exit_code != 0
    reason = "asked us by phone on 2026-12-03 (ticket 42)"
    done = runner.invoke(args=["subscribers", "add", EMAIL, "--resubscribe", reason])
    assert done.exit_code == 0, done.output
    session.expire_all()
    assert subscriber(session, EMAIL).status == "confirmed"
    last = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id).order_by(ConsentEvent.id)
    ).all()[-1]
    assert (last.action, last.source) == ("resubscribed_by_operator", "cli")
    assert reason in last.detail


def test_an_erased_address_needs_a_reason_too(app, client, session):
    sub = _left(client, session)
    service.erase_subscriber(session, sub)
    session.commit()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["subscribers", "add", EMAIL, "--confirmed"]).exit_code != 0
    done = runner.invoke(args=["subscribers", "add", EMAIL, "--resubscribe", "wrote to us"])
    assert done.exit_code == 0, done.output
    assert subscriber(session, EMAIL).status == "confirmed"


def test_feed_text_with_template_syntax_never_blocks_the_send(app, session, make_item):
    make_item(title="Jinja tips: {{ config.SECRET_KEY }} and {% for %} loops")
    make_item(
        "openings",
        title="Write to jobs@@example.com",
        summary_html="<p>Use <code>{{ name }}</code> and @@TOKEN@@ in templates.</p>",
        company="{{ Acme }}",
    )
    session.commit()
    issue = build.build_issue(session, period="2026-W49")
    assert blocking_errors(issue, app.config) == []
    # Shown literally, never evaluated.
    assert "{{ config.SECRET_KEY }}" in issue.html and app.config["SECRET_KEY"] not in issue.html
    assert "{{ config.SECRET_KEY }}" in issue.text
    # The admin preview of the same items is clean as well.
    session.rollback()
    assert [
        f
        for f in check_issue(build.render_preview(session), app.config, spamassassin=False)
        if f.code == "placeholder"
    ] == []
    # A leftover of OUR template is still found.
    broken = copy_issue(issue, html=issue.html.replace("</body>", "{{ footer }}</body>"))
    broken.preview_items = issue.items
    assert [f.code for f in blocking_errors(broken, app.config)] == ["placeholder"]
