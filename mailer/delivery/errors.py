"""Domain errors of the delivery engine (never HTTP errors: views and the CLI translate them)."""


class DeliveryError(Exception):
    """Base class of the delivery engine's errors."""


class InvalidTransition(DeliveryError, ValueError):
    """An issue status change that its current status does not allow (see ``states``)."""


class NothingToSend(DeliveryError):
    """No issue matches a send request (wrong number, or none is draft/sending/paused)."""


class PreflightFailed(DeliveryError):
    """A draft was not started: its preflight check (``digest.preflight``) reports errors.

    Attributes:
        number: the issue's number.
        errors: the error findings (``preflight.Finding``), in the order the check gave them.
    """

    def __init__(self, number: int, errors: list):
        super().__init__(
            f"issue #{number} was not sent: the preflight check found errors: "
            + "; ".join(f"[{f.code}] {f.message}" for f in errors)
        )
        self.number = number
        self.errors = errors


class RelayError(DeliveryError, ConnectionError):
    """The relay could not take a message: connection refused, dropped or timed out, a 421
    "service closing", or the envelope sender refused.

    The message's fate is unknown or "not accepted": the caller defers it and counts one
    consecutive relay error against the issue. It subclasses ConnectionError (an OSError), so
    callers that guard one-off sends with ``except OSError`` catch it too.

    Attributes:
        code: the SMTP reply code when the relay gave one (e.g. 421), else None.
        text: the reply text or a description of the network failure.
    """

    def __init__(self, code: int | None, text: str):
        super().__init__(f"{code} {text}" if code is not None else text)
        self.code = code
        self.text = text


class RecipientNotSupported(DeliveryError):
    """The recipient address needs an extension the relay lacks (SMTPUTF8, RFC 6531 §3.4)."""


class Unverified(DeliveryError):
    """A bounce webhook request that does not prove its origin; nothing was changed.

    ``challenge``: credentials were missing or wrong (HTTP basic auth: answer 401 with a
    challenge); otherwise a signature, token or timestamp failed (403).
    """

    def __init__(self, reason: str, challenge: bool = False):
        super().__init__(reason)
        self.challenge = challenge


class BadPayload(DeliveryError, ValueError):
    """A verified bounce webhook request whose body is not what its provider sends."""
