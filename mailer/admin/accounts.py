"""Admin accounts: create one, change its password, check a password at sign-in.

Passwords are stored as werkzeug's salted hash (scrypt by default); nothing here commits.
"""

import secrets
from functools import cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .. import clock
from ..models import AdminUser

MIN_PASSWORD_LENGTH = 12


@cache
def _dummy_hash() -> str:
    # Checked when the address is unknown, so that a wrong address costs as much time as a
    # wrong password and the response time does not tell which addresses have accounts.
    return generate_password_hash("not-a-real-password-for-timing")


class AdminAccountError(ValueError):
    """A bad admin address or password, or an account that already exists / does not exist."""


def normalize_admin_email(address: str) -> str:
    """Return ``address`` validated (syntax only, no DNS) and lower-cased.

    Raises:
        AdminAccountError: the address is not a valid e-mail address.
    """
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise AdminAccountError(f"{address!r} is not a valid e-mail address: {exc}") from exc


def _check_password(password: str) -> None:
    # Spaces at either end do not count towards the length: twelve spaces, or "abc" padded
    # with them, would pass the length rule yet be trivial to guess (and the sign-in form
    # refuses a password that is all spaces, so such an admin could not even sign in).
    if not password.strip():
        raise AdminAccountError("the password must not be empty or only spaces")
    if len(password.strip()) < MIN_PASSWORD_LENGTH:
        raise AdminAccountError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters "
            "(not counting spaces at either end)"
        )


def find_admin(session: Session, email: str) -> AdminUser | None:
    """Return the admin with this address (case-insensitive), or None."""
    query = select(AdminUser).where(func.lower(AdminUser.email) == email.strip().lower())
    return session.scalars(query).first()


def create_admin(session: Session, email: str, password: str) -> AdminUser:
    """Add an admin (not committed).

    Args:
        email: the sign-in address; stored lower-cased.
        password: at least :data:`MIN_PASSWORD_LENGTH` characters besides whitespace at
            either end; stored (hashed) as given.

    Raises:
        AdminAccountError: invalid address, short or all-whitespace password, or the address
            has an account.
    """
    address = normalize_admin_email(email)
    _check_password(password)
    if find_admin(session, address) is not None:
        raise AdminAccountError(f"an admin with the address {address} exists already")
    admin = AdminUser(email=address, password_hash=generate_password_hash(password))
    session.add(admin)
    session.flush()
    return admin


def set_password(session: Session, email: str, password: str) -> AdminUser:
    """Give the existing admin ``email`` a new password (not committed).

    Raises:
        AdminAccountError: no such admin, or the password is too short or all whitespace.
    """
    _check_password(password)
    admin = find_admin(session, email)
    if admin is None:
        raise AdminAccountError(f"there is no admin with the address {email}")
    admin.password_hash = generate_password_hash(password)
    end_sessions(admin)  # a stolen session must not outlive the password it was opened with
    return admin


def end_sessions(admin: AdminUser) -> None:
    """End every session of ``admin`` (not committed): a new random session token.

    Sessions carry the token they were opened with (``AdminUser.get_id``); the user loader
    refuses one that no longer matches.
    """
    admin.session_token = secrets.token_hex(32)


def authenticate(session: Session, email: str, password: str) -> AdminUser | None:
    """Return the admin when ``password`` is right (and stamp ``last_login_at``), else None."""
    admin = find_admin(session, email)
    if admin is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(admin.password_hash, password):
        return None
    admin.last_login_at = clock.now()
    if admin.session_token is None:
        end_sessions(admin)  # the first sign-in since the column was added: make one
    return admin
