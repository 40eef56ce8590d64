"""POST /webhooks/bounces/<provider>: correct and forged signatures, replays, complaints, for
Mailgun, Postmark, SendGrid and SES (SNS); SQLite and PostgreSQL.

The SNS signing certificate cannot be fetched from AWS here: ``fake_sns_get`` stands in for
``sns.sns_get`` (the one function that reaches the internet) and serves a certificate these
tests made; everything else (signatures, the database, the app) is real.
"""

import base64
import hashlib
import hmac
import json
import urllib.error
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from mailer import clock
from mailer.delivery.bounces import sns
from mailer.models import Bounce, ConsentEvent, Subscriber
from tests.support.bounces import mailed

MAILGUN_KEY = "key-mailgun-signing-0123456789"
TOPIC = "arn:aws:sns:ap-northeast-1:123456789012:ses-bounces"
CERT_URL = "https://sns.ap-northeast-1.amazonaws.com/SimpleNotificationService-abc.pem"
SUBSCRIBE_URL = "https://sns.ap-northeast-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate_pem(key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def fetched(monkeypatch):
    """Replace ``sns.sns_get`` with ``fake_sns_get``; yields the URLs it was asked for."""
    asked = []

    def fake_sns_get(url: str) -> bytes:
        asked.append(url)
        return _certificate_pem(SNS_KEY) if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    monkeypatch.setattr(sns, "sns_get", fake_sns_get)
    sns._certificates.clear()
    yield asked
    sns._certificates.clear()


@pytest.fixture
def app_config(app_config):
    """Every provider configured."""
    public = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        **app_config,
        "MAILER_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
        "MAILER_WEBHOOK_USER": "postmark",
        "MAILER_WEBHOOK_PASSWORD": "pm-secret",
        "MAILER_SENDGRID_VERIFICATION_KEY": base64.b64encode(public).decode(),
        "MAILER_SES_TOPIC_ARNS": f"arn:aws:sns:us-east-1:1:other, {TOPIC}",
    }


def state(session, email: str) -> tuple[str, int, int]:
    session.expire_all()
    row = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
    return row.status, row.hard_bounces, row.soft_failures_in_row


def bounce_rows(session) -> list[tuple[str, str, str, str | None]]:
    rows = session.execute(
        select(Subscriber.email, Bounce.kind, Bounce.source, Bounce.status_code)
        .join(Bounce)
        .order_by(Bounce.id)
    )
    return [tuple(r) for r in rows]


# -- Mailgun -----------------------------------------------------------------------------


def mailgun_body(event: dict, token="tok-1", key=MAILGUN_KEY, timestamp=None) -> dict:
    timestamp = str(int(timestamp if timestamp is not None else clock.now().timestamp()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event}  # fmt: skip


FAILED = {
    "event": "failed",
    "severity": "permanent",
    "recipient": "ann@example.com",
    "delivery-status": {"code": 550, "enhanced-code": "5.1.1", "description": "no such user"},
}


def test_mailgun_correct_forged_replayed_and_stale(client, session):
    mailed(session, ["ann@example.com", "bob@example.com"])
    url = "/webhooks/bounces/mailgun"

    forged = mailgun_body(FAILED, key="not-the-key")
    assert client.post(url, json=forged).status_code == 403
    stale = mailgun_body(FAILED, timestamp=clock.now().timestamp() - 301)
    assert client.post(url, json=stale).status_code == 403
    assert bounce_rows(session) == []

    good = mailgun_body(FAILED)
    answer = client.post(url, json=good)
    assert (answer.status_code, answer.json) == (200, {"recorded": 1, "ignored": 0, "replayed": 0})
    assert client.post(url, json=good).json == {"recorded": 0, "ignored": 0, "replayed": 1}
    assert state(session, "ann@example.com") == ("bounced", 1, 0)
    assert bounce_rows(session) == [("ann@example.com", "hard", "mailgun", "5.1.1")]

    complaint = {"event": "complained", "recipient": "bob@example.com"}
    assert client.post(url, json=mailgun_body(complaint, token="tok-2")).json["recorded"] == 1
    assert state(session, "bob@example.com")[0] == "unsubscribed"
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.action == "complaint")).one()
    assert event.source == "mailgun"


