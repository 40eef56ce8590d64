"""E-mail addresses: validation and normalization (email-validator), masking, keyed hashes.

Policy (on purpose stricter than RFC 5322, which allows much that no signup form should):
refused are display names (``Name <a@b>``), quoted local parts, bracketed IP domains,
domains without a dot, CR/LF and other control characters, and local parts over 64
characters (RFC 5321 §4.5.3.1.1); internationalized local parts are refused unless
``MAILER_ALLOW_SMTPUTF8`` is set (RFC 6531 needs a relay that speaks SMTPUTF8). Blanks
around the address are trimmed (phone keyboards add one after autocompletion).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from functools import cache
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email

if TYPE_CHECKING:
    import dns.resolver

# dnspython (about 0.1 s to import) is imported by the functions that ask DNS, so that
# starting a command or a web worker does not pay for it (email-validator does the same).

from .errors import InvalidAddress

log = logging.getLogger(__name__)

# RFC 5321 §4.5.3.1.3 caps a path at 256 octets (254 for the address); the raw input may
# carry some surrounding blanks, so refuse only what is clearly not one address.
MAX_INPUT_LENGTH = 320
EMPTY_MESSAGE = "Please enter your email address."
TOO_LONG_MESSAGE = "That is too long to be an email address."
CONTROL_MESSAGE = "An email address cannot contain line breaks or other control characters."
NOT_TEXT_MESSAGE = 'The email must be a string, like "name@example.com".'
ENCODING_MESSAGE = (
    "The address contains characters that could not be read (the form was not sent as "
    "UTF-8). Please type it again."
)
DISPLAY_NAME_MESSAGE = (
    "Please enter the address only, like name@example.com, without a name or angle brackets."
)


def normalize_email(
    address: str,
    *,
    check_deliverability: bool,
    allow_smtputf8: bool,
    dns_timeout: float,
    resolver: dns.resolver.Resolver | None = None,
) -> str:
    """Validate ``address`` and return the form we store and compare.

    The result is email-validator's normalized address, in its ASCII form (IDNA domain) when
    it has one, so that every relay can deliver it; compare it case-insensitively (lower()).

    Args:
        address: what the person typed (surrounding blanks are ignored).
        check_deliverability: look the domain up in DNS (MX, then A/AAAA; RFC 5321 §5).
        allow_smtputf8: accept internationalized local parts (RFC 6531).
        dns_timeout: seconds the DNS check may take in total; past it, and on any DNS
            failure, the address is accepted as "deliverability unknown".
        resolver: a dnspython resolver to use instead of the system's (tests).

    Raises:
        InvalidAddress: with a message fit to show next to the form field.
    """
    text = _precheck(address)
    try:
        validated = validate_email(
            text,
            allow_smtputf8=allow_smtputf8,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,  # RFC 5321 §4.5.3.1.1: at most 64 octets before the @-sign
            check_deliverability=False,
        )
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    if check_deliverability:
        _check_deliverability(validated.ascii_domain, validated.domain, dns_timeout, resolver)
    return validated.ascii_email or validated.normalized


def _precheck(address: object) -> str:
    if not isinstance(address, str):
        # JSON numbers, lists, null and booleans (a missing field arrives as ""): say so
        # rather than "enter your address".
        raise InvalidAddress(NOT_TEXT_MESSAGE)
    if len(address) > MAX_INPUT_LENGTH:
        raise InvalidAddress(TOO_LONG_MESSAGE)
    text = address.strip(" \t")
    if not text:
        raise InvalidAddress(EMPTY_MESSAGE)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidAddress(CONTROL_MESSAGE)
    if "\ufffd" in text:
        # Werkzeug puts U+FFFD where a multipart field had bytes that are not UTF-8.
        raise InvalidAddress(ENCODING_MESSAGE)
    if "<" in text or ">" in text:
        raise InvalidAddress(DISPLAY_NAME_MESSAGE)
    return text


@cache
def _deadline_resolver_class():
    import dns.exception  # noqa: PLC0415 - see the top of the module
    import dns.resolver  # noqa: PLC0415

    class DeadlineResolver(dns.resolver.Resolver):
        """A resolver whose queries together end by one deadline (email-validator makes
        several)."""

        def __init__(self, deadline: float, base: dns.resolver.Resolver | None):
            super().__init__(configure=base is None)
            if base is not None:
                self.nameservers = base.nameservers
                self.port = base.port
            self.deadline = deadline

        def resolve(self, *args, **kwargs):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise dns.exception.Timeout
            kwargs["lifetime"] = remaining
            return super().resolve(*args, **kwargs)

    return DeadlineResolver


def _check_deliverability(
    ascii_domain: str, domain: str, timeout: float, base: dns.resolver.Resolver | None
) -> None:
    import dns.exception  # noqa: PLC0415 - see the top of the module
    from email_validator.deliverability import validate_email_deliverability  # noqa: PLC0415

    try:
        resolver = _deadline_resolver_class()(time.monotonic() + timeout, base)
        validate_email_deliverability(ascii_domain, domain, dns_resolver=resolver)
    except EmailUndeliverableError as exc:
        if _is_lookup_failure(exc):
            log.info("DNS check of %s failed (%s); accepting the address", ascii_domain, exc)
            return
        raise InvalidAddress(str(exc)) from exc
    except (dns.exception.DNSException, OSError) as exc:
        # No usable resolver configuration, or the network is down: deliverability unknown.
        log.info("DNS check of %s not possible (%s); accepting the address", ascii_domain, exc)


def _is_lookup_failure(exc: EmailUndeliverableError) -> bool:
    # A definite answer (NXDOMAIN, no MX/A/AAAA, null MX, "v=spf1 -all") has no cause or a
    # NXDOMAIN/NoAnswer cause; anything else is a failure to look up, not a "no".
    import dns.resolver  # noqa: PLC0415 - see the top of the module

    cause = exc.__cause__
    return cause is not None and not isinstance(
        cause, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer
    )


def resolver_for(nameservers: str) -> dns.resolver.Resolver | None:
    """Return a resolver for ``MAILER_DNS_NAMESERVERS`` ("IP" or "IP#PORT", comma-separated,
    the format ``deliverability check`` reads too), or None (the system's) when it is empty.

    Raises:
        ValueError: a port that is not a number.
    """
    entries = [part.strip() for part in nameservers.split(",") if part.strip()]
    if not entries:
        return None
    import dns.nameserver  # noqa: PLC0415 - see the top of the module
    import dns.resolver  # noqa: PLC0415

    servers = []
    for entry in entries:
        address, _, port = entry.partition("#")
        if port and not port.isdigit():
            raise ValueError(f"MAILER_DNS_NAMESERVERS: bad port in {entry!r}")
        servers.append(dns.nameserver.Do53Nameserver(address, int(port or 53)))
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = servers
    return resolver


def printable(text: str) -> str:
    """Return ``text`` without control characters (C0, DEL, C1), to echo it back in a form."""
    return "".join(ch for ch in text if ord(ch) >= 32 and not 127 <= ord(ch) < 160)


def mask_email(address: str) -> str:
    """Return ``address`` with most of it hidden, e.g. ``t***@e***.com``, for public pages."""
    local, _, domain = address.rpartition("@")
    labels = domain.split(".")
    first = labels[0][:1] + "***" if labels[0] else ""
    masked_domain = ".".join([first, *labels[1:]]) if len(labels) > 1 else first
    return f"{local[:1]}***@{masked_domain}"


def email_hash(secret_key: str, address: str) -> str:
    """Return the HMAC-SHA256 (hex) of the lower-cased normalized ``address``.

    The key is derived from ``secret_key`` (the app's SECRET_KEY) for this purpose only, so
    the suppression list holds no address and cannot be reversed without the key.
    """
    key = hmac.new(secret_key.encode(), b"mailer.subscriptions.suppression.v1", "sha256").digest()
    return hmac.new(key, address.lower().encode(), hashlib.sha256).hexdigest()
