"""Provider webhooks: each request verified before anything changes, then its events processed.

``POST /webhooks/bounces/<provider>`` (the view is :mod:`.views`) calls :func:`handle_webhook`:

- ``mailgun``: HMAC-SHA256 of timestamp + token with ``MAILER_MAILGUN_SIGNING_KEY``, the
  timestamp within :data:`MAILGUN_WINDOW` (5 minutes) of now, each token taken once.
- ``postmark``: HTTP basic auth with ``MAILER_WEBHOOK_USER`` and ``MAILER_WEBHOOK_PASSWORD``.
- ``sendgrid``: the signed event webhook, ECDSA (P-256, SHA-256) over timestamp + body with
  ``MAILER_SENDGRID_VERIFICATION_KEY`` (base64 DER public key, as SendGrid shows it).
- ``ses``: Amazon SNS messages (:mod:`.sns`).

A provider whose settings are empty refuses every request. Each event goes through the one
processor (:func:`.process.process_events`) under its provider's event id, so a repeated
event changes nothing twice.
"""

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy.engine import Engine

from ... import clock
from ..errors import BadPayload, Unverified
from . import sns
from .process import process_events
from .reports import COMPLAINT, HARD, SOFT, Finding, provider_finding

PROVIDERS = ("mailgun", "postmark", "sendgrid", "ses")
MAILGUN_WINDOW = 300  # seconds between Mailgun's timestamp and now, either way


@dataclass
class WebhookResult:
    """What a verified request did: events recorded, ignored, replayed (counts)."""

    recorded: int = 0
    ignored: int = 0
    replayed: int = 0
    notes: list[str] = field(default_factory=list)


def handle_webhook(
    engine: Engine, config: Mapping, provider: str, headers: Mapping, body: bytes
) -> WebhookResult:
    """Verify one webhook request of ``provider`` and process its events.

    Args:
        headers: the request's headers (case-insensitive mapping). body: its raw bytes.

    Raises:
        KeyError: an unknown provider.
        Unverified: the signature, token, timestamp or credentials do not verify, or the
            provider is not configured; nothing changed.
        BadPayload: verified, but not the JSON the provider sends.
    """
    handler = {
        "mailgun": _mailgun,
        "postmark": _postmark,
        "sendgrid": _sendgrid,
        "ses": _ses,
    }[provider]
    result = WebhookResult()
    for event_id, findings in handler(config, headers, body):
        _process(engine, config, provider, event_id, findings, result)
    return result


def _process(engine, config, provider: str, event_id: str, findings, result) -> None:
    if not findings:
        result.ignored += 1
        return
    outcome = process_events(engine, config, findings, provider, event_id)
    if outcome.status == "recorded":
        result.recorded += 1
    elif outcome.status == "replayed":
        result.replayed += 1
    else:
        result.ignored += 1


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"not JSON: {exc}") from None


# -- Mailgun -----------------------------------------------------------------------------


def _mailgun(config: Mapping, headers: Mapping, body: bytes):
    key = config.get("MAILER_MAILGUN_SIGNING_KEY", "")
    if not key:
        raise Unverified("mailgun: MAILER_MAILGUN_SIGNING_KEY is not set")
    payload = _json(body)
    signed = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signed, dict):
        raise Unverified("mailgun: no signature")
    timestamp, token = str(signed.get("timestamp", "")), str(signed.get("token", ""))
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not token or not hmac.compare_digest(expected, str(signed.get("signature", ""))):
        raise Unverified("mailgun: the signature does not verify")
    if not timestamp.isdigit() or abs(clock.now().timestamp() - int(timestamp)) > MAILGUN_WINDOW:
        raise Unverified("mailgun: the timestamp is not within 5 minutes of now")
    event = payload.get("event-data")
    if not isinstance(event, dict):
        raise BadPayload("mailgun: no event-data")
    # The token is the request's identity: taken once, a replay within the window is a no-op.
    yield token, _mailgun_findings(event)


