"""The one processor: a report or a provider's events, matched to whom we mailed, recorded.

Every way in (``bounces receive``, the mailbox poll, the webhooks) ends here. Matching, in
order (the first that applies decides):

1. a VERP token (:mod:`.verp`) in the report: the delivery or transactional mail it names.
   A token whose HMAC does not verify, or tokens naming several rows, make the whole report
   change nothing;
2. our deterministic Message-ID (``<issue-N.sub-M@from-domain>``) quoted in the report, when
   that delivery's subscriber is the failed recipient;
3. the failed recipient among the subscribers.

With ``MAILER_BOUNCE_ADDRESS`` set, a mailed report must carry a valid token (1.): the other
two would let anyone who knows a subscriber's address unsubscribe them with a forged report.

Whatever matched, the row must have been sent in the last :data:`MAILED_WITHIN` (30 days):
a report never suppresses an address we did not mail lately. A report or event that
matches nothing is logged and ignored. Each event is a :class:`~mailer.models.Bounce` row;
hard bounces and soft ones count through :func:`.count_bounce` (``MAILER_BOUNCE_LIMIT``,
``MAILER_SOFT_BOUNCE_LIMIT``); a complaint unsubscribes at once
(``subscriptions.service.record_complaint``). A report or event already taken (its
Message-ID, the provider's event id) changes nothing a second time.
"""

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ... import clock
from ...models import Bounce, BounceReceipt, Delivery, Subscriber, TransactionalMail
from ...subscriptions.service import record_complaint
from . import count_bounce
from .reports import COMPLAINT, DIAGNOSTIC_LIMIT, HARD, SOFT, Finding, Report, parse_report
from .verp import DELIVERY, Verp, VerpRef

log = logging.getLogger(__name__)

MAILED_WITHIN = timedelta(days=30)
# How long a taken event's id is kept: far beyond any provider's or MTA's retries (SNS:
# hours, an MTA's queue: 5 days; a Mailgun token is refused after 5 minutes anyway).
RECEIPTS_KEPT = timedelta(days=30)
_SEVERITY = {COMPLAINT: 3, HARD: 2, SOFT: 1}


@dataclass(frozen=True)
class Target:
    """Whom an event is about: the subscriber and the row that mailed them."""

    subscriber_id: int
    email: str
    delivery_id: int | None = None
    mail_id: int | None = None


@dataclass
class Outcome:
    """What processing did. ``status``: recorded, ignored or replayed; ``reason`` says why."""

    status: str
    reason: str = ""
    recorded: list[tuple[int, str]] = field(default_factory=list)  # (subscriber id, kind)
    suppressed: list[int] = field(default_factory=list)  # subscriber ids suppressed now
    recognised: bool = True  # False: nothing in it was recognised (a mailbox keeps it)


def process_report(
    engine: Engine, config: Mapping, raw: bytes, source: str, envelope_to: str | None = None
) -> Outcome:
    """Process one mailed report (a DSN, RFC 3464; an ARF complaint, RFC 5965; anything else).

    Args:
        engine: the database engine. config: the app config. raw: the message as received.
        source: ``receive`` or ``mailbox`` (kept on each Bounce row). envelope_to: the
            address the report was delivered to, when the MTA says (e.g. Postfix's
            ``${original_recipient}``); searched for a VERP token like the report's text.

    Returns:
        The :class:`Outcome`; an auto-reply (RFC 3834) or an unrecognised report is ignored.

    Raises:
        reports.ReportTooLarge: ``raw`` is over 1 MiB (nothing read, nothing changed).
        sqlalchemy.exc.OperationalError: the database is unreachable (nothing changed).
    """
    report = parse_report(raw)
    if report.kind == "autoreply":
        return _ignored("an auto-reply (RFC 3834), not a bounce")
    if report.kind == "unknown":
        outcome = _ignored("no failed recipient or complaint recognised")
        outcome.recognised = False
        return outcome
    verp = Verp(config)
    text = report.text + "\n" + (envelope_to or "")
    refs, forged = _verp_refs(verp, text)
    if forged:
        return _ignored("a VERP token whose signature does not verify")
    if len(refs) > 1:
        return _ignored("VERP tokens naming several messages")
    if not refs and verp.enabled:
        # Every genuine report comes back to the signed address we sent from; one without
        # a token could name anyone whose address a stranger knows (the bounce address is in
        # every Return-Path), so it changes nothing.
        return _ignored("no VERP token, which every report must carry with MAILER_BOUNCE_ADDRESS")
    receipt = report.message_id or hashlib.sha256(raw).hexdigest()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        pairs = _match(conn, config, report, refs)
        return _apply(conn, config, pairs, source, ("report", receipt))


