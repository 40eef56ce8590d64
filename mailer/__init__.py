"""The newsletter service: ``create_app`` assembles it and reads like a table of contents."""

from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError
from werkzeug.middleware.proxy_fix import ProxyFix

from config import (
    BASE_DIR,
    DATABASE_URL_FORMS,
    Config,
    ConfigError,
    TestConfig,
    check_secret_key,
    check_timezone,
    database_url,
)

from . import models  # noqa: F401 - registers the tables on db.metadata
from .errors import register_error_pages
from .extensions import csrf, db, limiter, login_manager, migrate


def create_app(config: type | Mapping | object | None = None) -> Flask:
    """Create and configure the Flask app.

    Args:
        config: None for :class:`config.Config` (the environment); a config class or object;
            or a mapping of overrides applied on top of :class:`config.TestConfig`.

    Returns:
        The configured app. Nothing is started: no scheduler, no sender, no network.

    Raises:
        config.ConfigError: a setting the service cannot run with, the message naming it: an
            environment variable that does not parse, an unknown MAILER_TIMEZONE, a
            DATABASE_URL that is not a SQLite or PostgreSQL URL or whose driver is missing,
            or in production (not DEBUG, not TESTING) a SECRET_KEY that is the development
            default or shorter than 32 characters. Nothing is connected to at this point.
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
    _register_blueprints(app)
    register_error_pages(app)
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
    if not (app.debug or app.testing):
        check_secret_key(app.config["SECRET_KEY"])
    check_timezone(app.config["MAILER_TIMEZONE"])
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app.config["SQLALCHEMY_DATABASE_URI"])


def _init_extensions(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:///:memory:"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    if app.config.get("MAILER_PROXY_HOPS", 0) > 0:
        hops = app.config["MAILER_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers go on while one writer commits; the busy timeout makes a second writer
    # wait for the lock instead of failing at once with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _register_blueprints(app: Flask) -> None:
    from .admin.views import bp as admin_bp
    from .devmail import bp as devmail_bp
    from .digest.views import bp as archive_bp
    from .health import bp as health_bp
    from .subscriptions.views import bp as subscriptions_bp

    app.register_blueprint(subscriptions_bp)
    app.register_blueprint(archive_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    if app.debug:
        app.register_blueprint(devmail_bp, url_prefix="/dev")


def _register_commands(app: Flask) -> None:
    from .cli import register_commands

    register_commands(app)