def _mailgun_findings(event: dict) -> list[Finding]:
    kind = {"complained": COMPLAINT}.get(event.get("event"))
    if event.get("event") == "failed":
        kind = HARD if event.get("severity") == "permanent" else SOFT
    if kind is None:
        return []
    status = event.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    code = status.get("enhanced-code") or status.get("code")
    diagnostic = status.get("description") or status.get("message")
    return provider_finding(event.get("recipient"), kind, code, diagnostic)


# -- Postmark ----------------------------------------------------------------------------

POSTMARK_HARD = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
POSTMARK_SOFT = frozenset({"SoftBounce", "Transient", "DnsError", "MailboxFull"})


def _postmark(config: Mapping, headers: Mapping, body: bytes):
    user, password = (
        config.get("MAILER_WEBHOOK_USER", ""),
        config.get("MAILER_WEBHOOK_PASSWORD", ""),
    )
    if not (user and password):
        raise Unverified("postmark: MAILER_WEBHOOK_USER/PASSWORD are not set")
    given = _basic_auth(headers.get("Authorization", ""))
    if given is None:
        raise Unverified("postmark: no basic auth", challenge=True)
    ok_user = hmac.compare_digest(given[0].encode(), user.encode())
    ok_password = hmac.compare_digest(given[1].encode(), password.encode())
    if not (ok_user and ok_password):
        raise Unverified("postmark: wrong user name or password", challenge=True)
    event = _json(body)
    if not isinstance(event, dict):
        raise BadPayload("postmark: not an object")
    record, kind = event.get("RecordType"), None
    if record == "SpamComplaint":
        kind = COMPLAINT
    elif record == "Bounce":
        kind = HARD if event.get("Type") in POSTMARK_HARD else None
        kind = SOFT if event.get("Type") in POSTMARK_SOFT else kind
    findings = []
    if kind is not None:
        diagnostic = event.get("Details") or event.get("Description")
        findings = provider_finding(event.get("Email"), kind, event.get("TypeCode"), diagnostic)
    yield f"{record}:{event.get('ID')}", findings


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


# -- SendGrid ----------------------------------------------------------------------------

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _sendgrid(config: Mapping, headers: Mapping, body: bytes):
    key_text = config.get("MAILER_SENDGRID_VERIFICATION_KEY", "")
    if not key_text:
        raise Unverified("sendgrid: MAILER_SENDGRID_VERIFICATION_KEY is not set")
    try:
        key = load_der_public_key(base64.b64decode(key_text))
        signature = base64.b64decode(headers.get(SENDGRID_SIGNATURE, ""), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise Unverified(f"sendgrid: unreadable key or signature: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not signature:
        raise Unverified("sendgrid: no ECDSA key or no signature")
    signed = headers.get(SENDGRID_TIMESTAMP, "").encode() + body
    try:
        key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Unverified("sendgrid: the signature does not verify") from None
    events = _json(body)
    if not isinstance(events, list):
        raise BadPayload("sendgrid: not a list of events")
    for event in events:
        if isinstance(event, dict) and event.get("sg_event_id"):
            yield str(event["sg_event_id"]), _sendgrid_findings(event)


def _sendgrid_findings(event: dict) -> list[Finding]:
    name = event.get("event")
    if name == "spamreport":
        return provider_finding(event.get("email"), COMPLAINT)
    if name == "deferred":
        return provider_finding(
            event.get("email"), SOFT, event.get("status"), event.get("response")
        )
    if name in ("bounce", "dropped"):
        status = str(event.get("status") or "")
        kind = SOFT if status.startswith("4") or event.get("type") == "blocked" else HARD
        return provider_finding(event.get("email"), kind, status or None, event.get("reason"))
    return []


# -- Amazon SES via SNS ------------------------------------------------------------------


def _ses(config: Mapping, headers: Mapping, body: bytes):
    message = _json(body)
    if not isinstance(message, dict):
        raise BadPayload("ses: not an SNS message")
    notification = sns.verify(config, message)  # raises Unverified; confirms subscriptions
    if notification is not None:
        yield f"sns:{message.get('MessageId')}", sns.findings(notification)
