"""Subscribers added by an operator (``subscribers add``/``import``, the admin pages).

An operator records people who consented elsewhere. With ``confirmed=True`` they are
confirmed at once and the consent event says who recorded it; otherwise they are pending and
get a confirmation mail (double opt-in, within the limits). An operator never brings back
someone who unsubscribed, bounced, or had their data erased (:class:`Suppressed`).
The DNS check is skipped here (syntax only): imports can hold thousands of rows.
"""

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import clock
from ..models import Subscriber
from .addresses import normalize_email
from .errors import ImportFileError, InvalidAddress, Suppressed
from .mailing import queue_confirmation
from .records import (
    BOUNCED,
    CONFIRMED,
    PENDING,
    UNSUBSCRIBED,
    change_status,
    find_subscriber,
    is_suppressed,
    lift_suppression,
    record_event,
)

_ATTEMPTS = 3
ADDED, UPDATED, DUPLICATE = "added", "updated", "duplicate"


@dataclass
class ImportReport:
    """The outcome of one CSV import; ``invalid`` lists (line number, message) per bad row."""

    added: int = 0
    updated: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)
    suppressed: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class _Request:
    email: str
    confirmed: bool
    source: str
    ip: str | None
    user_agent: str | None
    # The operator's reason for bringing back someone who left, bounced or was erased
    # (``subscribers add --resubscribe REASON``); None: such addresses are refused.
    resubscribe: str | None = None


def operator_normalize(raw: object, config: Mapping) -> str:
    """Normalize an operator-given address (syntax only, no DNS); raises InvalidAddress."""
    return normalize_email(
        raw,
        check_deliverability=False,
        allow_smtputf8=bool(config["MAILER_ALLOW_SMTPUTF8"]),
        dns_timeout=0.0,
    )


def add_subscriber(
    session: Session,
    email: str,
    *,
    confirmed: bool,
    source: str,
    ip: str | None = None,
    user_agent: str | None = None,
    config: Mapping | None = None,
    resubscribe: str | None = None,
) -> Subscriber:
    """Add one subscriber on an operator's word and record the consent event; commits.

    Args:
        confirmed: the person consented elsewhere (recorded as such); else pending with a
            confirmation mail.
        source: "cli", "admin" or "import:FILE" (kept in the consent event).
        config: the app config (default: ``current_app.config``).
        resubscribe: the reason to confirm an unsubscribed, bounced or erased address again
            (recorded in a ``resubscribed_by_operator`` consent event); implies confirmed.

    Returns:
        The subscriber (new, confirmed now, or unchanged when already there).

    Raises:
        InvalidAddress: the address is refused, or ``resubscribe`` is given but blank.
        Suppressed: erased, unsubscribed or bounced, and no ``resubscribe`` reason.
    """
    config = config if config is not None else current_app.config
    if resubscribe is not None and not resubscribe.strip():
        raise InvalidAddress("--resubscribe needs a reason (why may this person get mail again?)")
    reason = resubscribe.strip() if resubscribe else None
    confirmed = confirmed or reason is not None
    normalized = operator_normalize(email, config)
    request = _Request(normalized, confirmed, source, ip, user_agent, reason)
    return _add_committed(session, request, config)[0]


def _add_committed(session: Session, request: _Request, config: Mapping) -> tuple[Subscriber, str]:
    for attempt in range(_ATTEMPTS):
        try:
            outcome = _add_once(session, request, config, clock.now())
            session.commit()
            return outcome
        except Suppressed:
            session.rollback()
            raise
        except IntegrityError:
            # A web signup for the same address won the unique index: read its row.
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _add_once(
    session: Session, request: _Request, config: Mapping, now: datetime
) -> tuple[Subscriber, str]:
    existing = find_subscriber(session, request.email)
    if existing is not None:
        return existing, _update_existing(session, existing, request, now)
    if is_suppressed(session, config["SECRET_KEY"], request.email):
        if request.resubscribe is None:
            raise Suppressed(
                f"{request.email} had their data erased at their request; add it again only "
                "with --resubscribe REASON"
            )
        lift_suppression(session, config["SECRET_KEY"], request.email)
    status = CONFIRMED if request.confirmed else PENDING
    subscriber = Subscriber(
        email=request.email,
        status=status,
        version=1,
        source=request.source.split(":", 1)[0][:32],
        created_at=now,
        confirmed_at=now if request.confirmed else None,
    )
    session.add(subscriber)
    session.flush()
    action = "imported" if request.source.startswith("import") else "added_by_operator"
    detail = (
        "consent given elsewhere; recorded as confirmed by the operator"
        if request.confirmed
        else "added as pending by the operator; confirmation mail sent"
    )
    if request.resubscribe is not None:
        action, detail = "resubscribed_by_operator", f"reason: {request.resubscribe}"
    _record(session, subscriber, action, now, request, detail)
    if not request.confirmed:
        queue_confirmation(session, subscriber.id, config, now)
    return subscriber, ADDED