def process_events(
    engine: Engine, config: Mapping, findings: list[Finding], source: str, event_id: str
) -> Outcome:
    """Process a provider's events (already verified by the webhook), matched by recipient.

    Args:
        findings: the events, one per recipient. source: the provider's name.
        event_id: the provider's id of this delivery of events (a second one with the same
            id changes nothing).
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        cutoff = clock.now() - MAILED_WITHIN
        pairs = [(t, f) for f in findings if (t := _by_recipient(conn, f.recipient, cutoff))]
        return _apply(conn, config, pairs, source, (source, event_id))


def purge_receipts(engine: Engine) -> int:
    """Delete the ids of events taken more than :data:`RECEIPTS_KEPT` (30 days) ago.

    Returns:
        How many were deleted. The worker's daily purge job calls it.
    """
    with engine.begin() as conn:
        cutoff = clock.now() - RECEIPTS_KEPT
        return conn.execute(
            delete(BounceReceipt).where(BounceReceipt.received_at < cutoff)
        ).rowcount


def _ignored(reason: str) -> Outcome:
    log.info("bounce report ignored: %s", reason)
    return Outcome("ignored", reason)


def _verp_refs(verp: Verp, text: str) -> tuple[set[VerpRef], bool]:
    """The rows named by VERP tokens in ``text``, and whether any token failed to verify."""
    if not verp.enabled:
        return set(), False
    local, domain = verp.address.rsplit("@", 1)
    pattern = re.compile(
        rf"{re.escape(local)}\+([A-Za-z0-9-]{{1,64}})@{re.escape(domain)}\b", re.IGNORECASE
    )
    refs, forged = set(), False
    for token in set(pattern.findall(text)):
        ref = verp.read(token)
        if ref is None:
            forged = True
        else:
            refs.add(ref)
    return refs, forged


def _match(conn: Connection, config: Mapping, report: Report, refs) -> list[tuple]:
    cutoff = clock.now() - MAILED_WITHIN
    if refs:
        target = _by_verp(conn, next(iter(refs)), cutoff)
        if target is None:
            return []
        worst = max(report.findings, key=lambda f: _SEVERITY[f.kind])
        return [(target, worst)]
    domain = parseaddr(config["MAILER_FROM"])[1].rpartition("@")[2]
    quoted = _by_message_ids(conn, report.quoted_message_ids(domain), cutoff)
    pairs = []
    for finding in report.findings:
        target = quoted.get(finding.recipient) or _by_recipient(conn, finding.recipient, cutoff)
        if target is not None and all(t.subscriber_id != target.subscriber_id for t, _ in pairs):
            pairs.append((target, finding))
    return pairs


def _by_verp(conn: Connection, ref: VerpRef, cutoff) -> Target | None:
    if ref.kind == DELIVERY:
        row = conn.execute(
            select(Delivery.subscriber_id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id == ref.row_id, Delivery.sent_at >= cutoff)
        ).first()
        return Target(row[0], row[1], delivery_id=ref.row_id) if row else None
    row = conn.execute(
        select(TransactionalMail.subscriber_id, Subscriber.email)
        .join(Subscriber, Subscriber.id == TransactionalMail.subscriber_id)
        .where(TransactionalMail.id == ref.row_id, TransactionalMail.sent_at >= cutoff)
    ).first()
    return Target(row[0], row[1], mail_id=ref.row_id) if row else None


def _by_message_ids(conn: Connection, pairs: list[tuple[int, int]], cutoff) -> dict:
    """{subscriber's lower-cased address: Target} of the quoted deliveries sent lately."""
    found = {}
    for issue_id, subscriber_id in pairs[:20]:
        row = conn.execute(
            select(Delivery.id, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.subscriber_id == subscriber_id,
                Delivery.sent_at >= cutoff,
            )
        ).first()
        if row is not None:
            found[row[1].lower()] = Target(subscriber_id, row[1], delivery_id=row[0])
    return found


def _by_recipient(conn: Connection, address: str, cutoff) -> Target | None:
    """The subscriber with this address, if a delivery or mail was sent to them lately."""
    if not address or "@" not in address:
        return None
    subscriber = conn.execute(
        select(Subscriber.id, Subscriber.email).where(
            func.lower(Subscriber.email) == func.lower(address)
        )
    ).first()
    if subscriber is None:
        return None
    delivery = conn.scalar(
        select(Delivery.id)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.sent_at >= cutoff)
        .order_by(Delivery.sent_at.desc())
        .limit(1)
    )
    if delivery is not None:
        return Target(subscriber.id, subscriber.email, delivery_id=delivery)
    mail = conn.scalar(
        select(TransactionalMail.id)
        .where(TransactionalMail.subscriber_id == subscriber.id)
        .where(TransactionalMail.sent_at >= cutoff)
        .order_by(TransactionalMail.sent_at.desc())
        .limit(1)
    )
    return Target(subscriber.id, subscriber.email, mail_id=mail) if mail is not None else None


