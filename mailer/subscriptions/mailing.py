"""The confirmation mail: rendered from templates/email/confirm*, queued on the delivery path.

Decision: the web request only queues the mail (a TransactionalMail row without a body,
committed with the signup); the worker's sender loop (every ``MAILER_SENDER_INTERVAL``
seconds) builds it (:func:`compose_confirmations`) and sends it. Neither rendering, MIME
assembly, DKIM signing nor SMTP happens inside the request, so the signup page stays fast
(the signup benchmark compares it with a bare insert) and a slow or dead relay never slows it;
a failed send is retried by the delivery engine like any other mail.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..delivery.mime import build_transactional
from ..models import DeliveryStatus, Subscriber, TransactionalMail
from ..templating import render_mail
from .limits import (
    CONFIRM_KIND,
    CONFIRMATION_INTERVAL,
    schedule_confirmation,
    take_confirmation_slot,
)
from .records import PENDING, awaiting_reconfirmation
from .tokens import confirm_url, make_confirm_token

# Mails built per transaction by compose_confirmations (each is rendered and maybe signed).
COMPOSE_BATCH = 100
# Built once and run with parameters, so SQLAlchemy compiles it once (its statement cache).
_NEW_MAIL = insert(TransactionalMail.__table__).returning(TransactionalMail.id)
NOT_PENDING = "not sent: the subscriber was no longer waiting for a confirmation link"


def queue_confirmation(
    session: Session,
    subscriber_id: int,
    config: Mapping,
    now: datetime,
    *,
    new_version: bool = False,
) -> int | None:
    """Queue a confirmation mail for a pending subscriber, within the limits; no commit.

    Passes the per-address gate first (one mail per 10 minutes, 5 a day; see
    :mod:`.limits`), then queues the mail as :func:`queue_unbuilt_confirmation` does.
    ``new_version``: the subscription was renewed just now (a leaver signing up again), so
    only the daily cap applies: the last mail's link stopped working with the old version.

    Returns:
        The id of the queued TransactionalMail, or None when the per-address limit held it
        back.
    """
    interval = timedelta(0) if new_version else CONFIRMATION_INTERVAL
    if not take_confirmation_slot(session, subscriber_id, now, interval):
        return None
    email = session.execute(select(Subscriber.email).where(Subscriber.id == subscriber_id)).one()[0]
    return queue_unbuilt_confirmation(session.connection(), subscriber_id, email, config, now)


def queue_unbuilt_confirmation(
    conn: Connection, subscriber_id: int, email: str, config: Mapping, now: datetime
) -> int:
    """Insert a confirmation mail row without a body (one INSERT); no commit, no limit check.

    The mail is scheduled under the hourly cap (``MAILER_CONFIRMATIONS_PER_HOUR``, see
    :func:`.limits.schedule_confirmation`); its body is built by :func:`compose_confirmations`
    before it is sent. Returns the new row's id.
    """
    send_at = schedule_confirmation(conn, now, config["MAILER_CONFIRMATIONS_PER_HOUR"])
    row = {
        "kind": CONFIRM_KIND,
        "subscriber_id": subscriber_id,
        "recipient": email,
        "body": None,
        "status": DeliveryStatus.QUEUED,
        "attempts": 0,
        "next_attempt_at": send_at,
        "created_at": now,
    }
    return conn.execute(_NEW_MAIL, row).scalar_one()


def compose_confirmations(session: Session, config: Mapping) -> int:
    """Build the body of every queued confirmation mail that has none yet; commits.

    Each mail gets a fresh confirm link for the subscriber's current subscription version
    (rendered, MIME-assembled and DKIM-signed as configured). A mail whose subscriber is no
    longer pending (confirmed meanwhile, or left) is marked skipped instead: a confirm link
    could not work for them. Safe with several workers at once: a body is written only where
    none is yet. Needs an app context (templates).

    Returns:
        The number of mails built.

    Raises:
        mime_headers.HeaderValueError, dkim.DkimConfigError: as ``mime.build_transactional``
        (a broken DKIM key: nothing is sent unsigned).
    """
    built = 0
    while rows := _unbuilt(session):
        for mail_id, subscriber_id, email, status, version in rows:
            if status == PENDING or _reconfirming(session, subscriber_id, status):
                mail = render_confirmation(email, subscriber_id, version, config)
                values = {"body": build_transactional(email, mail, config)}
                built += 1
            else:
                values = {"status": DeliveryStatus.SKIPPED, "last_reply": NOT_PENDING}
            session.execute(
                update(TransactionalMail)
                .where(TransactionalMail.id == mail_id, TransactionalMail.body.is_(None))
                .values(values)
                .execution_options(synchronize_session=False)
            )
        session.commit()
    session.rollback()  # end the last (read-only) transaction
    return built


def _reconfirming(session: Session, subscriber_id: int, status: str) -> bool:
    # A leaver's new signup: the link may bring them back (records.awaiting_reconfirmation).
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
        )
        .join(Subscriber, Subscriber.id == TransactionalMail.subscriber_id)
        .where(
            TransactionalMail.kind == CONFIRM_KIND,
            TransactionalMail.status == DeliveryStatus.QUEUED,
            TransactionalMail.body.is_(None),
        )
        .order_by(TransactionalMail.id)
        .limit(COMPOSE_BATCH)
    )
    return list(session.execute(query))


def render_confirmation(email: str, subscriber_id: int, version: int, config: Mapping):
    """Render the confirm mail triplet for one subscriber (RenderedMail); app context needed.

    The mail holds nothing the visitor typed except their (normalized) address.
    """
    token = make_confirm_token(config["SECRET_KEY"], subscriber_id, version)
    max_age = int(config["MAILER_CONFIRM_MAX_AGE"])
    return render_mail(
        "confirm",
        email=email,
        confirm_url=confirm_url(config["MAILER_BASE_URL"], token),
        list_name=config["MAILER_NAME"],
        base_url=config["MAILER_BASE_URL"],
        valid_for=humanize_duration(max_age),
    )


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def humanize_duration(seconds: int) -> str:
    """Return ``seconds`` as words for a reader, e.g. "7 days", "1 day", "36 hours", "2 seconds".

    Uses the largest unit that divides it exactly or fits at least twice, rounded down, so
    the text never promises more time than there is (a confirm link's lifetime).
    Negative values count as 0.
    """
    seconds = max(0, int(seconds))
    for name, size in _UNITS:
        if seconds >= size and (seconds % size == 0 or seconds >= 2 * size):
            count = seconds // size
            return f"{count} {name}" + ("" if count == 1 else "s")
    return "0 seconds"
