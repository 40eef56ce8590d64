"""The confirm and unsubscribe links: what their pages show and what their buttons do.

GET/HEAD only read (:func:`inspect_confirm_token`, :func:`inspect_unsubscribe_token`): mail
scanners and link checkers fetch links. POSTs change state and commit.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from .. import clock
from ..models import Subscriber, Suppression
from .addresses import email_hash, mask_email
from .errors import ExpiredToken, InvalidToken, StaleToken, UnknownSubscriber
from .lifecycle import erase_subscriber, unsubscribe_subscriber
from .mailing import queue_welcome
from .records import (
    CONFIRMED,
    PENDING,
    UNSUBSCRIBED,
    awaiting_reconfirmation,
    change_status,
    record_event,
    requested_sections,
)
from .signup import Visitor, resend_confirmation
from .tokens import TokenClaim, read_confirm_token, read_unsubscribe_token

# Outcomes of the token pages (TokenPage.outcome).
READY = "ready"  # GET: show the button
DONE = "done"  # POST: changed just now
ALREADY = "already"  # already in the wanted state (confirming twice, unsubscribing twice)
EXPIRED = "expired"  # confirm link too old: offer a fresh one
RESENT = "resent"  # a fresh confirm link was queued
LIMITED = "limited"  # a fresh link was asked for too soon after the last one
LEFT = "left"  # confirm link of someone who unsubscribed or bounced since
GONE = "gone"  # the subscriber no longer exists (erased, purged)
ERASED = "erased"


@dataclass(frozen=True)
class TokenPage:
    """What a confirm/unsubscribe page shows: an outcome (above) and the masked address."""

    outcome: str
    masked_email: str = ""


def _keys(config: Mapping) -> tuple[str, list[str]]:
    return config["SECRET_KEY"], list(config.get("SECRET_KEY_FALLBACKS") or [])


def _subscriber_for(session: Session, claim: TokenClaim) -> Subscriber:
    subscriber = session.get(Subscriber, claim.subscriber_id)
    if subscriber is None:
        raise UnknownSubscriber("no subscriber for this link")
    if subscriber.version != claim.version:
        raise StaleToken("the link belongs to an earlier subscription")
    return subscriber


def _load_confirm(session: Session, token: str, config: Mapping) -> tuple[Subscriber, bool, int]:
    key, fallbacks = _keys(config)
    try:
        claim = read_confirm_token(key, token, int(config["MAILER_CONFIRM_MAX_AGE"]), fallbacks)
        expired = False
    except ExpiredToken as exc:
        claim, expired = TokenClaim(exc.subscriber_id, exc.version), True
    return _subscriber_for(session, claim), expired, claim.version


def _settled_page(session: Session, subscriber, masked: str) -> "TokenPage | None":
    # A confirm link of someone already confirmed, or who left since, changes nothing;
    # except the link mailed after a leaver's new signup (see awaiting_reconfirmation).
    if subscriber.status == CONFIRMED:
        return TokenPage(ALREADY, masked)
    if subscriber.status != PENDING and not awaiting_reconfirmation(session, subscriber):
        return TokenPage(LEFT, masked)
    return None


def inspect_confirm_token(session: Session, token: str, config: Mapping) -> TokenPage:
    """What ``GET /confirm/<token>`` shows; changes nothing (scanners fetch links).

    Raises:
        InvalidToken, UnknownSubscriber, StaleToken: see :mod:`.errors`.
    """
    subscriber, expired, _ = _load_confirm(session, token, config)
    masked = mask_email(subscriber.email)
    return _settled_page(session, subscriber, masked) or TokenPage(
        EXPIRED if expired else READY, masked
    )


def confirm_by_token(session: Session, token: str, config: Mapping, visitor: Visitor) -> TokenPage:
    """``POST /confirm/<token>``: confirm (double opt-in), or re-send an expired link; commits.

    Confirming twice answers ALREADY. An expired link of a pending subscriber queues a fresh
    confirmation mail within the per-address limits (RESENT or LIMITED).

    Raises:
        InvalidToken, UnknownSubscriber, StaleToken: see :mod:`.errors`.
    """
    subscriber, expired, version = _load_confirm(session, token, config)
    masked = mask_email(subscriber.email)
    settled = _settled_page(session, subscriber, masked)
    if settled is not None:
        return settled
    if expired:
        sent = resend_confirmation(session, subscriber, version, config)
        return TokenPage(RESENT if sent else LIMITED, masked)
    now = clock.now()
    action = "reconfirm" if subscriber.status != PENDING else "confirm"
    chosen = requested_sections(session, subscriber) if action == "reconfirm" else None
    if not change_status(session, subscriber, action, now, version=version):
        session.rollback()  # a concurrent POST confirmed it first
        return TokenPage(ALREADY, masked)
    record_event(
        session,
        subscriber,
        "confirmed",
        now,
        ip=visitor.ip,
        user_agent=visitor.user_agent,
        source=visitor.source,
    )
    if chosen:
        subscriber.sections = chosen  # the topics of the signup this link answers
    queue_welcome(session, subscriber.id, subscriber.email, now)
    # They proved the mailbox and asked again: an earlier erasure no longer holds them off.
    digest = email_hash(config["SECRET_KEY"], subscriber.email)
    session.execute(delete(Suppression).where(Suppression.email_hash == digest))
    session.commit()
    return TokenPage(DONE, masked)


def _load_unsubscribe(session: Session, token: str, config: Mapping) -> Subscriber | None:
    key, fallbacks = _keys(config)
    claim = read_unsubscribe_token(key, token, fallbacks)
    try:
        return _subscriber_for(session, claim)
    except UnknownSubscriber:
        return None


def subscriber_of_unsubscribe_token(
    session: Session, token: str, config: Mapping
) -> Subscriber | None:
    """The subscriber an unsubscribe token names (also the preference page's token), or None
    when erased since. Raises InvalidToken (forged) or StaleToken (earlier subscription)."""
    return _load_unsubscribe(session, token, config)


def unsubscribe_token_verifies(token: str, config: Mapping) -> bool:
    """Return True when ``token`` is a correctly signed unsubscribe token (any version).

    Reads no database: the rate limiter asks it before the view runs.
    """
    key, fallbacks = _keys(config)
    try:
        read_unsubscribe_token(key, token, fallbacks)
    except InvalidToken:
        return False
    return True


def inspect_unsubscribe_token(session: Session, token: str, config: Mapping) -> TokenPage:
    """What ``GET /unsubscribe/<token>`` shows; changes nothing.

    Raises:
        InvalidToken: forged or altered. StaleToken: from before a re-subscription.
    """
    subscriber = _load_unsubscribe(session, token, config)
    if subscriber is None:
        return TokenPage(GONE)
    outcome = ALREADY if subscriber.status == UNSUBSCRIBED else READY
    return TokenPage(outcome, mask_email(subscriber.email))


def unsubscribe_by_token(
    session: Session, token: str, config: Mapping, visitor: Visitor
) -> TokenPage:
    """``POST /unsubscribe/<token>`` (button or RFC 8058 one-click): unsubscribe; commits.

    Idempotent: a second POST answers ALREADY; a subscriber erased since answers GONE.

    Raises:
        InvalidToken: forged or altered. StaleToken: from before a re-subscription (an old
        link must not cancel a newer subscription).
    """
    subscriber = _load_unsubscribe(session, token, config)
    if subscriber is None:
        return TokenPage(GONE)
    changed = unsubscribe_subscriber(
        session,
        subscriber,
        ip=visitor.ip,
        user_agent=visitor.user_agent,
        source=visitor.source,
        version=subscriber.version,
    )
    return TokenPage(DONE if changed else ALREADY, mask_email(subscriber.email))


def erase_by_token(session: Session, token: str, config: Mapping) -> TokenPage:
    """Erase the subscriber of an unsubscribe token (the person's request); commits.

    Raises:
        InvalidToken: forged or altered. StaleToken: from before a re-subscription.
    """
    subscriber = _load_unsubscribe(session, token, config)
    if subscriber is None:
        return TokenPage(GONE)
    erase_subscriber(session, subscriber, secret_key=config["SECRET_KEY"])
    return TokenPage(ERASED)