def _apply(conn: Connection, config: Mapping, pairs, source: str, receipt) -> Outcome:
    if not pairs:
        return _ignored("matches no subscriber mailed in the last 30 days")
    if not _take_receipt(conn, *receipt):
        log.info("bounce event %s from %s already taken", receipt[1][:80], receipt[0])
        return Outcome("replayed", "already processed")
    outcome = Outcome("recorded")
    for target, finding in pairs:
        if _record(conn, config, target, finding, source):
            outcome.suppressed.append(target.subscriber_id)
        outcome.recorded.append((target.subscriber_id, finding.kind))
    return outcome


def _take_receipt(conn: Connection, source: str, key: str) -> bool:
    """Note the event as taken; False when it already was (a replay)."""
    key = key if len(key) <= 255 else hashlib.sha256(key.encode()).hexdigest()
    try:
        conn.execute(insert(BounceReceipt).values(source=source, key=key, received_at=clock.now()))
    except IntegrityError:
        return False
    return True


def _record(conn: Connection, config: Mapping, target: Target, finding: Finding, source) -> bool:
    """Add the Bounce row and apply it; True when the subscriber is suppressed now."""
    diagnostic = (finding.diagnostic or "")[:DIAGNOSTIC_LIMIT] or None
    first_soft = finding.kind == SOFT and not _soft_recorded(conn, target)
    conn.execute(
        insert(Bounce).values(
            subscriber_id=target.subscriber_id,
            delivery_id=target.delivery_id,
            mail_id=target.mail_id,
            kind=finding.kind,
            source=source,
            status_code=(finding.status_code or None) and finding.status_code[:16],
            diagnostic=diagnostic,
            received_at=clock.now(),
        )
    )
    log.info("%s bounce (%s) for subscriber %s", finding.kind, source, target.subscriber_id)
    reply = f"{source}: {finding.status_code or ''} {diagnostic or ''}".strip()
    if finding.kind == HARD:
        return count_bounce(conn, target.subscriber_id, reply, config["MAILER_BOUNCE_LIMIT"], True)
    if finding.kind == SOFT:
        if not first_soft:
            return False  # a delay reported again (each retry resends it): one soft failure
        limit = config["MAILER_SOFT_BOUNCE_LIMIT"]
        return count_bounce(conn, target.subscriber_id, reply, limit, False)
    with Session(bind=conn.engine) as session:
        subscriber = session.get(Subscriber, target.subscriber_id)
        return subscriber is not None and record_complaint(
            session, subscriber, source=source, detail=diagnostic
        )


def _soft_recorded(conn: Connection, target: Target) -> bool:
    """Whether a soft bounce of the same delivery (or mail) was recorded already."""
    if target.delivery_id is not None:
        same = Bounce.delivery_id == target.delivery_id
    elif target.mail_id is not None:
        same = Bounce.mail_id == target.mail_id
    else:
        return False
    found = select(Bounce.id).where(same, Bounce.kind == SOFT).limit(1)
    return conn.scalar(found) is not None
