"""Database models. No I/O and no commits here: services own their transactions.

Each table has at most one status column; the allowed transitions of each status live in one
function of the package that owns the table (``delivery.issues.change_issue_status``,
``delivery.ledger.delivery_transition``, ``delivery.transactional.mail_transition``,
``subscriptions.records``).
"""

from .admin import AdminUser, JobEvent, LoginFailure
from .base import MAX_DATABASE_ID, MAX_ISSUE_NUMBER, BigId, Section, UTCDateTime, utc_now
from .content import Feed, Item
from .delivery import Bounce, BounceReceipt, Delivery, DeliveryStatus, TransactionalMail
from .issues import Issue, IssueKind, IssueStatus, IssueVariant
from .subscribers import ConsentEvent, SignupRequest, Subscriber, SubscriberStatus, Suppression

__all__ = [
    "MAX_DATABASE_ID",
    "MAX_ISSUE_NUMBER",
    "AdminUser",
    "BigId",
    "Bounce",
    "BounceReceipt",
    "ConsentEvent",
    "Delivery",
    "DeliveryStatus",
    "Feed",
    "Issue",
    "IssueKind",
    "IssueStatus",
    "IssueVariant",
    "Item",
    "JobEvent",
    "LoginFailure",
    "Section",
    "SignupRequest",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "TransactionalMail",
    "UTCDateTime",
    "utc_now",
]
