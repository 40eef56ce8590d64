"""The content room's tables: feeds and items."""

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import BigId, Section, UTCDateTime, utc_now

if TYPE_CHECKING:  # issues.py imports this module; the mapper resolves the name itself
    from .issues import Issue


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
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
    pay: Mapped[str | None] = mapped_column(String(128))  # openings: as the feed words it
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
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
