"""Test copies of an issue: the real renderer and headers, "[TEST]" subject, no ledger rows."""

import smtplib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..models import Issue
from . import message
from .errors import DeliveryError
from .smtp import connection


@dataclass(frozen=True)
class TestCopyResult:
    """What the relay answered for one test copy."""

    __test__ = False  # not a pytest test class, despite the name

    recipient: str
    ok: bool
    reply: str


def send_test_copies(
    issue: Issue, recipients: Iterable[str], config: Mapping
) -> list[TestCopyResult]:
    """Send one test copy of ``issue`` to each address, straight to the relay.

    Uses ``message.build_test_message`` (subject "[TEST] ...", same headers as a real copy) and
    ``connection.send_message``; writes no Delivery row, so the issue's statistics do not change.
    A refused or failed copy is reported, never raised: the others are still sent.

    Returns:
        One result per recipient, in the given order.
    """
    results = []
    for recipient in recipients:
        body = message.build_test_message(issue, recipient, config)
        try:
            reply = connection.send_message(config, recipient, body)
        except (OSError, smtplib.SMTPException, DeliveryError, ValueError) as exc:
            # Relay unreachable, SMTPUTF8 missing, or MAILER_SMTP_* malformed: say so.
            results.append(TestCopyResult(recipient, False, f"{type(exc).__name__}: {exc}"))
            continue
        results.append(TestCopyResult(recipient, reply.ok, str(reply)))
    return results
