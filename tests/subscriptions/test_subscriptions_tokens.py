"""Confirm and unsubscribe tokens: purpose salts, versions, expiry by mailer.clock, tampering."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from mailer import clock
from mailer.subscriptions import tokens
from mailer.subscriptions.errors import ExpiredToken, InvalidToken

pytestmark = pytest.mark.nodb
KEY = "k" * 32
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def _reset_clock():
    yield
    clock.freeze(None)


def test_unsubscribe_token_round_trip_and_never_expires():
    clock.freeze(datetime(2026, 1, 5, tzinfo=UTC))
    token = tokens.make_unsubscribe_token(KEY, 42, 3)
    clock.freeze(datetime(2036, 1, 5, tzinfo=UTC))
    assert tokens.read_unsubscribe_token(KEY, token) == tokens.TokenClaim(42, 3)


def test_confirm_token_expires_after_max_age_by_the_mailer_clock():
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    clock.freeze(start)
    token = tokens.make_confirm_token(KEY, 7, 2)
    clock.freeze(start + timedelta(days=7) - timedelta(seconds=1))
    assert tokens.read_confirm_token(KEY, token, max_age=7 * DAY) == tokens.TokenClaim(7, 2)
    clock.freeze(start + timedelta(days=7, seconds=2))
    with pytest.raises(ExpiredToken) as caught:
        tokens.read_confirm_token(KEY, token, max_age=7 * DAY)
    assert (caught.value.subscriber_id, caught.value.version) == (7, 2)


def test_tokens_are_not_interchangeable_between_purposes():
    confirm = tokens.make_confirm_token(KEY, 1, 1)
    unsubscribe = tokens.make_unsubscribe_token(KEY, 1, 1)
    with pytest.raises(InvalidToken):
        tokens.read_unsubscribe_token(KEY, confirm)
    with pytest.raises(InvalidToken):
        tokens.read_confirm_token(KEY, unsubscribe, max_age=DAY)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "x" + t,
        lambda t: t.replace(".", "", 1),
        lambda t: "",
        lambda t: "not-a-token",
        lambda t: t + "." + t,
    ],
)
def test_altered_unsubscribe_tokens_are_refused(mangle):
    token = tokens.make_unsubscribe_token(KEY, 5, 1)
    with pytest.raises(InvalidToken):
        tokens.read_unsubscribe_token(KEY, mangle(token))


def test_token_signed_with_another_key_is_refused_unless_listed_as_fallback():
    token = tokens.make_unsubscribe_token("old-key-" + KEY, 9, 4)
    with pytest.raises(InvalidToken):
        tokens.read_unsubscribe_token(KEY, token)
    assert tokens.read_unsubscribe_token(KEY, token, fallbacks=["old-key-" + KEY]) == (
        tokens.TokenClaim(9, 4)
    )


def test_urls_join_base_and_token():
    assert tokens.unsubscribe_url("https://n.example", "abc") == "https://n.example/unsubscribe/abc"
    assert tokens.confirm_url("https://n.example", "abc") == "https://n.example/confirm/abc"


def test_unsubscribe_tokens_are_url_safe_and_differ_per_subscriber_and_version():
    made = {tokens.make_unsubscribe_token(KEY, sid, ver) for sid in (1, 2) for ver in (1, 2)}
    assert len(made) == 4
    for token in made:
        assert set(token) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )


@pytest.mark.nodb
def test_fast_unsubscribe_token_equals_the_serializers_own_and_verifies():
    from itsdangerous import URLSafeSerializer

    reference = URLSafeSerializer(
        "k-1", salt=tokens.UNSUBSCRIBE_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )
    for subscriber_id, version in [(1, 1), (42, 7), (10**12, 3)]:
        token = tokens.make_unsubscribe_token("k-1", subscriber_id, version)
        assert token == reference.dumps([subscriber_id, version])
        claim = tokens.read_unsubscribe_token("k-1", token)
        assert (claim.subscriber_id, claim.version) == (subscriber_id, version)
    with pytest.raises(InvalidToken):
        tokens.read_unsubscribe_token("k-2", tokens.make_unsubscribe_token("k-1", 1, 1))
