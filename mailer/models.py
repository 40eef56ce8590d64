"""Database models. No I/O and no commits here: services own their transactions.

Each table has at most one status column; the allowed transitions of each status live in one
function of the package that owns the table (see ``mailer/delivery/states.py`` and
``mailer/subscriptions/service.py``).
"""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from . import clock
from .extensions import db

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """A timestamp stored as naive UTC and always returned as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC; refuse naive ones (their zone is unknown)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use mailer.clock")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        """Attach UTC to the stored naive value."""
        return value.replace(tzinfo=UTC) if value is not None else None


def _now() -> datetime:
    return clock.now()


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Per-address limits on confirmation mails (one per 10 minutes, a few a day).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_day: Mapped[str | None] = mapped_column(String(10))
    confirmations_that_day: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Bounce counters feeding suppression (status "bounced").
    hard_bounces: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    soft_failures_in_row: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # Where it came from: the page URL / Referer of a signup, "cli", "import:FILE", "admin".
    source: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[str | None] = mapped_column(Text)

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
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)


class Suppression(db.Model):
    """An address that must not be added back: kept only as a keyed hash (HMAC-SHA256 hex)."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)  # erased | bounced | ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)


class Section:
    """Values of ``Item.section`` and ``Feed.section``."""

    NEWS = "news"
    OPENINGS = "openings"
    ALL = (NEWS, OPENINGS)


class Feed(db.Model):
    """An RSS/Atom source; ``last_error`` is set when the last refresh failed."""

    __tablename__ = "feed"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False, unique=True)
    section: Mapped[str] = mapped_column(String(16), nullable=False, default=Section.NEWS)
    title: Mapped[str | None] = mapped_column(String(512))
    site_url: Mapped[str | None] = mapped_column(String(2048))
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set by the admin's "Refresh now"; the worker refreshes the feed and clears it (no web
    # request waits on a feed server).
    refresh_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list["Item"]] = relationship(back_populates="feed", passive_deletes=True)


class Item(db.Model):
    """A news story or a job opening, from a feed (``feed_id``) or written by an admin."""

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("feed_id", "dedupe_key", name="uq_item_feed_dedupe"),
        Index("ix_item_issue_section_published", "issue_id", "section", "published_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feed.id", ondelete="SET NULL"))
    # Identity within the feed: the guid when unique there, else a hash of link + title.
    dedupe_key: Mapped[str] = mapped_column(String(255), nullable=False)
    section: Mapped[str] = mapped_column(String(16), nullable=False, default=Section.NEWS)
    title: Mapped[str] = mapped_column(String(1024), nullable=False)
    link: Mapped[str] = mapped_column(String(2048), nullable=False)
    summary_html: Mapped[str] = mapped_column(Text, nullable=False, default="")
    source_name: Mapped[str | None] = mapped_column(String(512))
    author: Mapped[str | None] = mapped_column(String(512))
    company: Mapped[str | None] = mapped_column(String(512))
    location: Mapped[str | None] = mapped_column(String(512))
    job_type: Mapped[str | None] = mapped_column(String(128))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    hidden: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The issue that carried this item; NULL while it is in no issue yet.
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="SET NULL"))

    feed: Mapped[Feed | None] = relationship(back_populates="items")
    issue: Mapped["Issue | None"] = relationship(back_populates="items")


class IssueStatus:
    """Values of ``Issue.status``; transitions live in ``mailer.delivery.states``."""

    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    ALL = (DRAFT, SENDING, PAUSED, SENT, CANCELLED)


class Issue(db.Model):
    """One numbered digest for one period (ISO week), rendered once and stored."""

    __tablename__ = "issue"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    # ISO week in MAILER_TIMEZONE, e.g. "2026-W49": one issue per period, whoever builds it.
    period: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=IssueStatus.DRAFT)
    subject: Mapped[str] = mapped_column(String(998), nullable=False)
    preheader: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    html: Mapped[str] = mapped_column(Text, nullable=False, default="")
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Consecutive relay errors across workers; the issue pauses itself past a limit.
    error_streak: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status_reason: Mapped[str | None] = mapped_column(Text)

    items: Mapped[list[Item]] = relationship(back_populates="issue")


class DeliveryStatus:
    """Values of ``Delivery.status``."""

    QUEUED = "queued"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"
    ALL = (QUEUED, SENT, DEFERRED, FAILED, SKIPPED)


class Delivery(db.Model):
    """The queue and the ledger: one row per (issue, subscriber)."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id", name="uq_delivery_issue_subscriber"),
        Index("ix_delivery_issue_status_id", "issue_id", "status", "id"),
        Index("ix_delivery_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), nullable=False
    )
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set at the first temporary failure (now + MAILER_RETRY_FOR): 4xx after it fail the row.
    retry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TransactionalMail(db.Model):
    """An outgoing one-off mail (e.g. the signup confirmation): queued, retried like a delivery.

    It is kept apart from ``Delivery`` because it belongs to no issue and carries no
    List-Unsubscribe headers; ``body`` holds the complete RFC 5322 message (CRLF line ends),
    or None until the worker builds it (confirmation mails are queued by the web request
    without one: see ``subscriptions.mailing``); a row without a body is never sent.
    """

    __tablename__ = "transactional_mail"
    __table_args__ = (Index("ix_transactional_mail_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # confirm | ...
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminUser(db.Model):
    """An operator who may sign in to /admin; ``password_hash`` is werkzeug's."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A random value put into each session at sign-in (via get_id) and compared on every
    # request; replaced at sign-out and at a password change, which ends every session
    # signed in before, copied cookies included. NULL: no session is valid yet.
    session_token: Mapped[str | None] = mapped_column(String(64))

    # Flask-Login's user protocol, spelled out rather than inherited from UserMixin.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """Return what Flask-Login keeps in the session: ``ID:SESSION_TOKEN``."""
        return f"{self.id}:{self.session_token}"


class LoginFailure(db.Model):
    """A failed admin sign-in, counted per account and per client IP by ``admin.throttle``.

    Kept in the database so that every web process (gunicorn worker) counts the same
    attempts; rows older than the longest limit window are deleted as new ones come.
    """

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_email_created", "email", "created_at"),
        Index("ix_login_failure_ip_created", "ip_address", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    ip_address: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)


class JobEvent(db.Model):
    """A notable event of the worker (a missed week, a paused send) shown on the dashboard."""

    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # missed_week | ...
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
