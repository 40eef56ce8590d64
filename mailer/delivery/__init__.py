"""The delivery room: an issue and its subscribers to the relay, and what happened recorded.

This is its front door: the functions other rooms and the entry points (admin, cli,
scheduler, the app factory) use. Inside, ``message/`` builds what goes on the wire,
``smtp/`` talks to the relay, ``sender/`` is the bulk fast path, and the modules beside them
hold the ledger, the issue's status, the retry rule, bounces, transactional mail, test
copies and the deliverability report (docs/ARCHITECTURE.md, "The rooms").
"""

from .bounces.mailbox import FetchSummary, MailboxSettings, fetch_mailbox
from .bounces.process import Outcome, process_events, process_report, purge_receipts
from .bounces.reports import MAX_REPORT_BYTES, Finding, ReportTooLarge
from .bounces.verp import Verp
from .bounces.views import bp as webhooks_bp
from .bounces.webhooks import PROVIDERS, WebhookResult, handle_webhook
from .deliverability import check_deliverability, dns_lookup
from .dispatch import (
    SendProgress,
    SendSummary,
    issue_by_number,
    send_pending,
    send_transactional,
    start_issue,
    stop_sending,
    waiting_for_hourly_cap,
)
from .enqueue import enqueue_issue, next_retry_at, recipient_count, status_counts
from .errors import DeliveryError, InvalidTransition, NothingToSend, PreflightFailed
from .issues import PUSHBACK, change_issue_status
from .message import build_test_message, fill_markers, unsubscribe_url_of_test_copy
from .message.dkim import (
    DkimConfigError,
    dns_record,
    generate_ed25519_key,
    generate_private_key,
    key_bits,
    signer_from_config,
    write_private_key,
)
from .message.headers import HeaderValueError, sender
from .smtp.settings import RelaySettings
from .testcopy import TestCopyResult, send_test_copies

__all__ = [
    "MAX_REPORT_BYTES",
    "PROVIDERS",
    "DeliveryError",
    "FetchSummary",
    "Finding",
    "DkimConfigError",
    "HeaderValueError",
    "InvalidTransition",
    "MailboxSettings",
    "NothingToSend",
    "PUSHBACK",
    "Outcome",
    "PreflightFailed",
    "RelaySettings",
    "ReportTooLarge",
    "SendProgress",
    "SendSummary",
    "TestCopyResult",
    "Verp",
    "WebhookResult",
    "change_issue_status",
    "build_test_message",
    "check_deliverability",
    "dns_lookup",
    "dns_record",
    "enqueue_issue",
    "fetch_mailbox",
    "fill_markers",
    "generate_ed25519_key",
    "handle_webhook",
    "generate_private_key",
    "issue_by_number",
    "key_bits",
    "next_retry_at",
    "recipient_count",
    "process_events",
    "process_report",
    "purge_receipts",
    "send_pending",
    "send_test_copies",
    "send_transactional",
    "sender",
    "signer_from_config",
    "start_issue",
    "status_counts",
    "stop_sending",
    "unsubscribe_url_of_test_copy",
    "waiting_for_hourly_cap",
    "webhooks_bp",
    "write_private_key",
]
