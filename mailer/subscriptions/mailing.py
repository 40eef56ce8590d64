"""The confirmation mail: rendered from templates/email/confirm*, queued on the delivery path.

Decision: the web request only queues the mail (a TransactionalMail row, committed with the
signup); the worker's sender loop (every ``MAILER_SENDER_INTERVAL`` seconds) sends it. No SMTP
is attempted inside the request, so a slow or dead relay never slows the signup page, and a
failed send is retried by the delivery engine like any other mail.
"""

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..delivery.mime import build_transactional
from ..delivery.transactional import queue_mail
from ..models import Subscriber, TransactionalMail
from ..templating import render_mail
from .limits import CONFIRM_KIND, schedule_confirmation, take_confirmation_slot
from .tokens import confirm_url, make_confirm_token


def queue_confirmation(
    session: Session, subscriber_id: int, config: Mapping, now: datetime
) -> TransactionalMail | None:
    """Queue a confirmation mail for a pending subscriber, within the limits; no commit.

    Passes the per-address gate first (one mail per 10 minutes, 5 a day; see
    :mod:`.limits`), then schedules the mail under the hourly cap
    (``MAILER_CONFIRMATIONS_PER_HOUR``). Needs an app context (templates).

    Returns:
        The queued TransactionalMail, or None when the per-address limit held it back.
    """
    if not take_confirmation_slot(session, subscriber_id, now):
        return None
    # Read back after the gate's UPDATE: the row is ours until commit, so the version is current.
    email, version = session.execute(
        select(Subscriber.email, Subscriber.version).where(Subscriber.id == subscriber_id)
    ).one()
    send_at = schedule_confirmation(session, now, config["MAILER_CONFIRMATIONS_PER_HOUR"])
    body = build_transactional(
        email, render_confirmation(email, subscriber_id, version, config), config
    )
    mail = queue_mail(
        session, kind=CONFIRM_KIND, recipient=email, body=body, subscriber_id=subscriber_id
    )
    mail.next_attempt_at = send_at
    return mail


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
