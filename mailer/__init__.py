"""The newsletter service: ``create_app`` assembles it and reads like a table of contents."""

from collections.abc import Callable, Mapping
from pathlib import Path

from flask import Flask
from limits.errors import ConfigurationError as LimitsConfigurationError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from config import (
    BASE_DIR,
    DATABASE_URL_FORMS,
    Config,
    ConfigError,
    TestConfig,
    check_base_url,
    check_debug_setting,
    check_rate_limits,
    check_ratelimit_storage,
    check_secret_key,
    check_secret_key_strength,
    check_smtp_security,
    check_timezone,
    database_url,
    without_password,
)

from . import models  # noqa: F401 - registers the tables on db.metadata
from .errors import register_error_pages
from .extensions import csrf, db, limiter, login_manager, migrate
from .models import MAX_DATABASE_ID, MAX_ISSUE_NUMBER
from .request_limits import init_request_limits
from .security_headers import init_security_headers


def create_app(config: type | Mapping | object | None = None) -> Flask:
    """Create and configure the Flask app.

    Args:
        config: None for :class:`config.Config` (the environment); a config class or object;
            or a mapping of overrides applied on top of :class:`config.TestConfig`.

    Returns:
        The configured app. Nothing is started: no scheduler, no sender, no network.

    Raises:
        config.ConfigError: a setting the service cannot run with, the message naming it: an
            environment variable that does not parse (or a float that is nan or infinite), an
            unknown MAILER_TIMEZONE, a DATABASE_URL that is not a SQLite or PostgreSQL URL or
            whose driver is missing, a rate limit Flask-Limiter cannot read, a
            RATELIMIT_STORAGE_URI of no known storage or of one whose library is not
            installed, an unknown MAILER_SMTP_SECURITY, a MAILER_DIGEST_DAY/_TIME the schedule
            cannot use, a MAILER_FROM that is not one address, a MAILER_BOUNCE_ADDRESS that
            is not a plain address without '+', a MAILER_BOUNCE_MAILBOX that is not an
            imaps/pop3s URL (plain imap/pop3 for loopback only), a MAILER_BASE_URL that is
            not an absolute http(s) URL, MAILER_DKIM_* settings of which only some are set or
            whose key file cannot be read or holds no RSA key of at least 1024 bits, or in
            production (not DEBUG, not TESTING) a SECRET_KEY that is the development default,
            blank, shorter than 32 characters (whitespace around it not counted) or long but
            guessable, or a plain-http MAILER_BASE_URL of a host other than a loopback one;
            FLASK_DEBUG with an https MAILER_BASE_URL of a host other than a loopback one;
            SMTP AUTH with MAILER_SMTP_SECURITY=none to a relay not on loopback. Nothing is
            connected to at this point (the DKIM key file is read).
    """
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=str(Path((app_config := _config_object(config)).MAILER_INSTANCE_DIR)),
    )
    app.config.from_object(app_config)
    _check_settings(app)
    _init_extensions(app)
    _register_url_converters(app)
    _register_blueprints(app)
    register_error_pages(app)
    init_security_headers(app)
    _register_commands(app)
    return app


def _config_object(config: type | Mapping | object | None) -> object:
    if config is None:
        return Config()
    if isinstance(config, type):
        return config()
    if isinstance(config, Mapping):
        base = TestConfig()
        for key, value in config.items():
            setattr(base, key, value)
        return base
    return config


def _check_settings(app: Flask) -> None:
    # Here rather than in Config, so that a config class or a mapping of overrides is checked
    # too; a bad value stops the start with one line instead of failing a request or a job.
    from .delivery import MailboxSettings, RelaySettings, Verp, sender, signer_from_config
    from .digest.calendar import weekly_trigger

    config = app.config
    production = not (app.debug or app.testing)
    if production:
        check_secret_key(config["SECRET_KEY"])
        check_secret_key_strength(config["SECRET_KEY"])
    if not app.testing:
        check_debug_setting(app.debug, config["MAILER_BASE_URL"])
    check_smtp_security(config)
    check_timezone(config["MAILER_TIMEZONE"])
    config["SQLALCHEMY_DATABASE_URI"] = database_url(config["SQLALCHEMY_DATABASE_URI"])
    check_base_url(config["MAILER_BASE_URL"], production=production)
    check_rate_limits(config)
    check_ratelimit_storage(config["RATELIMIT_STORAGE_URI"])
    # The parsers the mail and the schedule use, run once now rather than first in the
    # worker (which would log the same traceback every few seconds); each names its setting.
    _refuse_value_error(sender, config)  # MAILER_FROM
    _refuse_value_error(RelaySettings.from_config, config)  # MAILER_SMTP_SECURITY
    _refuse_value_error(Verp, config)  # MAILER_BOUNCE_ADDRESS
    _refuse_value_error(MailboxSettings.from_config, config)  # MAILER_BOUNCE_MAILBOX
    _refuse_value_error(weekly_trigger, config)  # MAILER_DIGEST_DAY, MAILER_DIGEST_TIME
    # MAILER_DKIM_*: all three or none, and a readable RSA key; else every mail would fail.
    _refuse_value_error(signer_from_config, config)


