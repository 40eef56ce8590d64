"""Service functions of the subscriptions room: what views, commands, admin, delivery and the
scheduler call (delivery: for the confirmation mail it builds and the bounces it counts).
They take a session and raise domain errors (:mod:`.errors`), never HTTP ones.

The work lives in :mod:`.signup` (web signup), :mod:`.links` (confirm/unsubscribe links),
:mod:`.preferences` (the preference page), :mod:`.operators` (add, import),
:mod:`.lifecycle` (unsubscribe, erase, bounce, purge); this
module re-exports them so that callers need only ``subscriptions.service``.
"""

from .addresses import normalize_email
from .lifecycle import (
    erase_subscriber,
    mark_bounced,
    purge_stale_pending,
    record_complaint,
    unsubscribe_subscriber,
)
from .limits import CONFIRM_KIND, WELCOME_KIND
from .links import (
    ALREADY,
    DONE,
    ERASED,
    EXPIRED,
    GONE,
    LEFT,
    LIMITED,
    READY,
    RESENT,
    TokenPage,
    confirm_by_token,
    erase_by_token,
    inspect_confirm_token,
    inspect_unsubscribe_token,
    unsubscribe_by_token,
    unsubscribe_token_verifies,
)
from .mailing import humanize_duration, render_confirmation, render_welcome
from .operators import ImportReport, add_subscriber, import_csv
from .preferences import REASONS, PreferencesPage, change_preferences, inspect_preferences
from .records import PENDING, awaiting_reconfirmation
from .signup import SignupResult, Visitor, process_signup_requests, request_subscription

__all__ = [
    "ALREADY",
    "CONFIRM_KIND",
    "WELCOME_KIND",
    "DONE",
    "ERASED",
    "EXPIRED",
    "GONE",
    "LEFT",
    "LIMITED",
    "PENDING",
    "REASONS",
    "READY",
    "RESENT",
    "ImportReport",
    "PreferencesPage",
    "SignupResult",
    "TokenPage",
    "Visitor",
    "add_subscriber",
    "awaiting_reconfirmation",
    "change_preferences",
    "confirm_by_token",
    "erase_by_token",
    "erase_subscriber",
    "humanize_duration",
    "import_csv",
    "inspect_confirm_token",
    "inspect_preferences",
    "inspect_unsubscribe_token",
    "mark_bounced",
    "normalize_email",
    "process_signup_requests",
    "purge_stale_pending",
    "record_complaint",
    "render_confirmation",
    "render_welcome",
    "request_subscription",
    "unsubscribe_by_token",
    "unsubscribe_subscriber",
    "unsubscribe_token_verifies",
]
