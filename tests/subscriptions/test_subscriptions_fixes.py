"""Regressions: one-click unsubscribe and the per-IP limit, stale one-click links, the confirm
link's lifetime in words, and signup input that is not a string or not UTF-8.
SQLite and PostgreSQL.
"""

import pytest

from mailer import clock
from mailer.subscriptions import service
from mailer.subscriptions.addresses import EMPTY_MESSAGE, ENCODING_MESSAGE, NOT_TEXT_MESSAGE
from mailer.subscriptions.tokens import make_unsubscribe_token
from tests.support.signup import (
    confirm_path,
    confirmation_mails,
    parse,
    snapshot,
    subscriber,
    text_part,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def app_config(app_config):
    app_config["MAILER_SIGNUP_RATE_LIMIT"] = "1000/minute"
    app_config["MAILER_TOKEN_RATE_LIMIT"] = "30/minute"
    return app_config


def _path(app, sub) -> str:
    return f"/unsubscribe/{make_unsubscribe_token(app.config['SECRET_KEY'], sub.id, sub.version)}"


def _multipart_one_click() -> dict:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--B--\r\n"
    )
    return {"data": body, "content_type": "multipart/form-data; boundary=B"}


def test_verified_one_click_posts_are_exempt_from_the_per_ip_limit(app, client, session):
    subs = [
        service.add_subscriber(session, f"oc{n}@example.com", confirmed=True, source="cli")
        for n in range(40)
    ]
    paths = [_path(app, sub) for sub in subs]
    codes = [
        client.post(path, **(_multipart_one_click() if n % 2 else {"data": ONE_CLICK})).status_code
        for n, path in enumerate(paths)
    ]
    assert codes == [200] * 40
    assert {subscriber(session, sub.email).status for sub in subs} == {"unsubscribed"}
    # Forged tokens, even with the one-click body, still count against the limit.
    forged = [client.post("/unsubscribe/forged.token", data=ONE_CLICK) for _ in range(30)]
    assert [r.status_code for r in forged] == [400] * 30
    assert client.post("/unsubscribe/forged.token", data=ONE_CLICK).status_code == 429
    # So does the page's button (no one-click body), even with a valid token.
    assert client.post(paths[0]).status_code == 429
    # A valid one-click POST still goes through.
    assert client.post(paths[1], data=ONE_CLICK).status_code == 200


def test_button_posts_without_the_one_click_body_keep_the_limit(app, client, session):
    sub = service.add_subscriber(session, "btn@example.com", confirmed=True, source="cli")
    path = _path(app, sub)
    assert [client.post(path).status_code for _ in range(30)] == [200] * 30
    assert client.post(path).status_code == 429
    erase = {"action": "erase", "confirm": "yes", **ONE_CLICK}
    assert client.post(path, data=erase).status_code == 429
    assert subscriber(session, "btn@example.com") is not None


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (604800, "7 days"),
        (86400, "1 day"),
        (129600, "36 hours"),
        (7200, "2 hours"),
        (3600, "1 hour"),
        (120, "2 minutes"),
        (90, "90 seconds"),
        (2, "2 seconds"),
        (1, "1 second"),
        (0, "0 seconds"),
        (694800, "8 days"),
    ],
)
def test_humanize_duration(seconds, words):
    assert service.humanize_duration(seconds) == words


@pytest.mark.parametrize(("max_age", "words"), [(2, "2 seconds"), (604800, "7 days")])
def test_confirm_mail_and_expired_page_give_the_lifetime_in_words(
    app, client, session, max_age, words
):
    app.config["MAILER_CONFIRM_MAX_AGE"] = max_age
    client.post("/subscribe", data={"email": "life@example.com"})
    mails = confirmation_mails(session, "life@example.com")
    message = parse(mails[-1].body)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"The link works for {words}." in " ".join(text_part(message).split())
    assert f"It works for {words}." in html and "day(s)" not in html
    clock.freeze(clock.now().replace(year=2099))
    try:
        page = client.get(confirm_path(session, "life@example.com")).get_data(as_text=True)
    finally:
        clock.freeze(None)
    assert "This link has expired" in page
    assert f"Confirmation links work for {words}." in page and "day(s)" not in page


@pytest.mark.parametrize("value", [123, [1, 2], None, True, {"a": "b"}])
def test_json_email_that_is_not_a_string_is_refused_clearly(client, session, value):
    response = client.post("/subscribe", json={"email": value}, headers=JSON)
    assert response.status_code == 422
    assert response.get_json()["message"] == NOT_TEXT_MESSAGE
    assert "must be a string" in NOT_TEXT_MESSAGE
    assert snapshot(session) == ((), (0, 0))


@pytest.mark.parametrize("payload", [{}, {"email": ""}, {"email": "  "}])
def test_json_email_missing_or_empty_asks_for_the_address(client, payload):
    response = client.post("/subscribe", json=payload, headers=JSON)
    assert response.status_code == 422
    assert response.get_json()["message"] == EMPTY_MESSAGE


def test_form_bytes_that_are_not_utf8_get_an_encoding_message(client, session):
    urlencoded = client.post(
        "/subscribe",
        data=b"email=\xff\xfe%40example.com",
        content_type="application/x-www-form-urlencoded",
    )
    assert urlencoded.status_code == 400
    html = urlencoded.get_data(as_text=True)
    assert "could not be read" in html and EMPTY_MESSAGE not in html
    multipart = client.post(
        "/subscribe",
        data=(
            b'--B\r\nContent-Disposition: form-data; name="email"\r\n\r\n'
            b"\xffa@example.com\r\n--B--\r\n"
        ),
        content_type="multipart/form-data; boundary=B",
        headers=JSON,
    )
    assert multipart.status_code == 422
    assert multipart.get_json()["message"] == ENCODING_MESSAGE
    assert snapshot(session) == ((), (0, 0))


def test_nul_byte_is_refused_and_not_echoed_into_the_form(client, session):
    response = client.post("/subscribe", data={"email": "a\x00b\x1f@example.com"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "control characters" in html
    assert "\x00" not in html and "\x1f" not in html
    assert 'value="ab@example.com"' in html
    assert snapshot(session) == ((), (0, 0))
