"""Domain errors of the subscriptions room; views and commands turn them into pages/messages."""


class SubscriptionError(Exception):
    """Base class: something the caller asked for cannot be done; ``str(exc)`` says why."""


class InvalidAddress(SubscriptionError, ValueError):
    """The typed address is not one we accept; the message is safe to show to the visitor."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Suppressed(SubscriptionError):
    """The address must not be added by an operator (erased, unsubscribed or bounced before)."""


class InvalidToken(SubscriptionError):
    """A confirm/unsubscribe token was forged, altered, truncated or made for another purpose."""


class ExpiredToken(SubscriptionError):
    """A correctly signed confirm token that is older than ``MAILER_CONFIRM_MAX_AGE``.

    Attributes:
        subscriber_id: the subscriber the token was made for (the signature is valid).
        version: the subscription version it was made for.
    """

    def __init__(self, subscriber_id: int, version: int):
        super().__init__("the link has expired")
        self.subscriber_id = subscriber_id
        self.version = version


class InvalidTransition(SubscriptionError):
    """A status change that the subscriber's current status does not allow."""


class UnknownSubscriber(SubscriptionError):
    """A correctly signed token for a subscriber that no longer exists (erased or purged)."""


class StaleToken(SubscriptionError):
    """A correctly signed token from an earlier subscription (``Subscriber.version`` moved on)."""


class ImportFileError(SubscriptionError):
    """A CSV file that cannot be imported at all (no ``email`` column, not text)."""


class InvalidSections(SubscriptionError, ValueError):
    """The chosen topics are not ``news`` and/or ``openings``; the message is safe to show."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnknownChoice(SubscriptionError):
    """A preference-page POST with an action or reason the page does not offer."""