def _update_existing(session: Session, subscriber: Subscriber, request: _Request, now) -> str:
    if subscriber.status in (UNSUBSCRIBED, BOUNCED):
        if request.resubscribe is None:
            raise Suppressed(
                f"{request.email} is {subscriber.status}; only they can subscribe again, "
                "on the signup page (or give --resubscribe REASON)"
            )
        change_status(session, subscriber, "reconfirm", now)
        detail = f"reason: {request.resubscribe}"
        _record(session, subscriber, "resubscribed_by_operator", now, request, detail)
        return UPDATED
    if request.confirmed and change_status(session, subscriber, "confirm", now):
        detail = "consent given elsewhere; confirmed by the operator"
        _record(session, subscriber, "confirmed_by_operator", now, request, detail)
        return UPDATED
    return DUPLICATE


def _record(session, subscriber, action, now, request: _Request, detail: str) -> None:
    record_event(
        session,
        subscriber,
        action,
        now,
        ip=request.ip,
        user_agent=request.user_agent,
        source=request.source,
        detail=detail,
    )


def import_csv(
    session: Session,
    stream: Iterable[str],
    *,
    confirmed: bool,
    source: str,
    config: Mapping | None = None,
) -> ImportReport:
    """Import subscribers from CSV text with a column ``email`` (any case); commits per row.

    Bad rows are reported in ``ImportReport.invalid`` and skipped; so are repeats within the
    file (``duplicates``, like addresses already on the list in that state) and suppressed
    addresses (erased, unsubscribed, bounced). See :func:`add_subscriber` for ``confirmed``.

    Raises:
        ImportFileError: the file has no ``email`` column or is not CSV text.
    """
    config = config if config is not None else current_app.config
    reader = csv.DictReader(stream)
    column = _email_column(reader)
    report = ImportReport()
    seen: set[str] = set()
    for line, raw in _rows(reader, column, report):
        _import_row(session, line, raw, (confirmed, source, config), seen, report)
    return report


def _email_column(reader: csv.DictReader) -> str:
    try:
        names = reader.fieldnames or []
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ImportFileError(f"cannot read the CSV header: {exc}") from exc
    for name in names:
        if (name or "").strip().lstrip("\ufeff").lower() == "email":
            return name
    raise ImportFileError(f"the first line needs a column named 'email' (found: {names})")


def _rows(reader: csv.DictReader, column: str, report: ImportReport):
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader raises before it counts the line it could not read (e.g. a field
            # over csv's size limit), so that line is the next one; the rows after it are
            # numbered right again.
            report.invalid.append((reader.line_num + 1, f"not a CSV row: {exc}"))
            continue
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"line {reader.line_num + 1} is not UTF-8 text") from exc
        yield reader.line_num, row.get(column) or ""


def _import_row(session, line: int, raw: str, options, seen: set[str], report: ImportReport):
    confirmed, source, config = options
    if not raw.strip():
        report.invalid.append((line, "the email cell is empty"))
        return
    try:
        email = operator_normalize(raw, config)
    except InvalidAddress as exc:
        report.invalid.append((line, f"{raw[:80]!r}: {exc.message}"))
        return
    if email.lower() in seen:
        report.duplicates += 1
        return
    seen.add(email.lower())
    try:
        _, outcome = _add_committed(session, _Request(email, confirmed, source, None, None), config)
    except Suppressed:
        report.suppressed += 1
        return
    if outcome == ADDED:
        report.added += 1
    elif outcome == UPDATED:
        report.updated += 1
    else:
        report.duplicates += 1
