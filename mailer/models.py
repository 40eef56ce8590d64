"""Database models. No I/O and no commits here: services own their transactions.

Each table has at most one status column; the allowed transitions of each status live in one
function of the package that owns the table (``delivery.issues.change_issue_status``,
``delivery.ledger.delivery_transition``, ``delivery.transactional.mail_transition``,
``subscriptions.records``).
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
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from . import clock
from .extensions import db

# The largest values of the columns that URL numbers are looked up in: ids are BIGINT (SQLite's
# INTEGER is 64-bit too), Issue.number is INTEGER (32-bit on PostgreSQL). A larger number
# cannot name a row, and the database drivers refuse it (OverflowError on SQLite, "integer out
# of range" on PostgreSQL) instead of finding nothing.
MAX_DATABASE_ID = 2**63 - 1
MAX_ISSUE_NUMBER = 2**31 - 1

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


class Section:
    """Values of ``Item.section`` and ``Feed.section``, and the topics a subscriber picks."""

    NEWS = "news"
    OPENINGS = "openings"
    ALL = (NEWS, OPENINGS)
    BOTH = "news,openings"  # Subscriber.sections of someone who gets everything

    @staticmethod
    def key(chosen) -> str:
        """Topics as stored: known values in ``ALL``'s order, comma-joined; "" for none."""
        return ",".join(value for value in Section.ALL if value in set(chosen))


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
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
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    # The topics chosen on the form (``Section.key`` form); None: both.
    sections: Mapped[str | None] = mapped_column(String(32))


class Suppression(db.Model):
    """An address that must not be added back: kept only as a keyed hash (HMAC-SHA256 hex)."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)  # erased | bounced | ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)


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
    pay: Mapped[str | None] = mapped_column(String(128))  # openings: as the feed words it
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
    hidden: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Published long before its feed was added (first fetch): kept out of the digest until
    # an admin includes it (content.ingest, MAILER_FEED_BACKLOG_DAYS).
    backlog: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    # The issue that carried this item; NULL while it is in no issue yet.
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="SET NULL"))

    feed: Mapped[Feed | None] = relationship(back_populates="items")
    issue: Mapped["Issue | None"] = relationship(back_populates="items")


class IssueStatus:
    """Values of ``Issue.status``; transitions live in ``mailer.delivery.issues``."""

    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    ALL = (DRAFT, SENDING, PAUSED, SENT, CANCELLED)


_LIVE_SCHEDULED = "kind = 'scheduled' AND status <> 'cancelled'"


class IssueKind:
    """Values of ``Issue.kind``: the weekly run's issue, or one sent by hand ahead of it."""

    SCHEDULED = "scheduled"
    EXTRA = "extra"
    ALL = (SCHEDULED, EXTRA)


class Issue(db.Model):
    """One numbered digest for one period (ISO week), rendered once and stored."""

    __tablename__ = "issue"
    __table_args__ = (
        # One live scheduled issue per period, whoever builds it; extra and cancelled issues
        # do not hold their period (a rebuild of a cancelled week works).
        Index(
            "uq_issue_scheduled_period",
            "period",
            unique=True,
            sqlite_where=text(_LIVE_SCHEDULED),
            postgresql_where=text(_LIVE_SCHEDULED),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    # ISO week in MAILER_TIMEZONE, e.g. "2026-W49": of the weekly run that sends it (an extra
    # issue: of the run it was built for).
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(
        String(16), nullable=False, default=IssueKind.SCHEDULED, server_default="scheduled"
    )
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
    # Relay pushback (delivery.issues): temporary refusals in a row across the issue's
    # connections, the relay's last refusal, when a pushback pause ends, and how many
    # pushback pauses this send has had (each one longer).
    refusal_streak: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    relay_reply: Mapped[str | None] = mapped_column(Text)
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pushback_pauses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The preflight's result (digest.preflight, SpamAssassin included) as JSON, stored when
    # the issue is built or first checked, with a hash of what it depends on (content and
    # settings): a send of an unchanged issue reads it instead of running SpamAssassin again.
    preflight_key: Mapped[str | None] = mapped_column(String(64))
    preflight: Mapped[str | None] = mapped_column(Text)
    preflight_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[Item]] = relationship(back_populates="issue")
    variants: Mapped[list["IssueVariant"]] = relationship(
        back_populates="issue", cascade="all, delete-orphan", passive_deletes=True
    )


class IssueVariant(db.Model):
    """An issue as sent to the subscribers of one topic, rendered once at the build.

    ``Issue.html``/``text`` is the whole issue (archive, test copies, subscribers of both);
    one row per single topic with items that week (``"news"`` or ``"openings"``).
    """

    __tablename__ = "issue_variant"
    __table_args__ = (UniqueConstraint("issue_id", "sections", name="uq_issue_variant_sections"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), nullable=False
    )
    sections: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(998), nullable=False)
    preheader: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    html: Mapped[str] = mapped_column(Text, nullable=False, default="")
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")

    issue: Mapped[Issue] = relationship(back_populates="variants")


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
    retry_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # see delivery.retry
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

    # Flask-Login's user protocol, spelled out rather than inherited from UserMixin.
    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        """Return the id Flask-Login keeps in the session."""
        return str(self.id)


class JobEvent(db.Model):
    """A notable event of the worker (a missed week, a paused send) shown on the dashboard."""

    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # missed_week | ...
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)


class Bounce(db.Model):
    """One bounce or complaint event matched to a subscriber (``delivery.bounces``).

    ``kind``: hard, soft or complaint. ``source``: receive, mailbox, or the provider.
    ``diagnostic``: the report's text (attacker-written: shown escaped), at most 1,000 chars.
    """

    __tablename__ = "bounce"
    __table_args__ = (Index("ix_bounce_kind_received", "kind", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), index=True
    )
    mail_id: Mapped[int | None] = mapped_column(
        ForeignKey("transactional_mail.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    status_code: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(String(1000))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)


class BounceReceipt(db.Model):
    """An event already taken (a webhook token or event id, a report's Message-ID): replays
    of it change nothing."""

    __tablename__ = "bounce_receipt"
    __table_args__ = (UniqueConstraint("source", "key", name="uq_bounce_receipt_source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=_now)
