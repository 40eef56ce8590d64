"""The web signup: normalize, find or create the subscriber, queue a confirmation mail.

Every answer looks the same to the visitor whether the address was new, pending, confirmed or
had left (:class:`SignupResult` is for logs and tests, never shown), so the form reveals
nothing about who is subscribed.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import clock
from ..models import Subscriber
from .addresses import normalize_email, resolver_for
from .mailing import queue_confirmation
from .records import PENDING, change_status, find_subscriber, record_event

log = logging.getLogger(__name__)

# A concurrent signup for the same address can win the unique index between our SELECT and
# INSERT; we then read its row. Two rounds always suffice; the third is a safety margin.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Visitor:
    """Where a request came from, for the consent record."""

    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class SignupResult:
    """What happened (for logs and tests; the visitor sees the same page whatever it is)."""

    email: str
    status: str | None  # None when nothing was stored (honeypot)
    mailed: bool


def web_normalize(raw: object, config: Mapping) -> str:
    """Normalize a typed address with the app's settings; raises InvalidAddress."""
    return normalize_email(
        raw,
        check_deliverability=bool(config["MAILER_CHECK_DELIVERABILITY"]),
        allow_smtputf8=bool(config["MAILER_ALLOW_SMTPUTF8"]),
        dns_timeout=float(config["MAILER_DNS_TIMEOUT"]),
        resolver=resolver_for(config.get("MAILER_DNS_NAMESERVERS") or ""),
    )


def request_subscription(
    session: Session, raw_email: object, *, config: Mapping, visitor: Visitor, honeypot: bool
) -> SignupResult:
    """Handle one signup request from the form; commits.

    New address: a pending subscriber and a ``signup_requested`` event. Unsubscribed or
    bounced: pending again with a new version (double opt-in again), ``resubscribe_requested``.
    Pending: nothing new. Confirmed: nothing at all. A pending one gets a confirmation mail
    within the limits of :mod:`.limits`. A filled honeypot stores and sends nothing.

    Raises:
        InvalidAddress: the address is refused (nothing stored).
    """
    email = web_normalize(raw_email, config)
    if honeypot:
        return SignupResult(email=email, status=None, mailed=False)
    for attempt in range(_ATTEMPTS):
        try:
            result = _request_once(session, email, config, visitor, clock.now())
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            log.info("a concurrent signup stored %s first; reading its row", email)
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _request_once(
    session: Session, email: str, config: Mapping, visitor: Visitor, now: datetime
) -> SignupResult:
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        subscriber = Subscriber(
            email=email, status=PENDING, version=1, source="web", created_at=now
        )
        session.add(subscriber)
        session.flush()  # IntegrityError here when a concurrent request inserted it first
        _record(session, subscriber, "signup_requested", now, visitor)
    elif change_status(session, subscriber, "request", now):
        _record(session, subscriber, "resubscribe_requested", now, visitor)
    if subscriber.status != PENDING:
        return SignupResult(email=email, status=subscriber.status, mailed=False)
    mail = queue_confirmation(session, subscriber.id, config, now)
    return SignupResult(email=email, status=PENDING, mailed=mail is not None)


def _record(session, subscriber, action, now, visitor: Visitor) -> None:
    record_event(
        session,
        subscriber,
        action,
        now,
        ip=visitor.ip,
        user_agent=visitor.user_agent,
        source=visitor.source,
    )


def resend_confirmation(
    session: Session, subscriber: Subscriber, version: int, config: Mapping
) -> bool:
    """Queue a fresh confirmation mail (expired-link page), within the limits; commits.

    Returns True when a mail was queued; False when the subscriber is no longer pending at
    ``version`` or the per-address limit held it back.
    """
    if subscriber.status != PENDING or subscriber.version != version:
        return False
    mail = queue_confirmation(session, subscriber.id, config, clock.now())
    session.commit()
    return mail is not None
