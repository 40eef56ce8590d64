"""The admin's tables: admin accounts and the worker's events shown on the dashboard."""

from datetime import datetime

from sqlalchemy import (
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import BigId, UTCDateTime, utc_now


class AdminUser(db.Model):
    """An operator who may sign in to /admin; ``password_hash`` is werkzeug's."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)


class JobEvent(db.Model):
    """A notable event of the worker (a missed week, a paused send) shown on the dashboard."""

    __tablename__ = "job_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # missed_week | ...
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utc_now)
