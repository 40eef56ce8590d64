"""Shared column types, id limits and the section vocabulary of every table."""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    TypeDecorator,
)

from .. import clock

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


def utc_now() -> datetime:
    """The column default for creation times: ``mailer.clock.now()`` (aware UTC, settable)."""
    return clock.now()


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
