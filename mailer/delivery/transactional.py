"""Transactional mail (the signup confirmation and any other one-off mail): queued as rows,
built by the worker, sent by the sender loop.

A row is claimed by moving its ``next_attempt_at`` past a short lease
(:func:`.sender.claims.claim_rows`, the room's one claim mechanism), so two workers never
send the same mail, and a worker that dies mid-send leaves the mail due again when the lease
ends. Retries follow the room's one rule (:mod:`.retry`); 5xx fails at once; the reply is
kept on the row; no bounce counting. ``TransactionalMail.status`` changes only through
:func:`mail_transition`. When the relay pushes back (a quota or rate refusal,
``smtp.settings.is_pushback``) the run stops and every waiting mail waits as a paused issue
does (:func:`pushback_wait`): no attempt is counted and no retry window starts, so a mail is
never dropped because of the relay's quota.

Confirmation mails are queued by the subscriptions room without a body (the web request
stays fast); :func:`compose_confirmations` builds them here, asking that room for the
rendered mail, before :func:`send_due` sends them.
"""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Update

from .. import clock
from ..digest.archive import public_issues
from ..models import DeliveryStatus, Subscriber, SubscriberStatus, TransactionalMail
from ..subscriptions.service import (
    CONFIRM_KIND,
    PENDING,
    WELCOME_KIND,
    awaiting_reconfirmation,
    render_confirmation,
    render_welcome,
)
from .bounces.verp import MAIL, Verp
from .errors import RecipientNotSupported, RelayError
from .ledger import Tally, Transition
from .message import build_transactional
from .retry import REPLY_LIMIT, after_temporary_failure, retry_window
from .sender.claims import claim_rows
from .smtp.connection import SmtpConnection
from .smtp.settings import RelaySettings, SmtpReply, is_pushback

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
LONGEST_WAIT = timedelta(hours=1)  # the longest wait after the relay's pushback
BATCH = 100
COMPOSE_BATCH = 100  # mails built per transaction by compose_confirmations
NOT_PENDING = "not sent: the subscriber was no longer waiting for a confirmation link"
NOT_CONFIRMED = "not sent: the subscriber is no longer subscribed"
_WAITING = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED})

# The allowed transitions of TransactionalMail.status, all of them (a row is created queued).
MAIL_TRANSITIONS: dict[str, Transition] = {
    "sent": Transition(_WAITING, DeliveryStatus.SENT),
    "defer": Transition(_WAITING, DeliveryStatus.DEFERRED),
    "fail": Transition(_WAITING, DeliveryStatus.FAILED),
    "skip": Transition(frozenset({DeliveryStatus.QUEUED}), DeliveryStatus.SKIPPED),
}


def mail_transition(action: str, mail_id: int) -> Update:
    """The UPDATE that applies ``action`` (a key of :data:`MAIL_TRANSITIONS`) to one mail.

    It changes the row only from an allowed status; callers add ``.values(...)`` for the
    other columns. Raises KeyError for an unknown action.
    """
    rule = MAIL_TRANSITIONS[action]
    return (
        update(TransactionalMail)
        .where(TransactionalMail.id == mail_id, TransactionalMail.status.in_(rule.sources))
        .values(status=rule.target)
    )


def queue_mail(
    session: Session, *, kind: str, recipient: str, body: bytes, subscriber_id: int | None
) -> TransactionalMail:
    """Add a transactional mail to the queue; does not commit (the caller's transaction does).

    Args:
        kind: what it is, e.g. "confirm" (at most 32 characters).
        recipient: the envelope recipient.
        body: the complete RFC 5322 message (CRLF line ends), e.g. from
            ``message.build_transactional``.
        subscriber_id: the subscriber it concerns, if any (deleted with them).

    Returns:
        The new row (added to ``session``); it goes out at the next sender run, or at its
        ``next_attempt_at`` when the caller sets one.

    Raises:
        ValueError: empty recipient or body, or a kind longer than 32 characters.
    """
    if not recipient or not body:
        raise ValueError("a transactional mail needs a recipient and a body")
    if not kind or len(kind) > 32:
        raise ValueError(f"kind must be 1 to 32 characters, got {kind!r}")
    mail = TransactionalMail(
        kind=kind,
        recipient=recipient,
        body=bytes(body),
        subscriber_id=subscriber_id,
        status=DeliveryStatus.QUEUED,
        attempts=0,
    )
    session.add(mail)
    return mail


