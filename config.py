"""Configuration: every setting comes from the environment, with a documented default.

The README's "Configuration" table lists each variable; keep the two in step.
``create_app`` picks :class:`Config` unless it is given a class or a mapping (tests pass a
mapping of overrides on top of :class:`TestConfig`).
"""

import importlib.util
import ipaddress
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from itertools import groupby
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many
from limits.storage import SCHEMES as LIMITS_STORAGE_SCHEMES
from limits.storage import Storage as LimitsStorage
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("MAILER_INSTANCE_DIR", BASE_DIR / "instance"))
DEFAULT_SECRET_KEY = "dev-insecure-change-me"
# Flask's docs make keys with secrets.token_hex() (64 characters); 32 URL-safe characters
# still carry 192 bits, out of reach of guessing the key from a signed cookie or link.
MIN_SECRET_KEY_LENGTH = 32
MAKE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
DATABASE_URL_FORMS = (
    "sqlite:////absolute/path/mailer.sqlite3 or postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME"
)
# Hosts a plain-http MAILER_BASE_URL may name in production: links to them reach no one else.
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class ConfigError(ValueError):
    """A setting the service cannot run with; the message names the setting and the fix."""


def env_str(name: str, default: str) -> str:
    """Return the environment variable ``name``, or ``default`` when unset or empty."""
    value = os.environ.get(name, "")
    return value if value != "" else default


def _in_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    # A zero or negative interval, timeout or pool size makes a loop spin or a socket
    # non-blocking far from here; refuse it where the variable is read, naming it.
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``name`` as an int within [minimum, maximum].

    Raises:
        ConfigError: the value is not a whole number or is out of range; the message names it.
    """
    raw = env_str(name, str(default))
    # Plain ASCII digits with an optional sign (blanks around them ignored, as int() does):
    # int() would also take "５" (full-width) and "1_000", which no operator means.
    if not _WHOLE_NUMBER.fullmatch(raw.strip()):
        raise ConfigError(f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    _in_range(name, value, minimum, maximum)
    return value


def env_float(
    name: str, default: float, minimum: float | None = None, maximum: float | None = None
) -> float:
    """Return ``name`` as a finite float within [minimum, maximum].

    Raises:
        ConfigError: the value is not a number, is not finite (nan, inf, -inf: ``float``
            reads them, and no range check refuses nan) or is out of range; the message
            names it.
    """
    raw = env_str(name, str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value):
        # MAILER_SEND_RATE=inf would send unlimited, a timeout of nan never times out.
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    _in_range(name, value, minimum, maximum)
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return ``name`` as a bool: 1/true/yes/on are true, 0/false/no/off are false.

    Raises:
        ConfigError: any other value; the message names the variable.
    """
    raw = env_str(name, "1" if default else "0").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


