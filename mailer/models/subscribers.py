"""The subscriptions room's tables: subscribers, consent events, signup requests, suppressions."""

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import BigId, Section, UTCDateTime, utc_now


class SubscriberStatus:
    """Values of ``Subscriber.status``."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    ALL = (PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED)


class Subscriber(db.Model):
    """One mailbox on the list; ``email`` is email-validator's normalized form."""

    __tablename__ = "subscriber"
    __table_args__ = (Index("ix_subscriber_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    # Bumped on every (re)subscription so that tokens of an earlier one stop working.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="web")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Per-address limits on confirmation mails (one per 10 minutes, a few a day).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_day: Mapped[str | None] = mapped_column(String(10))
    confirmations_that_day: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Bounce counters feeding suppression (status "bounced").
    hard_bounces: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    soft_failures_in_row: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The topics this subscriber gets (``Section.key`` form); the digest variant they receive.
    sections: Mapped[str] = mapped_column(
        String(32), default=Section.BOTH, server_default=Section.BOTH
    )
    # No digest is sent while this is in the future (the preference page's "pause").
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list["ConsentEvent"]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status}>"


# One row per mailbox whatever the case the visitor typed (lookups use lower() too).
Index("uq_subscriber_email_lower", func.lower(Subscriber.email), unique=True)


class ConsentEvent(db.Model):
    """A recorded change of a subscriber's consent: what, when, from where, by which client."""

    __tablename__ = "consent_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # e.g. signup_requested, confirmed, unsubscribed, imported, added_by_operator, bounced
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # Where it came from: the page URL / Referer of a signup, "cli", "import:FILE", "admin".
    source: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[str | None] = mapped_column(Text)
    # The topics chosen with this consent (``Section.key`` form), when it was about topics.
    sections: Mapped[str | None] = mapped_column(String(32))
    # Why someone left (``subscriptions.preferences.REASONS``), when they said.
    reason: Mapped[str | None] = mapped_column(String(32))

    subscriber: Mapped[Subscriber] = relationship(back_populates="events")


class SignupRequest(db.Model):
    """A signup taken by the web form, waiting for the worker (``subscriptions.signup``).

    The request only stores this row; the worker turns it into a pending subscriber, a
    consent event (with this row's time, IP, user agent and source) and a confirmation mail,
    and deletes it in the same transaction.
    """

    __tablename__ = "signup_request"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # The page URL / Referer of the signup (as ConsentEvent.source).
    source: Mapped[str | None] = mapped_column(String(512))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    # The topics chosen on the form (``Section.key`` form); None: both.
    sections: Mapped[str | None] = mapped_column(String(32))


class Suppression(db.Model):
    """An address that must not be added back: kept only as a keyed hash (HMAC-SHA256 hex)."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)  # erased | bounced | ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