def _due(now: datetime):
    # A row without a body waits for its composer (e.g. subscriptions' compose_confirmations).
    pending = TransactionalMail.status.in_(
        (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)
    ) & TransactionalMail.body.is_not(None)
    due = or_(TransactionalMail.next_attempt_at.is_(None), TransactionalMail.next_attempt_at <= now)
    return pending, due


def has_due(conn: Connection) -> bool:
    """True when a transactional mail is due now (one indexed query: cheap when idle)."""
    pending, due = _due(clock.now())
    first = conn.execute(select(TransactionalMail.id).where(pending, due).limit(1)).first()
    return first is not None


def _claim(conn: Connection, now: datetime) -> list[tuple]:
    ids = claim_rows(
        conn, TransactionalMail, list(_due(now)), size=BATCH, lease={"next_attempt_at": now + LEASE}
    )
    if not ids:
        return []
    query = select(
        TransactionalMail.id,
        TransactionalMail.recipient,
        TransactionalMail.body,
        TransactionalMail.attempts,
        TransactionalMail.retry_until,
        TransactionalMail.created_at,
    ).where(TransactionalMail.id.in_(ids))
    return list(conn.execute(query.order_by(TransactionalMail.id)))


def send_due(engine: Engine, config: Mapping) -> Tally:
    """Send every transactional mail that is due now over one connection; returns the counts.

    Stops at the first relay error (the relay is down: the other claimed mails wait for
    their lease, ``LEASE``, and are retried by a later run).
    """
    tally = Tally()
    relay = SmtpConnection(RelaySettings.from_config(config))
    retry_for = retry_window(config)
    first_pause = timedelta(seconds=int(config.get("MAILER_PUSHBACK_PAUSE", 900)))
    verp = Verp(config)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:
            while rows := _claim(conn, clock.now()):
                for row in rows:
                    reply = _send_one(conn, relay, row, retry_for, tally, verp)
                    if reply is not None and reply.pushback:
                        pushback_wait(conn, row, reply, first_pause)
                        tally.deferred += 1
                        return tally
                    if reply is None:
                        return tally
        finally:
            relay.close()
    return tally


def _send_one(conn, relay: SmtpConnection, row, retry_for: timedelta, tally, verp: Verp):
    # Returns the reply, or None after a relay error (the run stops). A pushback reply is
    # left to the caller, unrecorded.
    mail_id, recipient, body = row[:3]
    try:
        reply = relay.send(recipient, body, sender=verp.sender(MAIL, mail_id))
    except RelayError as exc:
        if is_pushback(exc.code, exc.text):
            return SmtpReply(exc.code, exc.text)
        log.warning("relay error for transactional mail %s: %s", mail_id, exc)
        _record(conn, row, SmtpReply(exc.code or 0, exc.text), retry_for, tally)
        return None
    except RecipientNotSupported as exc:
        reply = SmtpReply(553, str(exc))
    if not reply.pushback:
        _record(conn, row, reply, retry_for, tally)
    return reply


def pushback_wait(conn: Connection, row, reply: SmtpReply, first: timedelta) -> datetime:
    """The relay pushed back on a transactional mail: defer it with no attempt counted and
    no retry window started, and make every waiting mail wait as long; returns until when.

    The wait is as long as the mail has waited already (so successive waits double, as an
    issue's pushback pauses do), at least ``first`` (``MAILER_PUSHBACK_PAUSE``), at most an
    hour. Logged once per wait.
    """
    mail_id, created_at = row[0], row[5]
    now = clock.now()
    until = now + min(max(first, now - created_at), LONGEST_WAIT)
    conn.execute(
        mail_transition("defer", mail_id).values(
            last_code=reply.code, last_reply=reply.text[:REPLY_LIMIT], next_attempt_at=until
        )
    )
    # Not a status change: the others (queued, or deferred) are only due later.
    waiting = TransactionalMail.status.in_(_WAITING) & TransactionalMail.body.is_not(None)
    earlier = or_(
        TransactionalMail.next_attempt_at.is_(None), TransactionalMail.next_attempt_at < until
    )
    conn.execute(update(TransactionalMail).where(waiting, earlier).values(next_attempt_at=until))
    log.warning(
        "the relay pushed back on transactional mail (%s): every waiting mail is tried "
        "again at %s UTC",
        reply,
        f"{until:%Y-%m-%d %H:%M}",
    )
    return until


