"""The digest room's tables: issues and their topic variants."""

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import BigId, UTCDateTime, utc_now
from .content import Item


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
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
