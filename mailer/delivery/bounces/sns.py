"""Amazon SES notifications through Amazon SNS: message signatures, subscriptions, events.

An SNS message is verified before anything is read from it (AWS, "Verifying the signatures
of Amazon SNS messages"): its ``TopicArn`` must be one of ``MAILER_SES_TOPIC_ARNS`` (any AWS
account can make a topic and have SNS sign its messages, so the signature alone proves
nothing about whose it is); its ``SigningCertURL`` must be ``https://sns.<region>.amazonaws.com/
...pem``; the certificate found there (fetched by :func:`sns_get`, cached per URL) must verify
the RSA signature (``SignatureVersion`` 1: SHA1, 2: SHA256) of the canonical string.

A ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL`` (only an SNS URL
of the same form). :func:`sns_get` is the one function that reaches the internet; the tests
replace it with a fake.
"""

import base64
import binascii
import json
import logging
import re
import urllib.request
from collections.abc import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import BadPayload, Unverified
from .reports import COMPLAINT, HARD, SOFT, Finding, provider_finding

log = logging.getLogger(__name__)

SNS_URL = re.compile(r"^https://sns\.[a-z0-9-]{1,30}\.amazonaws\.com(\.cn)?/[^\s#]*$")
MAX_FETCH_BYTES = 64 * 1024
FETCH_TIMEOUT = 10.0  # seconds
MAX_CACHED = 32  # signing certificates kept in memory
_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),  # fmt: skip
}
_KEYS["UnsubscribeConfirmation"] = _KEYS["SubscriptionConfirmation"]
_certificates: dict[str, x509.Certificate] = {}


def sns_get(url: str) -> bytes:
    """GET an SNS URL (a signing certificate, a SubscribeURL); at most 64 KiB, 10 s.

    Only :data:`SNS_URL` addresses are fetched (checked by the callers and again here).
    Tests replace this function with a fake: it is the only call that needs the internet.
    """
    if not SNS_URL.match(url):
        raise Unverified(f"ses: not an SNS URL: {url[:200]!r}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
        return response.read(MAX_FETCH_BYTES)


def verify(config: Mapping, message: dict) -> dict | None:
    """Verify an SNS message; return the SES notification of a ``Notification``, else None.

    A verified ``SubscriptionConfirmation`` is confirmed here (its SubscribeURL fetched).

    Raises:
        Unverified: a topic not in ``MAILER_SES_TOPIC_ARNS`` (or none set), a certificate URL
            that is not SNS's, or a signature that does not verify.
        BadPayload: a verified Notification whose Message is not an SES notification.
    """
    topics = [t.strip() for t in str(config.get("MAILER_SES_TOPIC_ARNS", "")).split(",")]
    if message.get("TopicArn") not in [t for t in topics if t]:
        raise Unverified("ses: the topic is not one of MAILER_SES_TOPIC_ARNS")
    kind = message.get("Type")
    if kind not in _KEYS:
        raise Unverified(f"ses: unknown SNS message type {str(kind)[:40]!r}")
    _check_signature(message, kind)
    if kind == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        if not SNS_URL.match(url):
            raise Unverified("ses: the SubscribeURL is not an SNS URL")
        sns_get(url)
        log.info("ses: subscribed to SNS topic %s", message.get("TopicArn"))
        return None
    if kind != "Notification":
        return None
    try:
        notification = json.loads(message.get("Message", ""))
    except ValueError:
        raise BadPayload("ses: the SNS Message is not JSON") from None
    if not isinstance(notification, dict):
        raise BadPayload("ses: the SNS Message is not an object")
    return notification


def _check_signature(message: dict, kind: str) -> None:
    url = str(message.get("SigningCertURL", ""))
    if not (SNS_URL.match(url) and url.endswith(".pem")):
        raise Unverified("ses: the SigningCertURL is not an SNS certificate URL")
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Unverified("ses: unknown SignatureVersion")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except binascii.Error:
        raise Unverified("ses: the Signature is not base64") from None
    canonical = "".join(
        f"{key}\n{message[key]}\n" for key in _KEYS[kind] if message.get(key) is not None
    )
    key = _certificate(url).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Unverified("ses: the signing certificate has no RSA key")
    try:
        key.verify(signature, canonical.encode(), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise Unverified("ses: the signature does not verify") from None


def _certificate(url: str) -> x509.Certificate:
    if url not in _certificates:
        if len(_certificates) >= MAX_CACHED:  # AWS rotates them rarely; keep the cache small
            _certificates.clear()
        try:
            _certificates[url] = x509.load_pem_x509_certificate(sns_get(url))
        except (ValueError, OSError):  # OSError: urllib's URLError, a timeout, a reset
            raise Unverified("ses: the signing certificate cannot be fetched or read") from None
    return _certificates[url]


def findings(notification: dict) -> list[Finding]:
    """The events of an SES bounce or complaint notification (other types: none)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    found = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        for recipient in bounce.get("bouncedRecipients") or []:
            if isinstance(recipient, dict):
                found += provider_finding(recipient.get("emailAddress"), HARD if hard else SOFT,
                              recipient.get("status"), recipient.get("diagnosticCode"))  # fmt: skip
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        if complaint.get("complaintFeedbackType") != "not-spam":
            for recipient in complaint.get("complainedRecipients") or []:
                if isinstance(recipient, dict):
                    found += provider_finding(recipient.get("emailAddress"), COMPLAINT, None, None)
    return found