def _record(conn, row, reply: SmtpReply, retry_for: timedelta, tally) -> None:
    mail_id, _recipient, _body, attempts, retry_until = row[:5]
    now = clock.now()
    values = {
        "attempts": attempts + 1,
        "last_code": reply.code or None,
        "last_reply": reply.text[:REPLY_LIMIT],
    }
    if reply.ok:
        # next_attempt_at: when it actually went out (the signup room counts mails per hour).
        action = "sent"
        values.update(sent_at=now, next_attempt_at=now)
        tally.sent += 1
    elif reply.temporary or reply.code == 0:
        step = after_temporary_failure(attempts, retry_until, now, retry_for)
        action = "defer" if step.status == DeliveryStatus.DEFERRED else "fail"
        values.update(retry_until=step.retry_until, next_attempt_at=step.next_attempt_at)
        tally.deferred += action == "defer"
        tally.failed += action == "fail"
    else:
        action = "fail"
        values.update(next_attempt_at=None)
        tally.failed += 1
    conn.execute(mail_transition(action, mail_id).values(**values))


def compose_confirmations(session: Session, config: Mapping) -> int:
    """Build the body of every queued confirmation and welcome mail that has none yet; commits.

    Each confirmation mail gets a fresh confirm link for the subscriber's current
    subscription version (rendered by ``subscriptions.service.render_confirmation``,
    MIME-assembled and DKIM-signed as configured). A mail whose subscriber is no longer
    pending (confirmed meanwhile, or left) is skipped instead: a confirm link could not work
    for them. A welcome mail (``render_welcome``) links the latest archived issue and the
    preference page; it is skipped when the subscriber left before it was built. Safe
    with several workers at once: a body is written only where none is yet. Needs an app
    context (templates).

    Returns:
        The number of mails built.

    Raises:
        message.headers.HeaderValueError, message.dkim.DkimConfigError: as
        ``message.build_transactional`` (a broken DKIM key: nothing is sent unsigned).
    """
    built = 0
    while rows := _unbuilt(session):
        for row in rows:
            statement, composed = _composed(session, row, config)
            built += composed
            session.execute(statement.execution_options(synchronize_session=False))
        session.commit()
    session.rollback()  # end the last (read-only) transaction
    return built


def _composed(session: Session, row, config: Mapping) -> tuple[Update, bool]:
    # The UPDATE that gives one unbuilt mail its body (True), or skips it with the reason.
    mail_id, subscriber_id, email, status, version, kind, sections = row
    unbuilt = TransactionalMail.body.is_(None)
    wanted = PENDING if kind == CONFIRM_KIND else SubscriberStatus.CONFIRMED
    if status != wanted and not _reconfirming(session, kind, subscriber_id):
        reason = NOT_PENDING if kind == CONFIRM_KIND else NOT_CONFIRMED
        return mail_transition("skip", mail_id).where(unbuilt).values(last_reply=reason), False
    if kind == CONFIRM_KIND:
        mail = render_confirmation(email, subscriber_id, version, config)
    else:
        latest = public_issues(session, limit=1)
        number = latest[0].number if latest else None
        mail = render_welcome(email, subscriber_id, version, sections, config, number)
    body = build_transactional(email, mail, config)
    statement = update(TransactionalMail).where(TransactionalMail.id == mail_id, unbuilt)
    return statement.values(body=body), True


def _reconfirming(session: Session, kind: str, subscriber_id: int) -> bool:
    # A leaver's new signup: they stay unsubscribed or bounced until the mailed link brings
    # them back (subscriptions.service.awaiting_reconfirmation), so their mail is built.
    if kind != CONFIRM_KIND:
        return False
    subscriber = session.get(Subscriber, subscriber_id)
    return subscriber is not None and awaiting_reconfirmation(session, subscriber)


def _unbuilt(session: Session) -> list:
    query = (
        select(
            TransactionalMail.id,
            TransactionalMail.subscriber_id,
            TransactionalMail.recipient,
            Subscriber.status,
            Subscriber.version,
            TransactionalMail.kind,
            Subscriber.sections,
        )
        .join(Subscriber, Subscriber.id == TransactionalMail.subscriber_id)
        .where(
            TransactionalMail.kind.in_((CONFIRM_KIND, WELCOME_KIND)),
            TransactionalMail.status == DeliveryStatus.QUEUED,
            TransactionalMail.body.is_(None),
        )
        .order_by(TransactionalMail.id)
        .limit(COMPOSE_BATCH)
    )
    return list(session.execute(query))