def _refuse_value_error(parse: Callable[[Mapping], object], config: Mapping) -> None:
    try:
        parse(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _sqlite_folder(app: Flask, uri: str) -> None:
    # The instance folder is ours to make (a fresh checkout has none). Any other missing
    # folder is most likely a typo in DATABASE_URL: making it would start an empty database
    # in the wrong place, and `db upgrade` would then fill that one.
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///:memory:"):
        return
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    folder = (Path(app.instance_path) / path).parent  # relative: to the instance folder
    if folder.is_dir():
        return
    if folder.resolve() != Path(app.instance_path).resolve():
        raise ConfigError(
            f"DATABASE_URL: the folder {folder} does not exist; create it or correct the path"
        )
    folder.mkdir(parents=True)


def _init_extensions(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    _sqlite_folder(app, uri)
    try:
        db.init_app(app)  # creates the engine, which imports the URL's driver
    except (NoSuchModuleError, ImportError) as exc:
        driver = make_url(uri).drivername
        raise ConfigError(
            f"DATABASE_URL: cannot load the driver {driver!r} ({exc}); use {DATABASE_URL_FORMS}"
        ) from exc
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    init_request_limits(app)  # before the CSRF check, which reads the body
    csrf.init_app(app)
    # Registered before the limiter on purpose: Flask runs after_request functions in the
    # reverse order of registration, so this one sees the headers the limiter adds.
    app.after_request(_retry_after_only_when_meaningful)
    try:
        limiter.init_app(app)  # builds the rate-limit storage's client; connects to nothing
    except (LimitsConfigurationError, ValueError) as exc:
        # A known scheme whose library is missing (memcached, mongodb), or a malformed URI.
        shown = without_password(app.config["RATELIMIT_STORAGE_URI"])
        raise ConfigError(f"RATELIMIT_STORAGE_URI: {shown!r}: {exc}") from None
    login_manager.init_app(app)
    if app.config.get("MAILER_PROXY_HOPS", 0) > 0:
        hops = app.config["MAILER_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


# The answers Retry-After is sent with: 429 (RFC 6585 §4) and 503 (RFC 9110 §10.2.3). On a
# 3xx it asks the browser to wait before following the redirect; on a 2xx it means nothing.
RETRY_AFTER_STATUSES = frozenset({429, 503})


def _retry_after_only_when_meaningful(response):
    # Flask-Limiter (RATELIMIT_HEADERS_ENABLED) puts Retry-After on every answer of a limited
    # route, a 200 included; its X-RateLimit-* counters stay, Retry-After goes elsewhere.
    if response.status_code not in RETRY_AFTER_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers go on while one writer commits; the busy timeout makes a second writer
    # wait for the lock instead of failing at once with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class DatabaseIntConverter(IntegerConverter):
    """``<int:...>`` in every route: a number within ``limit`` (the BIGINT range of ids).

    A number outside it cannot name a row; it does not match the route, so it answers 404
    like any unknown id, before the view runs. ``<int(max=N):...>`` (Werkzeug's arguments)
    may narrow the range, never widen it. Only ASCII digits match: Werkzeug's ``\\d+`` (a
    ``str`` pattern) also matches other Unicode digits, and ``int()`` reads them, so
    /archive/\\uff11 (a full-width 1) would show issue 1 under a second URL.
    """

    limit = MAX_DATABASE_ID
    regex = r"[0-9]+"  # Werkzeug's signed_regex puts "-?" before it

    def __init__(self, url_map, fixed_digits=0, min=None, max=None, signed=False) -> None:
        # The argument names are Werkzeug's: rules pass them by name, <int(max=9):n>.
        lowest, highest = -self.limit - 1, self.limit
        min = lowest if min is None or min < lowest else min
        max = highest if max is None or max > highest else max
        super().__init__(url_map, fixed_digits, min, max, signed)


class IssueNumberConverter(DatabaseIntConverter):
    """``<issue_number:...>``: an issue number, within ``MAX_ISSUE_NUMBER`` (INTEGER)."""

    limit = MAX_ISSUE_NUMBER


def _register_url_converters(app: Flask) -> None:
    # Before the blueprints: a rule looks its converters up when it is added to the map.
    app.url_map.converters["int"] = DatabaseIntConverter
    app.url_map.converters["issue_number"] = IssueNumberConverter


def _register_blueprints(app: Flask) -> None:
    from .admin.views import bp as admin_bp
    from .delivery import webhooks_bp
    from .devmail import bp as devmail_bp
    from .digest.views import bp as archive_bp
    from .health import bp as health_bp
    from .subscriptions.views import bp as subscriptions_bp

    app.register_blueprint(subscriptions_bp)
    app.register_blueprint(archive_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(webhooks_bp)
    csrf.exempt(webhooks_bp)  # providers post without a session; each request is verified
    app.register_blueprint(admin_bp, url_prefix="/admin")
    if app.debug:
        app.register_blueprint(devmail_bp, url_prefix="/dev")


def _register_commands(app: Flask) -> None:
    from .cli import register_commands

    register_commands(app)