def check_timezone(name: str) -> str:
    """Return ``name`` (MAILER_TIMEZONE) when it is a time zone of the IANA database.

    Raises:
        ConfigError: zoneinfo knows no such zone (e.g. "Mars/Olympus", "JST+9", "").
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: not a valid key ("", "../x", "/etc/localtime"); OSError: a zone file
        # that cannot be read.
        raise ConfigError(
            f"MAILER_TIMEZONE: unknown time zone {name!r} (use an IANA name such as Asia/Tokyo)"
        ) from None
    return name


def database_url(value: str) -> str:
    """Return the DATABASE_URL ``value`` in the form the engine is made from.

    ``postgres://`` and ``postgresql://`` (the form hosting providers hand out) become
    ``postgresql+psycopg://``: psycopg 3 is the driver installed, while SQLAlchemy would pick
    psycopg2 for ``postgresql://`` and has no dialect named ``postgres``.

    Raises:
        ConfigError: ``value`` is not a URL, or names a database other than SQLite and
            PostgreSQL (the two the service is built and tested on); the message shows no
            password.
    """
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"DATABASE_URL: {without_password(value)!r} is not a database URL "
            f"(use {DATABASE_URL_FORMS})"
        ) from None
    if url.drivername in {"postgres", "postgresql"}:
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(
            f"DATABASE_URL: unsupported database {url.get_backend_name()!r} in "
            f"{url.render_as_string(hide_password=True)!r} (use {DATABASE_URL_FORMS})"
        )
    return value


def without_password(value: str) -> str:
    """Return URL ``value`` for an error message: its user info, if any, shown as ``***``."""
    # A URL that cannot be parsed may still hold a password: show nothing before its "@".
    if "@" not in value:
        return value
    scheme, separator, _rest = value.partition("://")
    return f"{scheme}{separator}***@{value.rsplit('@', 1)[1]}"


def check_secret_key(key: str) -> None:
    """Refuse a production SECRET_KEY: the development default, blank, or under 32 characters.

    Leading and trailing whitespace is not counted: it is guessable padding (or a newline
    left by ``$(cat keyfile)``-style quoting), not secret. The key itself is used as given, so
    that links signed with it keep working.

    Raises:
        ConfigError: the key is the default, only whitespace, or shorter than
            :data:`MIN_SECRET_KEY_LENGTH` once stripped; the message says how to make a good one.
    """
    if key == DEFAULT_SECRET_KEY:
        raise ConfigError(
            "SECRET_KEY is the insecure development default. Set the SECRET_KEY environment "
            f"variable to a long random string ({MAKE_SECRET_KEY}), or set FLASK_DEBUG=1 for "
            "local development."
        )
    length = len(key.strip())
    if length == 0:
        raise ConfigError(
            f"SECRET_KEY is blank (only whitespace). Make one with: {MAKE_SECRET_KEY}"
        )
    if length < MIN_SECRET_KEY_LENGTH:
        padding = " (not counting the whitespace around it)" if length != len(key) else ""
        raise ConfigError(
            f"SECRET_KEY has {length} characters{padding}; production needs at least "
            f"{MIN_SECRET_KEY_LENGTH}. Make one with: {MAKE_SECRET_KEY}"
        )


# A key made by secrets.token_urlsafe or token_hex has at least 16 distinct characters and
# about 4 bits or more of entropy per character; a typed phrase or a padded word has far less.
MIN_SECRET_KEY_DISTINCT = 10
MIN_SECRET_KEY_BITS = 100
MAX_SECRET_KEY_RUN = 5


def _estimated_bits(key: str) -> float:
    """The key's length times its characters' Shannon entropy (bits): a rough upper bound."""
    counts = Counter(key)
    return -sum(n * math.log2(n / len(key)) for n in counts.values())


def _longest_run(key: str) -> int:
    return max((len(list(group)) for _char, group in groupby(key)), default=0)


def check_secret_key_strength(key: str) -> None:
    """Refuse a long but guessable production SECRET_KEY (run after :func:`check_secret_key`).

    Refused: fewer than 10 distinct characters ("kkkk...", "abab..."), the same character
    more than 5 times in a row (a word padded to length: "password!!!!!!!!..."), or less
    than about 100 bits by the characters' Shannon entropy (a word repeated). A key from
    ``secrets.token_urlsafe(48)`` or ``secrets.token_hex(32)`` passes all three.

    Raises:
        ConfigError: naming SECRET_KEY and how to make a good one.
    """
    stripped = key.strip()
    if (
        len(set(stripped)) < MIN_SECRET_KEY_DISTINCT
        or _longest_run(stripped) > MAX_SECRET_KEY_RUN
        or _estimated_bits(stripped) < MIN_SECRET_KEY_BITS
    ):
        raise ConfigError(
            "SECRET_KEY is long but guessable (too few different characters, a character "
            "repeated to pad it, or a repeated word); anyone who guesses it can forge admin "
            f"sessions and unsubscribe links. Make a random one with: {MAKE_SECRET_KEY}"
        )


def check_debug_setting(debug: bool, base_url: str) -> None:
    """Refuse FLASK_DEBUG with an https MAILER_BASE_URL whose host is not a loopback one.

    That is a production configuration with the debugger on: the public development
    SECRET_KEY is accepted and /dev/mailbox shows every mail sent.

    Raises:
        ConfigError: naming FLASK_DEBUG and MAILER_BASE_URL.
    """
    parts = urlsplit(base_url)
    if debug and parts.scheme == "https" and not _is_loopback(parts.hostname or ""):
        raise ConfigError(
            f"FLASK_DEBUG is on while MAILER_BASE_URL is {base_url!r}, a public https site: "
            "unset FLASK_DEBUG in production (it turns on the debugger, accepts the development "
            "SECRET_KEY and opens /dev/mailbox)"
        )


def check_smtp_security(config: Mapping) -> None:
    """Refuse SMTP AUTH without TLS (MAILER_SMTP_SECURITY=none) to a relay not on loopback.

    The password would cross the network in clear (AUTH PLAIN/LOGIN is base64 only).

    Raises:
        ConfigError: naming MAILER_SMTP_SECURITY.
    """
    security = str(config.get("MAILER_SMTP_SECURITY", "none")).lower()
    host = str(config.get("MAILER_SMTP_HOST", ""))
    if config.get("MAILER_SMTP_USERNAME") and security == "none" and not _is_loopback(host):
        raise ConfigError(
            f"MAILER_SMTP_SECURITY is none while MAILER_SMTP_USERNAME is set for the relay "
            f"{host}: the password would be sent in clear; use starttls (port 587) or ssl (465)"
        )


def check_rate_limits(config: Mapping) -> None:
    """Refuse a rate-limit setting (``MAILER_*_RATE_LIMIT``) that Flask-Limiter cannot read.

    Flask-Limiter logs a limit string it cannot parse and then applies no limit at all, so a
    typo in MAILER_LOGIN_RATE_LIMIT would switch off the brute-force protection. The string
    is read here with ``limits.parse_many``, the parser Flask-Limiter itself uses: one or more
    ``AMOUNT/UNIT`` or ``AMOUNT per UNIT`` items joined by ``;``, ``,`` or ``|``.

    Args:
        config: the app config; every ``MAILER_..._RATE_LIMIT`` key in it is checked.

    Raises:
        ConfigError: a value does not parse; the message names the setting.
    """
    for name in sorted(config):
        if name.startswith("MAILER_") and name.endswith("_RATE_LIMIT"):
            value = config[name]
            try:
                parse_many(value)
            except (ValueError, TypeError):
                raise ConfigError(
                    f"{name}: {value!r} is not a rate limit (use AMOUNT/UNIT, several joined "
                    "by ';', e.g. '10/minute;100/day')"
                ) from None


def check_ratelimit_storage(uri: str) -> str:
    """Return RATELIMIT_STORAGE_URI ``uri`` when its scheme names a storage this install can use.

    The schemes are those of the registry ``limits.storage.storage_from_string`` looks them
    up in (memory, redis, rediss, redis+sentinel, redis+cluster, memcached, mongodb, ...),
    without the ``async+`` ones, which Flask-Limiter cannot use; a scheme is usable when the
    client library its storage declares (``DEPENDENCIES``) can be imported. Refusing a missing
    library here, before Flask-Limiter builds the storage, also spares the operator a second
    "Exception ignored in ...__del__" line from the half-built storage object. Nothing is
    connected to and nothing is imported.

    Raises:
        ConfigError: an unknown scheme, or a known one whose library is not installed; the
            message shows no password and lists the usable schemes.
    """
    scheme = urlsplit(uri).scheme
    needs = {
        name: _missing_storage_modules(name, kind)
        for name, kind in LIMITS_STORAGE_SCHEMES.items()
        if issubclass(kind, LimitsStorage)
    }
    usable = ", ".join(sorted(name for name, missing in needs.items() if not missing))
    if scheme not in needs:
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI: unknown storage scheme {scheme!r} in "
            f"{without_password(uri)!r} (use memory:// or redis://HOST:6379/0; usable schemes: "
            f"{usable})"
        )
    if needs[scheme]:
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI: storage scheme {scheme!r} in {without_password(uri)!r} "
            f"needs the Python package {' and '.join(needs[scheme])}, which is not installed "
            f"(install it, or use one of the usable schemes: {usable})"
        )
    return uri


def _missing_storage_modules(scheme: str, kind: type) -> list[str]:
    # A list names modules all needed (pymongo); a mapping names alternatives of which the
    # storage uses the one its scheme starts with (RedisStorage: redis:// or valkey://).
    declared = kind.DEPENDENCIES
    if isinstance(declared, Mapping):
        declared = [name for name in declared if "." not in name and scheme.startswith(name)]
    # The top-level package only: find_spec of "a.b" imports "a" (and fails if it is absent).
    return [name for name in declared if importlib.util.find_spec(name.split(".")[0]) is None]


def check_base_url(url: str, production: bool) -> str:
    """Return MAILER_BASE_URL ``url`` when mail links can be made from it.

    Every link in a mail is this URL plus a path, so it must be an absolute http(s) URL with
    a host, and no query, fragment, space or angle bracket. In production (``production``:
    neither DEBUG nor TESTING) it must be https unless its host is a loopback one: one-click
    unsubscribe needs an https URL (RFC 8058 §3.1), the admin's session cookie is marked
    Secure only for https, and confirm/unsubscribe tokens would cross the network in clear.
    A loopback host (localhost, 127.0.0.0/8, ::1; the default, http://127.0.0.1:5000) stays
    allowed, so that a production-mode trial on one machine still starts.

    Raises:
        ConfigError: naming MAILER_BASE_URL and the form to use.
    """
    example = "https://newsletter.example.com"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(ch.isspace() or ch in '<>"' or not ch.isprintable() for ch in url)
    ):
        raise ConfigError(
            f"MAILER_BASE_URL must be an absolute http(s) URL such as {example} (no query or "
            f"fragment), got {url!r}"
        )
    if production and parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"MAILER_BASE_URL must be https in production, got {url!r}: one-click unsubscribe "
            "(RFC 8058) and secure admin sessions need it; plain http is accepted only for a "
            "loopback host (localhost, 127.0.0.1, ::1)"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return False


class Config:
    """Production defaults, read from the environment when the class is instantiated."""

    def __init__(self) -> None:
        debug = env_bool("FLASK_DEBUG", False)
        self.DEBUG = debug
        self.TESTING = False
        self.SECRET_KEY = env_str("SECRET_KEY", DEFAULT_SECRET_KEY)
        # Earlier keys, comma-separated: links signed with them keep working after a rotation.
        self.SECRET_KEY_FALLBACKS = [
            key.strip() for key in env_str("SECRET_KEY_FALLBACKS", "").split(",") if key.strip()
        ]
        self.SQLALCHEMY_DATABASE_URI = env_str(
            "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'mailer.sqlite3'}"
        )
        self.MAILER_INSTANCE_DIR = str(INSTANCE_DIR)
        self.MAILER_BASE_URL = env_str("MAILER_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
        # One name throughout: pages, mail headers and bodies, and From's display name
        # unless MAILER_FROM gives its own.
        self.MAILER_NAME = env_str("MAILER_NAME", "Japan Weekly")
        self.MAILER_FROM = env_str("MAILER_FROM", "newsletter@example.com")
        self.MAILER_LIST_ID = env_str("MAILER_LIST_ID", "")
        self.MAILER_POSTAL_ADDRESS = env_str(
            "MAILER_POSTAL_ADDRESS", "1-1 Example-cho, Chiyoda-ku, Tokyo 100-0001, Japan"
        )
        self.MAILER_UNSUBSCRIBE_MAILTO = env_str("MAILER_UNSUBSCRIBE_MAILTO", "")
        self.MAILER_LOGO_URL = env_str("MAILER_LOGO_URL", "")
        # Size (CSS px) the logo is shown at in the digest: explicit, so layouts don't jump.
        self.MAILER_LOGO_WIDTH = env_int("MAILER_LOGO_WIDTH", 160, minimum=1)
        self.MAILER_LOGO_HEIGHT = env_int("MAILER_LOGO_HEIGHT", 40, minimum=1)
        # SMTP relay
        self.MAILER_SMTP_HOST = env_str("MAILER_SMTP_HOST", "127.0.0.1")
        self.MAILER_SMTP_PORT = env_int("MAILER_SMTP_PORT", 8025, minimum=1, maximum=65535)
        self.MAILER_SMTP_SECURITY = env_str("MAILER_SMTP_SECURITY", "none")
        self.MAILER_SMTP_USERNAME = env_str("MAILER_SMTP_USERNAME", "")
        self.MAILER_SMTP_PASSWORD = env_str("MAILER_SMTP_PASSWORD", "")
        self.MAILER_SMTP_TIMEOUT = env_float("MAILER_SMTP_TIMEOUT", 30.0, minimum=0.1)
        # PEM file of the CA that signed the relay's certificate; empty: the system's CAs.
        self.MAILER_SMTP_CA_FILE = env_str("MAILER_SMTP_CA_FILE", "")
        self.MAILER_SMTP_CONNECTIONS = env_int("MAILER_SMTP_CONNECTIONS", 4, minimum=1)
        self.MAILER_SMTP_MESSAGES_PER_CONNECTION = env_int(
            "MAILER_SMTP_MESSAGES_PER_CONNECTION", 1000, minimum=1
        )
        self.MAILER_SENDER_PROCESSES = env_int(
            "MAILER_SENDER_PROCESSES", os.cpu_count() or 1, minimum=1
        )
        # With DKIM on and SQLite (one sender process: one writer), helper processes
        # personalise and sign the next messages so that every core signs; 0 signs in the
        # sender. PostgreSQL uses MAILER_SENDER_PROCESSES instead.
        self.MAILER_SIGNING_PROCESSES = env_int(
            "MAILER_SIGNING_PROCESSES", os.cpu_count() or 1, minimum=0
        )
        self.MAILER_SEND_RATE = env_float("MAILER_SEND_RATE", 0.0, minimum=0)
        self.MAILER_SEND_HOURLY_CAP = env_int("MAILER_SEND_HOURLY_CAP", 0, minimum=0)
        self.MAILER_BATCH_SIZE = env_int("MAILER_BATCH_SIZE", 500, minimum=1)
        self.MAILER_RETRY_FOR = env_int("MAILER_RETRY_FOR", 3 * 24 * 3600, minimum=0)
        self.MAILER_BOUNCE_LIMIT = env_int("MAILER_BOUNCE_LIMIT", 1, minimum=1)
        self.MAILER_SOFT_BOUNCE_LIMIT = env_int("MAILER_SOFT_BOUNCE_LIMIT", 5, minimum=1)
        self.MAILER_PAUSE_AFTER_ERRORS = env_int("MAILER_PAUSE_AFTER_ERRORS", 50, minimum=1)
        # Relay pushback: temporary refusals in a row that pause a send ("relay-pushback"),
        # and the first such pause in seconds (doubled for each further one, at most 1 h).
        self.MAILER_PUSHBACK_AFTER = env_int("MAILER_PUSHBACK_AFTER", 20, minimum=1)
        self.MAILER_PUSHBACK_PAUSE = env_int("MAILER_PUSHBACK_PAUSE", 15 * 60, minimum=1)
        # Bounces and complaints (mailer/delivery/bounces/). The envelope sender's base: set,
        # each message's MAIL FROM is bounces+TOKEN@domain (VERP); empty: MAIL FROM = From.
        self.MAILER_BOUNCE_ADDRESS = env_str("MAILER_BOUNCE_ADDRESS", "")
        # A mailbox that receives the reports: imaps://USER:PASSWORD@HOST:993/INBOX or
        # pop3s://USER:PASSWORD@HOST:995; empty: no polling. The folder processed messages
        # are moved to (IMAP only); empty: they are deleted.
        self.MAILER_BOUNCE_MAILBOX = env_str("MAILER_BOUNCE_MAILBOX", "")
        self.MAILER_BOUNCE_MAILBOX_DONE = env_str("MAILER_BOUNCE_MAILBOX_DONE", "")
        self.MAILER_BOUNCE_POLL_MINUTES = env_int("MAILER_BOUNCE_POLL_MINUTES", 10, minimum=1)
        # Provider webhooks (POST /webhooks/bounces/<provider>); empty: that provider refused.
        self.MAILER_MAILGUN_SIGNING_KEY = env_str("MAILER_MAILGUN_SIGNING_KEY", "")
        self.MAILER_WEBHOOK_USER = env_str("MAILER_WEBHOOK_USER", "")
        self.MAILER_WEBHOOK_PASSWORD = env_str("MAILER_WEBHOOK_PASSWORD", "")
        self.MAILER_SENDGRID_VERIFICATION_KEY = env_str("MAILER_SENDGRID_VERIFICATION_KEY", "")
        # SNS topics whose SES notifications are taken, comma-separated ARNs; empty: none.
        self.MAILER_SES_TOPIC_ARNS = env_str("MAILER_SES_TOPIC_ARNS", "")
        # DKIM
        self.MAILER_DKIM_DOMAIN = env_str("MAILER_DKIM_DOMAIN", "")
        self.MAILER_DKIM_SELECTOR = env_str("MAILER_DKIM_SELECTOR", "")
        self.MAILER_DKIM_PRIVATE_KEY = env_str("MAILER_DKIM_PRIVATE_KEY", "")
        # A second, Ed25519 signature (RFC 8463), off by default: both or neither, and only
        # beside the RSA settings above (receivers that do not know Ed25519 use the RSA one).
        self.MAILER_DKIM_ED25519_SELECTOR = env_str("MAILER_DKIM_ED25519_SELECTOR", "")
        self.MAILER_DKIM_ED25519_PRIVATE_KEY = env_str("MAILER_DKIM_ED25519_PRIVATE_KEY", "")
        # Digest and schedule
        self.MAILER_TIMEZONE = env_str("MAILER_TIMEZONE", "Asia/Tokyo")
        self.MAILER_DIGEST_DAY = env_str("MAILER_DIGEST_DAY", "monday")
        self.MAILER_DIGEST_TIME = env_str("MAILER_DIGEST_TIME", "08:00")
        self.MAILER_DIGEST_ITEMS_PER_SECTION = env_int(
            "MAILER_DIGEST_ITEMS_PER_SECTION", 10, minimum=1
        )
        self.MAILER_MISFIRE_GRACE = env_int("MAILER_MISFIRE_GRACE", 6 * 3600, minimum=1)
        # A weekly run with fewer new items sends nothing (and says why); `digest build
        # --force` builds with fewer, never with none.
        self.MAILER_MIN_ITEMS = env_int("MAILER_MIN_ITEMS", 1, minimum=1)
        # A new feed's first fetch keeps items published this many days before the feed was
        # added out of the digest (stored as backlog; an admin may include one by hand).
        self.MAILER_FEED_BACKLOG_DAYS = env_int("MAILER_FEED_BACKLOG_DAYS", 14, minimum=0)
        self.MAILER_FEED_REFRESH_MINUTES = env_int("MAILER_FEED_REFRESH_MINUTES", 60, minimum=1)
        self.MAILER_SENDER_INTERVAL = env_int("MAILER_SENDER_INTERVAL", 5, minimum=1)
        self.MAILER_FEED_TIMEOUT = env_float("MAILER_FEED_TIMEOUT", 20.0, minimum=0.1)
        self.MAILER_FEED_MAX_BYTES = env_int(
            "MAILER_FEED_MAX_BYTES", 10 * 1024 * 1024, minimum=1024
        )
        # Fetch feeds from loopback, private, link-local and reserved addresses (a feed server
        # inside your own network); off: such feed URLs, and redirects to them, are refused.
        self.MAILER_FEED_ALLOW_PRIVATE = env_bool("MAILER_FEED_ALLOW_PRIVATE", False)
        self.MAILER_DEMO_FEED = env_bool("MAILER_DEMO_FEED", False)
        # Development server (`make run` = python -m mailer.devserver) only.
        self.MAILER_DEV_PORT = env_int("MAILER_DEV_PORT", 5000, minimum=1, maximum=65535)
        self.MAILER_DEV_SMTP_PORT = env_int("MAILER_DEV_SMTP_PORT", 8025, minimum=1, maximum=65535)
        self.MAILER_DEV_RELOAD = env_bool("MAILER_DEV_RELOAD", True)
        # Subscriptions and abuse protection
        self.MAILER_CHECK_DELIVERABILITY = env_bool("MAILER_CHECK_DELIVERABILITY", not debug)
        self.MAILER_DNS_TIMEOUT = env_float("MAILER_DNS_TIMEOUT", 3.0, minimum=0.1)
        # Resolvers for `deliverability check` and the signup's address check ("IP" or
        # "IP#PORT", comma-separated); empty: the system's (/etc/resolv.conf).
        self.MAILER_DNS_NAMESERVERS = env_str("MAILER_DNS_NAMESERVERS", "")
        self.MAILER_ALLOW_SMTPUTF8 = env_bool("MAILER_ALLOW_SMTPUTF8", False)
        self.MAILER_CONFIRM_MAX_AGE = env_int("MAILER_CONFIRM_MAX_AGE", 7 * 24 * 3600, minimum=60)
        self.MAILER_SIGNUP_RATE_LIMIT = env_str("MAILER_SIGNUP_RATE_LIMIT", "10/minute;100/day")
        self.MAILER_TOKEN_RATE_LIMIT = env_str("MAILER_TOKEN_RATE_LIMIT", "30/minute")
        # Failed admin sign-ins, counted in the database: per client IP (any account), and
        # per account (from any IP); see mailer/admin/throttle.py. The IP limit is the looser
        # one, so that a neighbour behind the same NAT cannot lock out every admin with a few
        # wrong passwords.
        self.MAILER_LOGIN_RATE_LIMIT = env_str("MAILER_LOGIN_RATE_LIMIT", "20/minute;200/day")
        self.MAILER_LOGIN_ACCOUNT_RATE_LIMIT = env_str(
            "MAILER_LOGIN_ACCOUNT_RATE_LIMIT", "5/minute;50/day"
        )
        # Admin test copies of an issue, per admin (each request may name up to 10 addresses).
        self.MAILER_TEST_SEND_RATE_LIMIT = env_str("MAILER_TEST_SEND_RATE_LIMIT", "20/hour")
        self.MAILER_CONFIRMATIONS_PER_HOUR = env_int(
            "MAILER_CONFIRMATIONS_PER_HOUR", 500, minimum=0
        )
        self.MAILER_PENDING_PURGE_DAYS = env_int("MAILER_PENDING_PURGE_DAYS", 30, minimum=1)
        # Largest request body, in bytes, of every route but the CSV import (413 above it,
        # before the body is read): a signup or sign-in form is well under 1 KiB.
        self.MAILER_MAX_REQUEST_BYTES = env_int("MAILER_MAX_REQUEST_BYTES", 64 * 1024, minimum=1024)
        # The admin's CSV import of subscribers: about 100,000 addresses in 5 MiB.
        self.MAILER_MAX_IMPORT_BYTES = env_int(
            "MAILER_MAX_IMPORT_BYTES", 5 * 1024 * 1024, minimum=1024
        )
        self.MAILER_PROXY_HOPS = env_int("MAILER_PROXY_HOPS", 0, minimum=0)
        self.RATELIMIT_STORAGE_URI = env_str("RATELIMIT_STORAGE_URI", "memory://")
        # When that storage (Redis) cannot be reached, each process counts in its own memory
        # until it answers again (Flask-Limiter checks now and then), so signups and sign-ins
        # go on, still limited, instead of failing with a 500.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_HEADERS_ENABLED = True
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        # Admin sessions end this many hours after sign-in (and at sign-out or a new password).
        self.MAILER_ADMIN_SESSION_HOURS = env_float(
            "MAILER_ADMIN_SESSION_HOURS", 12.0, minimum=0.01, maximum=24 * 31
        )
        self.PERMANENT_SESSION_LIFETIME = int(self.MAILER_ADMIN_SESSION_HOURS * 3600)
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.MAILER_BASE_URL.startswith("https://")
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_HTTPONLY = True


class TestConfig(Config):
    """Settings for the test suite: no DNS, no real relay, an in-memory rate-limit store."""

    def __init__(self) -> None:
        super().__init__()
        self.TESTING = True
        self.DEBUG = False
        self.SECRET_KEY = "test-secret-key"
        self.SQLALCHEMY_DATABASE_URI = "sqlite://"
        self.MAILER_CHECK_DELIVERABILITY = False
        self.MAILER_BASE_URL = "https://news.example.com"
        self.MAILER_FROM = "Japan Weekly <newsletter@example.com>"
        self.MAILER_SENDER_PROCESSES = 1
        self.MAILER_SIGNING_PROCESSES = 0  # tests that want helpers set it
        self.RATELIMIT_STORAGE_URI = "memory://"
        self.WTF_CSRF_ENABLED = True
