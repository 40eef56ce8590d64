"""Admin sign-in throttling kept in the database: failed attempts per account and per IP.

Every web process (each gunicorn worker, each machine) counts the same ``login_failure``
rows, so the limits hold whatever the number of processes, without Redis. Two counts, each
with its own limit, so that one neighbour behind a shared address (NAT) cannot lock every
admin out, and no single account can be guessed at from many addresses:

- per account (``MAILER_LOGIN_ACCOUNT_RATE_LIMIT``): failures for one e-mail address from
  anywhere; a guesser locks only the account they guess at;
- per client IP (``MAILER_LOGIN_RATE_LIMIT``): failures from one address for any account;
  it stops one client from trying many accounts.

Limits are Flask-Limiter's syntax (``5/minute;50/day``), read with ``limits.parse_many``.
Only failures count; a right password while a limit is exceeded is refused too (else the
limit would not slow guessing).
"""

from collections.abc import Mapping
from datetime import timedelta

from limits import parse_many
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from .. import clock
from ..models import LoginFailure


def _windows(limit: str) -> list[tuple[int, int]]:
    """(amount, window in seconds) for each item of a Flask-Limiter limit string."""
    return [(item.amount, item.get_expiry()) for item in parse_many(limit)]


def _over(session: Session, condition: ColumnElement, limit: str) -> int | None:
    """Seconds to wait when the failures matching ``condition`` exceed ``limit``, else None."""
    now = clock.now()
    for amount, seconds in _windows(limit):
        since = now - timedelta(seconds=seconds)
        query = select(func.count(), func.min(LoginFailure.created_at)).where(
            condition, LoginFailure.created_at > since
        )
        count, oldest = session.execute(query).one()
        if count >= amount:
            return max(1, int((oldest + timedelta(seconds=seconds) - now).total_seconds()) + 1)
    return None


def retry_after(session: Session, config: Mapping, email: str, ip: str) -> int | None:
    """Seconds until a sign-in for ``email`` from ``ip`` may be tried again, or None if now.

    ``email`` is compared lower-cased, as admin addresses are stored.
    """
    by_account = _over(
        session,
        LoginFailure.email == email.strip().lower(),
        config["MAILER_LOGIN_ACCOUNT_RATE_LIMIT"],
    )
    by_ip = _over(session, LoginFailure.ip_address == ip, config["MAILER_LOGIN_RATE_LIMIT"])
    waits = [wait for wait in (by_account, by_ip) if wait is not None]
    return max(waits) if waits else None


def record_failure(session: Session, config: Mapping, email: str, ip: str) -> None:
    """Store one failed sign-in (not committed) and delete failures older than every window."""
    longest = max(
        seconds
        for name in ("MAILER_LOGIN_ACCOUNT_RATE_LIMIT", "MAILER_LOGIN_RATE_LIMIT")
        for _amount, seconds in _windows(config[name])
    )
    now = clock.now()
    session.execute(
        delete(LoginFailure).where(LoginFailure.created_at < now - timedelta(seconds=longest))
    )
    session.add(LoginFailure(email=email.strip().lower()[:320], ip_address=ip[:64], created_at=now))
