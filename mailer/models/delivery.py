"""The delivery room's tables: deliveries (the queue and the ledger), transactional mail,
bounces and the receipts that make a replayed report count once."""

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import BigId, UTCDateTime, utc_now


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class BounceReceipt(db.Model):
    """An event already taken (a webhook token or event id, a report's Message-ID): replays
    of it change nothing."""

    __tablename__ = "bounce_receipt"
    __table_args__ = (UniqueConstraint("source", "key", name="uq_bounce_receipt_source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