def test_mailgun_temporary_failure_is_soft_and_unknown_addresses_change_nothing(client, session):
    mailed(session, ["cat@example.com"])
    soft = {**FAILED, "severity": "temporary", "recipient": "cat@example.com"}
    assert client.post("/webhooks/bounces/mailgun", json=mailgun_body(soft)).status_code == 200
    assert state(session, "cat@example.com") == ("confirmed", 0, 1)
    stranger = {**FAILED, "recipient": "stranger@example.com"}
    answer = client.post("/webhooks/bounces/mailgun", json=mailgun_body(stranger, token="t9"))
    assert answer.json == {"recorded": 0, "ignored": 1, "replayed": 0}


# -- Postmark ----------------------------------------------------------------------------


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_basic_auth_bounce_complaint_and_replay(client, session):
    mailed(session, ["dan@example.com", "eve@example.com"])
    url = "/webhooks/bounces/postmark"
    bounce = {"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1,
              "Email": "dan@example.com", "Details": "smtp;550 5.1.1 unknown"}  # fmt: skip

    nothing = client.post(url, json=bounce)
    assert nothing.status_code == 401
    assert nothing.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post(url, json=bounce, headers=basic("postmark", "wrong")).status_code == 401
    assert bounce_rows(session) == []

    assert (
        client.post(url, json=bounce, headers=basic("postmark", "pm-secret")).json["recorded"] == 1
    )
    assert (
        client.post(url, json=bounce, headers=basic("postmark", "pm-secret")).json["replayed"] == 1
    )
    assert state(session, "dan@example.com") == ("bounced", 1, 0)

    spam = {"RecordType": "SpamComplaint", "ID": 43, "Email": "eve@example.com"}
    assert client.post(url, json=spam, headers=basic("postmark", "pm-secret")).status_code == 200
    assert state(session, "eve@example.com")[0] == "unsubscribed"
    assert [r[:3] for r in bounce_rows(session)] == [
        ("dan@example.com", "hard", "postmark"),
        ("eve@example.com", "complaint", "postmark"),
    ]


# -- SendGrid ----------------------------------------------------------------------------


def sendgrid_post(client, events, key=SENDGRID_KEY, tamper: bytes = b""):
    body = json.dumps(events).encode()
    timestamp = str(int(clock.now().timestamp()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    return client.post("/webhooks/bounces/sendgrid", data=body + tamper, headers=headers)


def test_sendgrid_signed_batch_forged_and_replayed(client, session):
    mailed(session, ["fay@example.com", "gus@example.com", "hal@example.com"])
    events = [
        {"sg_event_id": "e1", "event": "bounce", "email": "fay@example.com", "status": "5.1.1",
         "reason": "550 5.1.1 unknown user", "type": "bounce"},
        {"sg_event_id": "e2", "event": "spamreport", "email": "gus@example.com"},
        {"sg_event_id": "e3", "event": "deferred", "email": "hal@example.com", "status": "4.2.2"},
        {"sg_event_id": "e4", "event": "delivered", "email": "hal@example.com"},
    ]  # fmt: skip

    assert sendgrid_post(client, events, key=OTHER_EC_KEY).status_code == 403
    assert sendgrid_post(client, events, tamper=b" ").status_code == 403
    assert bounce_rows(session) == []

    answer = sendgrid_post(client, events)
    assert answer.json == {"recorded": 3, "ignored": 1, "replayed": 0}
    assert sendgrid_post(client, events).json == {"recorded": 0, "ignored": 1, "replayed": 3}
    assert state(session, "fay@example.com") == ("bounced", 1, 0)
    assert state(session, "gus@example.com")[0] == "unsubscribed"
    assert state(session, "hal@example.com") == ("confirmed", 0, 1)


# -- Amazon SES via SNS ------------------------------------------------------------------


def sns_message(kind: str, message: str, message_id="m-1", key=SNS_KEY, **fields) -> dict:
    body = {"Type": kind, "MessageId": message_id, "TopicArn": TOPIC, "Message": message,
            "Timestamp": "2026-12-03T12:00:00.000Z", "SignatureVersion": "2",
            "SigningCertURL": CERT_URL, **fields}  # fmt: skip
    keys = sns._KEYS[kind]
    canonical = "".join(f"{k}\n{body[k]}\n" for k in keys if body.get(k) is not None)
    signature = key.sign(canonical.encode(), padding.PKCS1v15(), hashes.SHA256())
    body["Signature"] = base64.b64encode(signature).decode()
    return body


def ses_bounce(address: str, bounce_type: str = "Permanent") -> str:
    return json.dumps({
        "notificationType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bouncedRecipients": [
            {"emailAddress": address, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}]},
        "mail": {"messageId": "0100abc"},
    })  # fmt: skip


def test_ses_subscription_confirmation_is_confirmed_at_the_sns_url(client, fetched):
    message = sns_message("SubscriptionConfirmation", "confirm", Token="t",
                          SubscribeURL=SUBSCRIBE_URL)  # fmt: skip
    assert client.post("/webhooks/bounces/ses", json=message).status_code == 200
    assert fetched == [CERT_URL, SUBSCRIBE_URL]


def test_ses_bounce_complaint_forgery_and_replay(client, session, fetched):
    mailed(session, ["ivy@example.com", "joe@example.com"])
    url = "/webhooks/bounces/ses"

    forged = sns_message("Notification", ses_bounce("ivy@example.com"), key=OTHER_RSA_KEY)
    assert client.post(url, json=forged).status_code == 403
    tampered = sns_message("Notification", ses_bounce("joe@example.com"))
    tampered["Message"] = ses_bounce("ivy@example.com")
    assert client.post(url, json=tampered).status_code == 403
    assert bounce_rows(session) == []

    good = sns_message("Notification", ses_bounce("ivy@example.com"))
    assert client.post(url, json=good).json["recorded"] == 1
    assert client.post(url, json=good).json["replayed"] == 1
    assert state(session, "ivy@example.com") == ("bounced", 1, 0)

    complaint = json.dumps({"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "joe@example.com"}],
        "complaintFeedbackType": "abuse"}})  # fmt: skip
    assert client.post(url, json=sns_message("Notification", complaint, "m-2")).status_code == 200
    assert state(session, "joe@example.com")[0] == "unsubscribed"
    assert fetched == [CERT_URL]  # fetched once, then cached


