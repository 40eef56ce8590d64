"""The preference page behind ``/preferences/<token>``: topics, a pause, leaving with a reason.

The token is the subscriber's unsubscribe token (:mod:`.tokens`): it never expires, a new
subscription (a new ``Subscriber.version``) makes older ones stale, and the digest's footer
links both pages with it. Reading the page changes nothing; every change commits with a
consent event (``topics_changed``, ``paused``, ``resumed``, ``unsubscribed`` with its reason).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from .. import clock
from ..models import Section
from .addresses import mask_email
from .errors import InvalidSections, UnknownChoice
from .lifecycle import unsubscribe_subscriber
from .links import subscriber_of_unsubscribe_token as _load_unsubscribe
from .records import CONFIRMED, PENDING, record_event
from .signup import Visitor
from .topics import parse_sections

PAUSE = timedelta(weeks=4)
# Why people leave (ConsentEvent.reason), in the order the page offers them.
REASONS = {
    "too_many": "Too many emails",
    "not_relevant": "Not relevant to me",
    "never_signed_up": "I never signed up",
    "other": "Other",
}
# What a page shows (PreferencesPage.outcome).
SHOW = "show"  # GET, or a POST that changed nothing
SAVED = "saved"  # topics changed
PAUSED = "paused"
RESUMED = "resumed"
LEFT = "left"  # unsubscribed now, or before
GONE = "gone"  # no subscriber for this link any more


@dataclass(frozen=True)
class PreferencesPage:
    """What the page shows: an outcome (above), the masked address, topics and pause."""

    outcome: str
    masked_email: str = ""
    sections: str = Section.BOTH
    paused_until: datetime | None = None
    status: str = ""

    @property
    def active(self) -> bool:
        """True while the subscription is on (topics and pause can be changed)."""
        return self.status in (PENDING, CONFIRMED)


def _page(outcome: str, subscriber) -> PreferencesPage:
    if subscriber is None:
        return PreferencesPage(GONE)
    paused = subscriber.paused_until
    if paused is not None and paused <= clock.now():
        paused = None  # an ended pause is no pause
    return PreferencesPage(
        outcome if subscriber.status in (PENDING, CONFIRMED) else LEFT,
        mask_email(subscriber.email),
        subscriber.sections,
        paused,
        subscriber.status,
    )


def inspect_preferences(session: Session, token: str, config: Mapping) -> PreferencesPage:
    """What ``GET /preferences/<token>`` shows; changes nothing.

    Raises:
        InvalidToken: forged or altered. StaleToken: from before a re-subscription.
    """
    return _page(SHOW, _load_unsubscribe(session, token, config))


def change_preferences(
    session: Session, token: str, config: Mapping, visitor: Visitor, form: Mapping
) -> PreferencesPage:
    """``POST /preferences/<token>``: apply the form's ``action``; commits.

    Actions: ``topics`` (``sections``: news and/or openings), ``pause`` (no digest for
    four weeks), ``resume``, ``unsubscribe`` (optional ``reason``, a key of
    :data:`REASONS`). Someone no longer subscribed can change nothing here.

    Raises:
        InvalidToken, StaleToken: as :func:`inspect_preferences`.
        InvalidSections: no topic or an unknown one chosen. UnknownChoice: another action
            or reason.
    """
    subscriber = _load_unsubscribe(session, token, config)
    action = form.get("action")
    if subscriber is None or subscriber.status not in (PENDING, CONFIRMED):
        return _page(SHOW, subscriber)
    if action == "unsubscribe":
        reason = form.get("reason") or None
        if reason is not None and reason not in REASONS:
            raise UnknownChoice("choose one of the reasons offered, or none")
        unsubscribe_subscriber(
            session,
            subscriber,
            ip=visitor.ip,
            user_agent=visitor.user_agent,
            source="preference page",
            version=subscriber.version,
            reason=reason,
        )
        return _page(LEFT, subscriber)
    now = clock.now()
    if action == "topics":
        sections = parse_sections(form.get("sections"), absent_means_both=False)
        outcome = _set_topics(session, subscriber, sections, now, visitor)
    elif action == "pause":
        subscriber.paused_until = now + PAUSE
        until = f"until {subscriber.paused_until:%Y-%m-%d %H:%M} UTC"
        _record(session, subscriber, "paused", now, visitor, until)
        outcome = PAUSED
    elif action == "resume":
        subscriber.paused_until = None
        _record(session, subscriber, "resumed", now, visitor)
        outcome = RESUMED
    else:
        raise UnknownChoice("choose topics, a pause or unsubscribe")
    session.commit()
    return _page(outcome, subscriber)


def _set_topics(session, subscriber, sections: str, now, visitor) -> str:
    if sections == subscriber.sections:
        return SAVED
    subscriber.sections = sections
    _record(session, subscriber, "topics_changed", now, visitor, sections=sections)
    return SAVED


def _record(session, subscriber, action, now, visitor: Visitor, detail=None, sections=None):
    record_event(
        session,
        subscriber,
        action,
        now,
        ip=visitor.ip,
        user_agent=visitor.user_agent,
        source="preference page",
        detail=detail,
        sections=sections,
    )


__all__ = [
    "GONE",
    "LEFT",
    "PAUSE",
    "PAUSED",
    "REASONS",
    "RESUMED",
    "SAVED",
    "SHOW",
    "InvalidSections",
    "PreferencesPage",
    "UnknownChoice",
    "change_preferences",
    "inspect_preferences",
]
