"""The confirmation mail: rendered from templates/email/confirm*, queued on the delivery path.

Decision: the web request only queues the mail (a TransactionalMail row without a body,
committed with the signup); the worker's signups job (every ``MAILER_SENDER_INTERVAL``
seconds) has the delivery room build it (``delivery.transactional.compose_confirmations``,
which calls :func:`render_confirmation`) and send it. Neither rendering, MIME
assembly, DKIM signing nor SMTP happens inside the request, so the signup page stays fast
(the signup benchmark compares it with a bare insert) and a slow or dead relay never slows it;
a failed send is retried by the delivery engine like any other mail.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..models import DeliveryStatus, Subscriber, TransactionalMail
from ..templating import render_mail
from .limits import (
    CONFIRM_KIND,
    CONFIRMATION_INTERVAL,
    WELCOME_KIND,
    schedule_confirmation,
    take_confirmation_slot,
)
from .tokens import confirm_url, make_confirm_token, make_unsubscribe_token
from .topics import describe

# Built once and run with parameters, so SQLAlchemy compiles it once (its statement cache).
_NEW_MAIL = insert(TransactionalMail.__table__).returning(TransactionalMail.id)


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
    :func:`.limits.schedule_confirmation`); its body is built by the delivery room
    (``transactional.compose_confirmations``) before it is sent. Returns the new row's id.
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


def queue_welcome(session: Session, subscriber_id: int, email: str, now: datetime) -> int:
    """Queue the welcome mail of a subscriber who confirmed just now, without a body; no commit.

    Queued like the confirmation mail: the delivery room builds it
    (``transactional.compose_confirmations``, through :func:`render_welcome`) and sends it.
    Called once per confirmation (only when the status changed), so one mail each time.
    Returns the new row's id.
    """
    row = {
        "kind": WELCOME_KIND,
        "subscriber_id": subscriber_id,
        "recipient": email,
        "body": None,
        "status": DeliveryStatus.QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return session.connection().execute(_NEW_MAIL, row).scalar_one()


def render_welcome(
    email: str, subscriber_id: int, version: int, sections: str, config: Mapping, latest
):
    """Render the welcome mail triplet (RenderedMail); app context needed.

    Args:
        sections: the subscriber's topics (``Section.key`` form).
        latest: the number of the latest issue in the public archive, or None when there
            is none yet (the mail then links the archive's index).
    """
    base_url = config["MAILER_BASE_URL"].rstrip("/")
    token = make_unsubscribe_token(config["SECRET_KEY"], subscriber_id, version)
    return render_mail(
        "welcome",
        email=email,
        list_name=config["MAILER_NAME"],
        base_url=base_url,
        topics=describe(sections),
        digest_day=str(config.get("MAILER_DIGEST_DAY", "monday")).capitalize(),
        latest_url=f"{base_url}/archive/{latest}" if latest else f"{base_url}/archive",
        has_latest=latest is not None,
        preferences_url=f"{base_url}/preferences/{token}",
    )


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