def test_ses_certificate_only_from_sns_and_topic_only_ours(client, session, fetched):
    mailed(session, ["kim@example.com"])
    for cert_url in ("https://evil.example.com/cert.pem", "http://sns.us-east-1.amazonaws.com/c.pem",
                     "https://sns.us-east-1.amazonaws.com.evil.example/c.pem"):  # fmt: skip
        message = sns_message(
            "Notification", ses_bounce("kim@example.com"), SigningCertURL=cert_url
        )
        assert client.post("/webhooks/bounces/ses", json=message).status_code == 403
    other_topic = sns_message("Notification", ses_bounce("kim@example.com"),
                              TopicArn="arn:aws:sns:us-east-1:999:theirs")  # fmt: skip
    assert client.post("/webhooks/bounces/ses", json=other_topic).status_code == 403
    assert fetched == []
    assert state(session, "kim@example.com") == ("confirmed", 0, 0)


# -- All ---------------------------------------------------------------------------------


def test_unconfigured_unknown_oversized_and_not_mailed_lately(app, client, session):
    app.config["MAILER_MAILGUN_SIGNING_KEY"] = ""
    assert client.post("/webhooks/bounces/mailgun", json=mailgun_body(FAILED)).status_code == 403
    assert client.post("/webhooks/bounces/other", json={}).status_code == 404
    huge = b"x" * (2 * 1024 * 1024)
    assert client.post("/webhooks/bounces/postmark", data=huge).status_code == 413
    app.config["MAILER_MAILGUN_SIGNING_KEY"] = MAILGUN_KEY
    t0 = clock.now()
    mailed(session, ["ann@example.com"], sent_at=t0 - timedelta(days=31))
    answer = client.post("/webhooks/bounces/mailgun", json=mailgun_body(FAILED))
    assert answer.json == {"recorded": 0, "ignored": 1, "replayed": 0}
    assert state(session, "ann@example.com") == ("confirmed", 0, 0)


def test_a_certificate_that_cannot_be_fetched_is_a_403_not_a_500(client, session, monkeypatch):
    # Before: urllib's URLError escaped as an HTML 500 (found by a fresh user's test).
    def unreachable_sns_get(url: str) -> bytes:  # a fake: the real one fetches from AWS
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(sns, "sns_get", unreachable_sns_get)
    sns._certificates.clear()
    mailed(session, ["lee@example.com"])
    message = sns_message("Notification", ses_bounce("lee@example.com"))
    assert client.post("/webhooks/bounces/ses", json=message).status_code == 403
    assert state(session, "lee@example.com") == ("confirmed", 0, 0)
