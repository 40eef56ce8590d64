"""The web signup: the request stores it; the worker makes it a subscriber and queues the mail.

``POST /subscribe`` validates the address and stores one :class:`~mailer.models.SignupRequest`
row (what, when, from where: the consent record's facts), nothing more, so a signup costs
about what a bare INSERT does and a burst of them never waits on the subscriber table's
unique index. The worker's signup job (every ``MAILER_SENDER_INTERVAL`` seconds;
:func:`process_signup_requests`) then finds or creates the subscriber, records the consent
event at the time of the request, and queues the confirmation mail without a body; the same
job builds it (:func:`.mailing.compose_confirmations`) and sends it.

Every answer looks the same to the visitor whether the address was new, pending, confirmed or
had left (:class:`SignupResult` is for logs and tests, never shown), so the form reveals
nothing about who is subscribed.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import clock
from ..models import ConsentEvent, Section, SignupRequest, Subscriber, SubscriberStatus, UTCDateTime
from .addresses import normalize_email, resolver_for
from .mailing import queue_confirmation, queue_unbuilt_confirmation
from .records import PENDING, clipped, find_subscriber, record_event

log = logging.getLogger(__name__)

# A concurrent change (an operator adding the same address, an erasure) can win the unique
# index between our SELECT and INSERT; we then read its row. Two rounds always suffice.
_ATTEMPTS = 3
# Signup requests turned into subscribers per transaction by the worker.
REQUEST_BATCH = 200
# Built once and run with parameters, so SQLAlchemy compiles it once (its statement cache).
_NEW_REQUEST = insert(SignupRequest.__table__)


@dataclass(frozen=True)
class Visitor:
    """Where a request came from, for the consent record."""

    ip: str | None = None
    user_agent: str | None = None
    source: str | None = None
    # The topics chosen with a signup (``Section.key`` form), for the subscriber and the record.
    sections: str | None = None


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
    session: Session,
    raw_email: object,
    *,
    config: Mapping,
    visitor: Visitor,
    honeypot: bool,
    sections: str | None = None,
) -> str | None:
    """Take one signup from the form: validate the address and store the request; commits.

    One INSERT into ``signup_request``; the worker does the rest
    (:func:`process_signup_requests`). A filled honeypot stores nothing. ``sections``: the
    topics chosen (``topics.parse_sections``); None for both.

    Returns:
        The normalized address that was stored, or None for a honeypot submission.

    Raises:
        InvalidAddress: the address is refused (nothing stored).
    """
    email = web_normalize(raw_email, config)
    if honeypot:
        return None
    row = {
        "email": email,
        "ip_address": clipped(visitor.ip, 64),
        "user_agent": clipped(visitor.user_agent, 512),
        "source": clipped(visitor.source, 512),
        "requested_at": clock.now(),
        "sections": sections,
    }
    # A connection of its own, not the ORM session's: one INSERT needs none of its work.
    with session.get_bind().begin() as conn:
        conn.execute(_NEW_REQUEST, row)
    return email


def process_signup_requests(session: Session, config: Mapping) -> list[SignupResult]:
    """Turn every stored signup request into a subscriber change and a queued mail; commits.

    Per request, oldest first: a new address becomes a pending subscriber with a
    ``signup_requested`` event; an unsubscribed or bounced one keeps its status and gets a
    new version and a confirmation mail (``resubscribe_requested``: only confirming from the
    mailbox brings it back, see links.awaiting_reconfirmation); a pending one gets nothing
    new; a confirmed one nothing at all. Events carry the request's own time, IP, user agent
    and source. A pending one gets a confirmation mail within the limits of :mod:`.limits`.

    Requests are claimed by deleting them (``DELETE ... RETURNING``; on PostgreSQL
    ``FOR UPDATE SKIP LOCKED``) in the transaction that processes them, so several workers
    share the work, each request is handled once, and a crash rolls everything back. A request
    that fails unexpectedly is logged and put back for the next run; the others go on.
    Needs an app context.

    Returns:
        What happened to each request, in order (for logs and tests).
    """
    results = []
    # Most runs find nothing: a read says so without taking SQLite's write lock (the DELETE
    # that claims would), which a send in progress needs for its sent marks.
    if session.scalar(select(SignupRequest.id).limit(1)) is None:
        session.rollback()
        return results
    while True:
        batch = _claim_requests(session)
        for request in batch:
            results.append(_process_request(session, request, config))
        # Also after an empty claim: its DELETE holds SQLite's write lock until the commit.
        session.commit()
        if not batch:
            return results


def _claim_requests(session: Session) -> list:
    oldest = (
        select(SignupRequest.id)
        .order_by(SignupRequest.id)
        .limit(REQUEST_BATCH)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        delete(SignupRequest)
        .where(SignupRequest.id.in_(oldest.scalar_subquery()))
        .returning(
            SignupRequest.id,
            SignupRequest.email,
            SignupRequest.ip_address,
            SignupRequest.user_agent,
            SignupRequest.source,
            SignupRequest.requested_at,
            SignupRequest.sections,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted(session.execute(claimed), key=lambda row: row.id)


def _process_request(session: Session, request, config: Mapping) -> SignupResult:
    visitor = Visitor(
        ip=request.ip_address,
        user_agent=request.user_agent,
        source=request.source,
        sections=request.sections or Section.BOTH,
    )
    for attempt in range(_ATTEMPTS):
        try:
            with session.begin_nested():
                now = clock.now()
                return _insert_new(
                    session, request.email, config, visitor, request.requested_at, now
                ) or _request_once(
                    session, request.email, config, visitor, request.requested_at, now
                )
        except IntegrityError:
            log.info("a concurrent change stored %s first; reading its row", request.email)
            if attempt < _ATTEMPTS - 1:
                continue
            _put_back(session, request)
        except Exception:
            log.exception("signup request %s (%s) failed; kept for the next run", *request[:2])
            _put_back(session, request)
        break
    return SignupResult(email=request.email, status=None, mailed=False)


def _put_back(session: Session, request) -> None:
    row = dict(request._mapping)
    row.pop("id")
    session.execute(_NEW_REQUEST, row)


_DATE_COLUMNS = ("created_at", "confirmation_sent_at")


@cache
def _statements() -> tuple:
    # Built once and run with parameters, so SQLAlchemy compiles each once (its statement
    # cache). The subscriber INSERT is written out because SQLAlchemy 2.0 does not cache
    # statements with on_conflict_do_nothing(); the SQL is the same on SQLite and PostgreSQL.
    columns = tuple(_new_subscriber_row("", datetime.now(UTC), datetime.now(UTC), ""))
    new_subscriber = text(
        f"INSERT INTO subscriber ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + name for name in columns)}) "
        "ON CONFLICT DO NOTHING RETURNING id"
    ).bindparams(*(bindparam(name, type_=UTCDateTime()) for name in _DATE_COLUMNS))
    return new_subscriber, insert(ConsentEvent.__table__)


def _new_subscriber_row(email: str, requested_at: datetime, now: datetime, sections: str) -> dict:
    return {
        "email": email,
        "sections": sections,
        "status": PENDING,
        "version": 1,
        "source": "web",
        "created_at": requested_at,
        # The first confirmation slot, as limits.take_confirmation_slot records it.
        "confirmation_sent_at": now,
        "confirmation_day": now.date().isoformat(),
        "confirmations_that_day": 1,
        "hard_bounces": 0,
        "soft_failures_in_row": 0,
    }


def _insert_new(
    session: Session,
    email: str,
    config: Mapping,
    visitor: Visitor,
    requested_at: datetime,
    now: datetime,
) -> SignupResult | None:
    # INSERT ... ON CONFLICT DO NOTHING RETURNING id: one statement both tests that the
    # address is new (case-insensitively, through the unique index on lower(email)) and
    # stores it. None: the address is already on file.
    conn = session.connection()
    new_subscriber, new_event = _statements()
    sections = visitor.sections or Section.BOTH
    subscriber_id = conn.execute(
        new_subscriber, _new_subscriber_row(email, requested_at, now, sections)
    ).scalar()
    if subscriber_id is None:
        return None
    event = {
        "subscriber_id": subscriber_id,
        "action": "signup_requested",
        "created_at": requested_at,
        "ip_address": clipped(visitor.ip, 64),
        "user_agent": clipped(visitor.user_agent, 512),
        "source": clipped(visitor.source, 512),
        "sections": sections,
        "reason": None,
        "detail": None,
    }
    conn.execute(new_event, event)
    queue_unbuilt_confirmation(conn, subscriber_id, email, config, now)
    return SignupResult(email=email, status=PENDING, mailed=True)


def _request_once(
    session: Session,
    email: str,
    config: Mapping,
    visitor: Visitor,
    requested_at: datetime,
    now: datetime,
) -> SignupResult:
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        # Erased between _insert_new's conflict and this SELECT: store it afresh.
        subscriber = Subscriber(
            email=email,
            status=PENDING,
            version=1,
            source="web",
            created_at=requested_at,
            sections=visitor.sections or Section.BOTH,
        )
        session.add(subscriber)
        session.flush()  # IntegrityError here when a concurrent change inserted it first
        _record(session, subscriber, "signup_requested", requested_at, visitor)
        renewed = False
    elif subscriber.status in SUPPRESSED_STATUSES:
        # Anyone may type anyone's address: a leaver stays unsubscribed (or bounced) until
        # they confirm from their own mailbox. Only the subscription version moves on, so
        # that the mailed link is the one that can bring them back (links.confirm_by_token).
        _renew_version(session, subscriber)
        _record(session, subscriber, "resubscribe_requested", requested_at, visitor)
        mail = queue_confirmation(session, subscriber.id, config, now, new_version=True)
        return SignupResult(email=email, status=subscriber.status, mailed=mail is not None)
    else:
        renewed = False  # pending (a repeat: the limits decide) or confirmed (nothing)
    if subscriber.status != PENDING:
        return SignupResult(email=email, status=subscriber.status, mailed=False)
    mail = queue_confirmation(session, subscriber.id, config, now, new_version=renewed)
    return SignupResult(email=email, status=PENDING, mailed=mail is not None)


SUPPRESSED_STATUSES = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def _renew_version(session: Session, subscriber: Subscriber) -> None:
    statement = (
        update(Subscriber)
        .where(Subscriber.id == subscriber.id)
        .values(version=Subscriber.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(statement)
    session.refresh(subscriber)


def _record(session, subscriber, action, now, visitor: Visitor) -> None:
    record_event(
        session,
        subscriber,
        action,
        now,
        ip=visitor.ip,
        user_agent=visitor.user_agent,
        source=visitor.source,
        sections=visitor.sections,
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
