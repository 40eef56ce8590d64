"""Signed tokens for the confirm and unsubscribe links (itsdangerous).

Each purpose has its own salt, so a confirm token never verifies as an unsubscribe token and
the other way round. A token carries ``[subscriber_id, version]``: ``Subscriber.version`` is
bumped on every re-subscription, so links from an earlier subscription stop working.
Confirm tokens carry a timestamp taken from :mod:`mailer.clock` and expire; unsubscribe
tokens carry none and never expire (RFC 8058 §3.2 expects the one-click URL to keep working).
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property, lru_cache

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

from .. import clock
from ..models import MAX_DATABASE_ID
from .errors import ExpiredToken, InvalidToken

CONFIRM_SALT = "mailer.subscriptions.confirm.v1"
UNSUBSCRIBE_SALT = "mailer.subscriptions.unsubscribe.v1"
_SIGNER_KWARGS = {"digest_method": hashlib.sha256}


@dataclass(frozen=True)
class TokenClaim:
    """What a valid token says: the subscriber id and the subscription version."""

    subscriber_id: int
    version: int


class _ClockTimestampSigner(TimestampSigner):
    # Read the time from mailer.clock so that tests can set it instead of sleeping.
    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


class _KeyCachingSigner(Signer):
    # itsdangerous derives the HMAC key from the secret on every signature; the delivery
    # engine signs one unsubscribe token per message, so derive the signing key once.
    @cached_property
    def _signing_key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """Return the derived key; the one for the signing secret is computed once."""
        if secret_key is None:
            return self._signing_key
        return super().derive_key(secret_key)


@lru_cache(maxsize=16)
def _unsubscribe_serializer(secret_keys: tuple[str, ...]) -> URLSafeSerializer:
    # Cached: the delivery engine makes one unsubscribe token per message.
    return URLSafeSerializer(
        list(secret_keys),
        salt=UNSUBSCRIBE_SALT,
        signer=_KeyCachingSigner,
        signer_kwargs=_SIGNER_KWARGS,
    )


@lru_cache(maxsize=16)
def _unsubscribe_signer(secret_key: str) -> Signer:
    # One signer per key instead of a new one (and a new key derivation) per token.
    return _unsubscribe_serializer((secret_key,)).make_signer(UNSUBSCRIBE_SALT)


@lru_cache(maxsize=16)
def _confirm_serializer(secret_keys: tuple[str, ...]) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        list(secret_keys),
        salt=CONFIRM_SALT,
        signer=_ClockTimestampSigner,
        signer_kwargs=_SIGNER_KWARGS,
    )


def _keys(secret_key: str, fallbacks: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    # itsdangerous signs with the last key and verifies with any of them (key rotation).
    if not secret_key:
        raise ValueError("SECRET_KEY is empty: tokens cannot be signed")
    return (*fallbacks, secret_key)


def make_unsubscribe_token(secret_key: str, subscriber_id: int, version: int) -> str:
    """Return the URL-safe, never-expiring unsubscribe token for (subscriber, version).

    Cheap (the serializer is cached per secret key): the delivery engine calls it per message.
    Raises ValueError when ``secret_key`` is empty.
    """
    serializer = _unsubscribe_serializer(_keys(secret_key, ()))
    payload = serializer.dump_payload([subscriber_id, version])
    return _unsubscribe_signer(secret_key).sign(payload).decode("ascii")


def make_confirm_token(secret_key: str, subscriber_id: int, version: int) -> str:
    """Return a URL-safe confirm token for (subscriber, version), timestamped with mailer.clock.

    It expires after ``MAILER_CONFIRM_MAX_AGE`` seconds (checked by :func:`read_confirm_token`).
    """
    return _confirm_serializer(_keys(secret_key, ())).dumps([subscriber_id, version])


def read_unsubscribe_token(
    secret_key: str, token: str, fallbacks: tuple[str, ...] | list[str] = ()
) -> TokenClaim:
    """Verify an unsubscribe token and return its claim.

    Args:
        secret_key: the app's SECRET_KEY; ``fallbacks`` are older keys still accepted
            (Flask's SECRET_KEY_FALLBACKS).
        token: the token from the URL.

    Raises:
        InvalidToken: forged, altered, truncated, or made for another purpose.
    """
    try:
        payload = _unsubscribe_serializer(_keys(secret_key, tuple(fallbacks))).loads(token)
    except BadSignature as exc:
        raise InvalidToken("the link is not valid") from exc
    return _claim(payload)


def read_confirm_token(
    secret_key: str, token: str, max_age: int, fallbacks: tuple[str, ...] | list[str] = ()
) -> TokenClaim:
    """Verify a confirm token no older than ``max_age`` seconds and return its claim.

    Raises:
        ExpiredToken: correctly signed but older than ``max_age`` (carries the claim, so the
            caller can offer a fresh link to that subscriber).
        InvalidToken: forged, altered, truncated, or made for another purpose.
    """
    serializer = _confirm_serializer(_keys(secret_key, tuple(fallbacks)))
    try:
        payload = serializer.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # The signature was checked before the age, so the expired payload is authentic.
        claim = _claim(serializer.load_payload(exc.payload))
        raise ExpiredToken(claim.subscriber_id, claim.version) from exc
    except BadSignature as exc:
        raise InvalidToken("the link is not valid") from exc
    return _claim(payload)


def _claim(payload: object) -> TokenClaim:
    valid = (
        isinstance(payload, list)
        and len(payload) == 2
        and all(type(part) is int for part in payload)
        # An id the BIGINT column cannot hold would fail in the database (a 500), not here.
        and 1 <= payload[0] <= MAX_DATABASE_ID
    )
    if not valid:
        raise InvalidToken("the link is not valid")
    return TokenClaim(subscriber_id=payload[0], version=payload[1])


def unsubscribe_url(base_url: str, token: str) -> str:
    """Return ``{base_url}/unsubscribe/{token}`` (``base_url`` without a trailing slash)."""
    return f"{base_url}/unsubscribe/{token}"


def confirm_url(base_url: str, token: str) -> str:
    """Return ``{base_url}/confirm/{token}`` (``base_url`` without a trailing slash)."""
    return f"{base_url}/confirm/{token}"
