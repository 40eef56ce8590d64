"""The web signup and the confirm/unsubscribe pages (SQLite and PostgreSQL)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from mailer import clock
from mailer.models import ConsentEvent, Subscriber, SubscriberStatus, TransactionalMail
from mailer.subscriptions.tokens import make_confirm_token, make_unsubscribe_token
from tests.support.signup import (
    confirm_path,
    confirmation_mails,
    events,
    parse,
    run_signup_job,
    snapshot,
    subscriber,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BROWSER = {"User-Agent": "Mozilla/5.0 (test phone)", "Referer": "https://news.example.com/post/1"}


@pytest.fixture
def app_config(app_config):
    app_config["MAILER_SIGNUP_RATE_LIMIT"] = "1000/minute"
    app_config["MAILER_TOKEN_RATE_LIMIT"] = "1000/minute"
    return app_config


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def advance(**delta) -> None:
    clock.freeze(clock.now() + timedelta(**delta))


def signup(client, email, **extra):
    return client.post("/subscribe", data={"email": email, **extra}, headers=BROWSER)


def confirmed(client, session, email):
    assert signup(client, email).status_code == 200
    assert client.post(confirm_path(session, email)).status_code == 200
    assert subscriber(session, email).status == SubscriberStatus.CONFIRMED
    return subscriber(session, email)


def unsubscribe_path(app, sub) -> str:
    return f"/unsubscribe/{make_unsubscribe_token(app.config['SECRET_KEY'], sub.id, sub.version)}"


def test_signup_page_is_a_real_accessible_page(client):
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label for="email">' in html
    assert 'name="email"' in html and 'type="email"' in html and 'autocomplete="email"' in html
    assert 'aria-describedby="email-hint"' in html
    assert 'href="/archive"' in html
    assert 'name="viewport"' in html
    assert "job openings in Japan" in html
    # No external assets: every src/href is local.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert response.headers.get("Set-Cookie") is None


def test_opening_the_subscribe_url_leads_to_the_signup_page(client, session):
    for response in (client.get("/subscribe"), client.head("/subscribe?from=history")):
        assert response.status_code == 303
        assert response.location == "/"
    followed = client.get("/subscribe", follow_redirects=True)
    assert followed.status_code == 200 and 'name="email"' in followed.get_data(as_text=True)
    assert client.put("/subscribe").status_code == 405  # POST alone takes a signup
    assert snapshot(session) == ((), (0, 0))  # opening it stores nothing


def test_invalid_address_shows_the_message_tied_to_the_field(client, session):
    response = signup(client, "Jane <jane@example.com>")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'aria-describedby="email-hint email-error"' in html
    assert 'aria-invalid="true"' in html
    assert 'id="email-error"' in html and "angle brackets" in html
    assert 'value="Jane &lt;jane@example.com&gt;"' in html
    assert snapshot(session) == ((), (0, 0))


def test_signup_stores_pending_records_consent_and_queues_one_confirmation(client, session):
    response = signup(client, "  Jane.Doe@Example.COM ")
    assert response.status_code == 200
    assert "check your inbox" in response.get_data(as_text=True).lower()
    sub = subscriber(session, "Jane.Doe@example.com")
    assert (sub.status, sub.version, sub.source) == ("pending", 1, "web")
    assert sub.confirmation_sent_at == T0 and sub.confirmations_that_day == 1
    event = session.query(ConsentEvent).one()
    assert (event.action, event.ip_address, event.user_agent, event.source) == (
        "signup_requested",
        "127.0.0.1",
        "Mozilla/5.0 (test phone)",
        "https://news.example.com/post/1",
    )
    (mail,) = confirmation_mails(session)
    assert (mail.recipient, mail.subscriber_id, mail.status) == (sub.email, sub.id, "queued")
    message = parse(mail.body)
    assert message["To"].addresses[0].addr_spec == "Jane.Doe@example.com"
    assert "confirm" in message["Subject"].lower()
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"):
        assert header not in message
    assert confirm_path(session, sub.email).startswith("/confirm/")


def test_same_answer_for_new_pending_confirmed_and_unsubscribed(app, client, session):
    confirmed(client, session, "confirmed@example.com")
    left = confirmed(client, session, "left@example.com")
    client.post(unsubscribe_path(app, left))
    signup(client, "pending@example.com")
    advance(minutes=1)
    answers = set()
    for email in (
        "new@example.com",
        "pending@example.com",
        "confirmed@example.com",
        "left@example.com",
    ):
        html_answer = signup(client, email)
        json_answer = client.post(
            "/subscribe", json={"email": email}, headers={"Accept": "application/json"}
        )
        answers.add(
            (
                html_answer.status_code,
                html_answer.get_data(),
                json_answer.status_code,
                json_answer.get_data(),
            )
        )
    assert len(answers) == 1
    (html_status, _, json_status, json_body) = answers.pop()
    assert (html_status, json_status) == (200, 200)
    assert b'"status":"ok"' in json_body.replace(b" ", b"")


def test_confirmed_address_gets_no_mail_and_no_change_on_repeat_signup(client, session):
    sub = confirmed(client, session, "c@example.com")
    before = snapshot(session)
    advance(hours=2)
    assert signup(client, "C@example.com").status_code == 200
    assert snapshot(session) == before
    assert len(confirmation_mails(session)) == 1
    assert subscriber(session, "c@example.com").id == sub.id


def test_json_signup_and_malformed_json(client, session):
    ok = client.post(
        "/subscribe", json={"email": "j@example.com"}, headers={"Accept": "application/json"}
    )
    assert ok.status_code == 200 and ok.get_json()["status"] == "ok"
    assert subscriber(session, "j@example.com").status == "pending"
    bad = client.post(
        "/subscribe",
        data="[1, 2]",
        content_type="application/json",
        headers={"Accept": "application/json"},
    )
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_email"


def test_json_nested_too_deep_is_a_400_not_a_500(client, session):
    # Bodies (within MAILER_MAX_REQUEST_BYTES) that make Python's JSON decoder give up with
    # RecursionError (a 500 before).
    for body in ("[" * 20_000 + "]" * 20_000, '{"email":' * 5000 + '"a"' + "}" * 5000):
        response = client.post(
            "/subscribe",
            data=body,
            content_type="application/json",
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_email"
    assert snapshot(session)[1] == (0, 0)


def test_honeypot_gets_the_normal_answer_and_nothing_is_stored_or_sent(client, session):
    human = signup(client, "human@example.com")
    bot = signup(client, "bot@example.com", website="http://spam.example")
    assert (bot.status_code, bot.get_data()) == (human.status_code, human.get_data())
    assert subscriber(session, "bot@example.com") is None
    assert [m.recipient for m in confirmation_mails(session)] == ["human@example.com"]


def test_per_address_one_mail_per_ten_minutes_and_five_a_day(client, session):
    for _ in range(4):
        assert signup(client, "p@example.com").status_code == 200
    assert len(confirmation_mails(session)) == 1
    advance(minutes=9, seconds=59)
    signup(client, "p@example.com")
    assert len(confirmation_mails(session)) == 1
    for expected in (2, 3, 4, 5, 5, 5):
        advance(minutes=10)
        signup(client, "p@example.com")
        assert len(confirmation_mails(session)) == expected
    clock.freeze(datetime(2026, 3, 3, 0, 0, 1, tzinfo=UTC))  # the next UTC day
    signup(client, "p@example.com")
    assert len(confirmation_mails(session)) == 6
    assert subscriber(session, "p@example.com").confirmations_that_day == 1


def test_hourly_cap_keeps_signups_and_queues_their_mail_for_a_later_hour(app, client, session):
    app.config["MAILER_CONFIRMATIONS_PER_HOUR"] = 2
    clock.freeze(T0 + timedelta(minutes=30))
    for n in range(5):
        assert signup(client, f"cap{n}@example.com").status_code == 200
    run_signup_job(session)
    assert session.query(TransactionalMail).count() == 5
    planned = [m.next_attempt_at for m in confirmation_mails(session)]
    now = T0 + timedelta(minutes=30)
    assert planned == [
        now,
        now,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
    ]
    for n in range(5):
        assert subscriber(session, f"cap{n}@example.com").status == "pending"


def test_csrf_is_exempt_only_on_our_token_and_signup_routes(app, client):
    def probe():
        return "changed"

    app.add_url_rule("/csrf-probe", "csrf_probe", probe, methods=["POST"])
    assert client.post("/csrf-probe").status_code == 400  # Flask-WTF still guards the rest
    assert client.post("/subscribe", data={"email": "x@example.com"}).status_code == 200


def test_confirm_page_get_and_head_change_nothing_and_show_one_button(client, session):
    signup(client, "g@example.com")
    path = confirm_path(session, "g@example.com")
    before = snapshot(session)
    page = client.get(path)
    head = client.head(path)
    html = page.get_data(as_text=True)
    assert (page.status_code, head.status_code) == (200, 200)
    assert snapshot(session) == before
    assert "g***@e***.com" in html and "g@example.com" not in html
    assert html.count("<form") == 1 and 'method="post"' in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_confirm_post_confirms_once_and_twice_says_subscribed(client, session):
    signup(client, "c2@example.com")
    path = confirm_path(session, "c2@example.com")
    first = client.post(path, headers=BROWSER)
    assert first.status_code == 200 and "You're subscribed" in first.get_data(as_text=True)
    sub = subscriber(session, "c2@example.com")
    assert (sub.status, sub.confirmed_at) == ("confirmed", T0)
    assert events(session, sub.id) == ["signup_requested", "confirmed"]
    for again in (client.post(path), client.get(path)):
        assert again.status_code == 200
        assert "You're subscribed" in again.get_data(as_text=True)
    assert events(session, sub.id) == ["signup_requested", "confirmed"]


def test_expired_confirm_link_offers_a_fresh_one_within_the_limits(client, session):
    signup(client, "old@example.com")
    path = confirm_path(session, "old@example.com")
    advance(days=7, seconds=1)
    before = snapshot(session)
    page = client.get(path)
    assert page.status_code == 200 and "This link has expired" in page.get_data(as_text=True)
    assert snapshot(session) == before
    resent = client.post(path)
    assert "A new link is on its way" in resent.get_data(as_text=True)
    assert subscriber(session, "old@example.com").status == "pending"
    fresh = confirm_path(session, "old@example.com")
    assert fresh != path and len(confirmation_mails(session)) == 2
    limited = client.post(path)
    assert "We sent a link recently" in limited.get_data(as_text=True)
    assert len(confirmation_mails(session)) == 2
    assert "You're subscribed" in client.post(fresh).get_data(as_text=True)


def test_signed_tokens_naming_ids_no_row_can_have_get_a_4xx_not_a_500(app, client, session):
    # Only the secret key's holder can sign these, but they must still not reach the
    # database as numbers its id column cannot hold (OverflowError / "out of range").
    key = app.config["SECRET_KEY"]
    paths = []
    for subscriber_id in (2**63, -(2**63) - 1, 10**40, 0):
        paths += [
            f"/confirm/{make_confirm_token(key, subscriber_id, 1)}",
            f"/unsubscribe/{make_unsubscribe_token(key, subscriber_id, 1)}",
        ]
    for path in paths:
        for response in (
            client.get(path),
            client.post(path),
            client.post(path, data={"List-Unsubscribe": "One-Click"}),
        ):
            assert 400 <= response.status_code < 500, (path, response.status_code)


def test_altered_or_cross_used_tokens_get_a_4xx_page_and_change_nothing(app, client, session):
    sub = confirmed(client, session, "t@example.com")
    confirm = confirm_path(session, "t@example.com")
    unsubscribe = unsubscribe_path(app, sub)
    before = snapshot(session)
    wrong_purpose = [
        confirm.replace("/confirm/", "/unsubscribe/"),
        unsubscribe.replace("/unsubscribe/", "/confirm/"),
    ]
    altered = [
        unsubscribe[:-2],
        unsubscribe + "x",
        confirm[:-3] + "abc",
        "/confirm/%00",
        "/unsubscribe/" + "A" * 5000,
        "/confirm/..",
        "/unsubscribe/a.b.c",
    ]
    for path in wrong_purpose + altered:
        for response in (client.get(path), client.post(path), client.head(path)):
            assert 400 <= response.status_code < 500, (path, response.status_code)
    assert snapshot(session) == before
    page = client.get(altered[0]).get_data(as_text=True)
    assert "This link is not valid" in page and 'name="email"' in page


def test_unsubscribe_page_shows_button_and_erase_option_and_changes_nothing(app, client, session):
    sub = confirmed(client, session, "u@example.com")
    path = unsubscribe_path(app, sub)
    before = snapshot(session)
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert client.head(path).status_code == 200
    assert page.status_code == 200 and "u***@e***.com" in html
    assert 'name="action" value="erase"' in html
    assert snapshot(session) == before


@pytest.mark.parametrize(
    "body",
    [
        {
            "data": "List-Unsubscribe=One-Click",
            "content_type": "application/x-www-form-urlencoded",
        },
        {"data": {"List-Unsubscribe": "One-Click"}, "content_type": "multipart/form-data"},
        {},
    ],
    ids=["urlencoded", "multipart", "empty"],
)
def test_one_click_post_unsubscribes_with_200_no_redirect_no_cookie(app, session, body):
    client = app.test_client()
    sign = client.post("/subscribe", data={"email": "oc@example.com"})
    assert sign.status_code == 200
    client.post(confirm_path(session, "oc@example.com"))
    sub = subscriber(session, "oc@example.com")
    path = unsubscribe_path(app, sub)
    fresh = app.test_client(use_cookies=False)  # what a mailbox provider sends: no cookies
    for _ in range(2):  # idempotent
        response = fresh.post(path, **body)
        assert response.status_code == 200
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
        assert "You're unsubscribed" in response.get_data(as_text=True)
    sub = subscriber(session, "oc@example.com")
    assert (sub.status, sub.unsubscribed_at) == ("unsubscribed", T0)
    assert events(session, sub.id) == ["signup_requested", "confirmed", "unsubscribed"]
    source = session.query(ConsentEvent).filter_by(action="unsubscribed").one().source
    assert source == ("unsubscribe page" if body == {} else "one-click (RFC 8058)")


def test_resubscribing_after_leaving_is_double_opt_in_again_and_old_links_do_nothing(
    app, client, session
):
    sub = confirmed(client, session, "back@example.com")
    old_unsubscribe = unsubscribe_path(app, sub)
    old_confirm = confirm_path(session, "back@example.com")
    client.post(old_unsubscribe)
    advance(minutes=11)
    assert signup(client, "back@example.com").status_code == 200
    sub = subscriber(session, "back@example.com")
    # Still unsubscribed until they confirm (issue 11): a stranger may have typed the address.
    assert (sub.status, sub.version) == ("unsubscribed", 2)
    new_confirm = confirm_path(session, "back@example.com")
    assert new_confirm != old_confirm
    before = snapshot(session)
    one_click = {"List-Unsubscribe": "One-Click"}
    assert client.post(old_confirm).status_code == 410
    assert client.post(old_confirm, data=one_click).status_code == 410
    assert client.post(old_unsubscribe).status_code == 410  # the page's button
    # RFC 8058 one-click target: always 200 (providers take anything else for a failure).
    stale = client.post(old_unsubscribe, data=one_click)
    assert stale.status_code == 200 and "no longer changes anything" in stale.get_data(True)
    assert snapshot(session) == before
    assert client.post(new_confirm).status_code == 200
    sub = subscriber(session, "back@example.com")
    assert (sub.status, sub.version) == ("confirmed", 2)
    assert client.post(old_unsubscribe).status_code == 410
    assert client.post(old_unsubscribe, data=one_click).status_code == 200
    assert subscriber(session, "back@example.com").status == "confirmed"
    assert events(session, sub.id) == [
        "signup_requested",
        "confirmed",
        "unsubscribed",
        "resubscribe_requested",
        "confirmed",
    ]


def test_confirm_link_of_someone_who_left_cannot_bring_them_back(app, client, session):
    signup(client, "gone@example.com")
    path = confirm_path(session, "gone@example.com")
    client.post(path)
    sub = subscriber(session, "gone@example.com")
    client.post(unsubscribe_path(app, sub))
    response = client.post(path)
    assert response.status_code == 410
    assert "no longer works" in response.get_data(as_text=True)
    assert subscriber(session, "gone@example.com").status == "unsubscribed"


def test_admin_test_copy_link_explains_and_changes_nothing(client, session):
    before = snapshot(session)
    for response in (client.get("/unsubscribe/test"), client.post("/unsubscribe/test")):
        assert response.status_code == 200
        assert "test copy" in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_internationalized_address_with_smtputf8_on_is_one_row_whatever_its_case(
    app, client, session
):
    app.config["MAILER_ALLOW_SMTPUTF8"] = True
    for typed in ("Ärger@example.com", "Ärger@Example.com"):
        assert signup(client, typed).status_code == 200
    run_signup_job(session)
    (row,) = session.query(Subscriber).all()
    assert row.email == "Ärger@example.com"
