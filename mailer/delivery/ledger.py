"""The Delivery ledger: ``Delivery.status``'s one transition table, the writes that follow
the relay's reply, and the send counts (:class:`Tally`).

Each write is one short statement on an autocommit connection, run right after the relay's
reply, so that a crash loses at most the messages in flight. The reply code and text are
always kept on the row. Rules (from the config, see :class:`Rules`):

- 2xx: sent (the per-message statement in ``sender/statements.py``, built from
  :func:`delivery_transition` like every other status write).
- 4xx, 421, timeouts, dropped connections: deferred by the room's one retry rule
  (:mod:`.retry`), then failed; such a failure is one soft failure of its subscriber
  (:mod:`.bounces`).
- 5xx to the recipient: failed at once; one hard bounce of its subscriber.
- ``MAILER_PAUSE_AFTER_ERRORS`` relay errors in a row pause the issue (:mod:`.issues`).

```
queued | deferred --sent--> sent         (skipped too: cancelled while on the wire)
queued | deferred --defer--> deferred
queued | deferred --fail--> failed
queued | deferred --skip--> skipped      (subscriber left, issue cancelled)
failed --requeue--> queued               (an admin's "retry failed")
```
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Update

from ..models import Delivery, DeliveryStatus
from .retry import REPLY_LIMIT, after_temporary_failure
from .sender.claims import Claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    """An action of a status transition table: the statuses it may start from and the
    status it leads to (the tables of Issue, Delivery and TransactionalMail)."""

    sources: frozenset[str]
    target: str


QUEUED, DEFERRED = DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED
_WAITING = frozenset({QUEUED, DEFERRED})

# The allowed transitions of Delivery.status, all of them (a row is created queued).
DELIVERY_TRANSITIONS: dict[str, Transition] = {
    "sent": Transition(_WAITING | {DeliveryStatus.SKIPPED}, DeliveryStatus.SENT),
    "defer": Transition(_WAITING, DEFERRED),
    "fail": Transition(_WAITING, DeliveryStatus.FAILED),
    "skip": Transition(_WAITING, DeliveryStatus.SKIPPED),
    "requeue": Transition(frozenset({DeliveryStatus.FAILED}), QUEUED),
}


def delivery_transition(action: str) -> Update:
    """The UPDATE that applies ``action`` (a key of :data:`DELIVERY_TRANSITIONS`).

    It changes rows only from an allowed status; callers narrow it with ``.where(...)`` and
    add the other columns with ``.values(...)``. Every write of ``Delivery.status`` is built
    here. Raises KeyError for an unknown action.
    """
    rule = DELIVERY_TRANSITIONS[action]
    # Plain comparisons, not IN (...): an IN list is an "expanding" parameter that SQLAlchemy
    # fills in at execution, which the sender's precompiled statements (sender/statements.py,
    # run on the DBAPI cursor) cannot do.
    allowed = or_(*(Delivery.status == status for status in sorted(rule.sources)))
    return update(Delivery).where(allowed).values(status=rule.target)


@dataclass
class Tally:
    """Counts of what sends did (one sender, a sum of several, or a transactional run); read
    live for progress reports."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    suppressed: int = 0
    relay_errors: int = 0

    def add(self, other: "Tally") -> None:
        """Add ``other``'s counts to this one (only the counts, also in a subclass)."""
        for field in fields(Tally):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (to send between processes)."""
        return {field.name: getattr(self, field.name) for field in fields(Tally)}


@dataclass(frozen=True)
class Rules:
    """The retry, bounce and pause limits, read from the config with :meth:`from_config`."""

    retry_for: timedelta
    bounce_limit: int
    soft_bounce_limit: int
    pause_after_errors: int

    @classmethod
    def from_config(cls, config: Mapping) -> "Rules":
        """Read ``MAILER_RETRY_FOR`` (seconds), the bounce limits and the pause limit."""
        return cls(
            retry_for=timedelta(seconds=int(config["MAILER_RETRY_FOR"])),
            bounce_limit=max(1, int(config["MAILER_BOUNCE_LIMIT"])),
            soft_bounce_limit=max(1, int(config["MAILER_SOFT_BOUNCE_LIMIT"])),
            pause_after_errors=max(1, int(config["MAILER_PAUSE_AFTER_ERRORS"])),
        )


def _row(action: str, delivery_id: int) -> Update:
    return delivery_transition(action).where(Delivery.id == delivery_id)


def mark_skipped(conn: Connection, row: Claimed, reason: str, now: datetime) -> None:
    """Record that ``row`` was not sent on purpose (e.g. the subscriber left meanwhile)."""
    conn.execute(
        _row("skip", row.delivery_id).values(last_reply=reason, updated_at=now, claimed_until=None)
    )


def defer(
    conn: Connection, row: Claimed, code: int | None, text: str, now: datetime, rules: Rules
) -> str:
    """Defer ``row`` after a temporary failure, or fail it once its retry window is over.

    Returns:
        The new status: "deferred" or "failed".
    """
    step = after_temporary_failure(row.attempts, row.retry_until, now, rules.retry_for)
    action = "defer" if step.status == DeliveryStatus.DEFERRED else "fail"
    values = {
        "attempts": row.attempts + 1,
        "last_code": code,
        "last_reply": text[:REPLY_LIMIT],
        "updated_at": now,
        "claimed_until": None,
        "retry_until": step.retry_until,
    }
    if step.next_attempt_at is not None:
        values["next_attempt_at"] = step.next_attempt_at
    conn.execute(_row(action, row.delivery_id).values(**values))
    return step.status


def fail(conn: Connection, row: Claimed, code: int | None, text: str, now: datetime) -> None:
    """Fail ``row`` for good (a 5xx reply, or an address the relay cannot take)."""
    conn.execute(
        _row("fail", row.delivery_id).values(
            attempts=row.attempts + 1,
            last_code=code,
            last_reply=text[:REPLY_LIMIT],
            updated_at=now,
            claimed_until=None,
        )
    )
