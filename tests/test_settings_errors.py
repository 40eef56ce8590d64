"""What an operator sees for a bad setting, a database that is down, or a weak admin password.

Each is one line naming the setting (or the database) and what to do, never a traceback: a
bad setting stops ``create_app`` with a ConfigError, and ``wsgi.py`` (what ``flask --app wsgi``
and gunicorn load) prints it as ``Error: ...`` and exits with status 4.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from config import Config, ConfigError, database_url
from mailer import create_app
from mailer.cli.errors import unreachable_database_message
from mailer.extensions import db
from mailer.models import AdminUser
from tests.support.smtpd import free_port

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "k" * 32
HANG_GUARD = 120  # seconds; only stops a hung process, never a timing assertion
FORMS = (
    "sqlite:////absolute/path/mailer.sqlite3 or postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME"
)


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    """The environment of a production start (no FLASK_DEBUG) with good settings."""
    for name in ("FLASK_DEBUG", "MAILER_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("MAILER_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    return monkeypatch


def _flask(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    """Run ``flask --app wsgi ARGS`` as an operator would, in production mode."""
    env = {k: v for k, v in os.environ.items() if k not in {"FLASK_DEBUG", "MAILER_TIMEZONE"}}
    env.update(
        SECRET_KEY=GOOD_KEY,
        MAILER_INSTANCE_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
    )
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


# --- MAILER_TIMEZONE ---------------------------------------------------------------------------


@pytest.mark.nodb
def test_unknown_timezone_is_refused_at_create_app(production_env):
    production_env.setenv("MAILER_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError) as excinfo:
        create_app(Config)
    assert str(excinfo.value) == (
        "MAILER_TIMEZONE: unknown time zone 'Mars/Olympus' (use an IANA name such as Asia/Tokyo)"
    )


@pytest.mark.nodb
@pytest.mark.parametrize("zone", ["", "Asia", "../etc/passwd", "JST+9"])
def test_timezones_that_are_no_iana_zone_are_refused_from_overrides_too(zone, tmp_path):
    with pytest.raises(ConfigError, match=r"^MAILER_TIMEZONE: unknown time zone"):
        create_app({"MAILER_TIMEZONE": zone, "MAILER_INSTANCE_DIR": str(tmp_path)})


@pytest.mark.nodb
def test_a_real_timezone_is_kept(tmp_path):
    app = create_app({"MAILER_TIMEZONE": "Europe/Berlin", "MAILER_INSTANCE_DIR": str(tmp_path)})
    assert app.config["MAILER_TIMEZONE"] == "Europe/Berlin"


# --- DATABASE_URL ------------------------------------------------------------------------------


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", f"DATABASE_URL: 'not a url' is not a database URL (use {FORMS})"),
        (
            "postgresql+psycopg://mailer:s3cret@db:port/mail",
            f"DATABASE_URL: 'postgresql+psycopg://***@db:port/mail' is not a database URL "
            f"(use {FORMS})",
        ),
        (
            "mysql://mailer:s3cret@db/mail",
            f"DATABASE_URL: unsupported database 'mysql' in 'mysql://mailer:***@db/mail' "
            f"(use {FORMS})",
        ),
        (
            "postgresql+nosuchdriver://mailer:s3cret@db/mail",
            "DATABASE_URL: cannot load the driver 'postgresql+nosuchdriver' (Can't load plugin: "
            f"sqlalchemy.dialects:postgresql.nosuchdriver); use {FORMS}",
        ),
    ],
)
def test_unusable_database_urls_are_refused_naming_database_url(production_env, url, message):
    production_env.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as excinfo:
        create_app(Config)
    assert str(excinfo.value) == message
    assert "s3cret" not in message


@pytest.mark.nodb
def test_a_missing_driver_is_named(production_env):
    import importlib.util

    assert importlib.util.find_spec("psycopg2") is None, "this test needs psycopg2 absent"
    production_env.setenv("DATABASE_URL", "postgresql+psycopg2://mailer:s3cret@db/mail")
    with pytest.raises(ConfigError) as excinfo:
        create_app(Config)
    assert str(excinfo.value) == (
        "DATABASE_URL: cannot load the driver 'postgresql+psycopg2' (No module named "
        f"'psycopg2'); use {FORMS}"
    )


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:p%40ss@db:5432/mail", "postgresql+psycopg://u:p%40ss@db:5432/mail"),
        (
            "postgresql://u@db/mail?sslmode=require",
            "postgresql+psycopg://u@db/mail?sslmode=require",
        ),
        ("postgresql+psycopg://u@db/mail", "postgresql+psycopg://u@db/mail"),
        ("sqlite:////srv/mailer/mailer.sqlite3", "sqlite:////srv/mailer/mailer.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_hosting_style_postgres_urls_use_psycopg_3(given, used):
    assert database_url(given) == used


def test_a_postgres_url_without_driver_reaches_postgresql_with_psycopg_3(pg_url, tmp_path):
    plain = pg_url.replace("postgresql+psycopg://", "postgres://", 1)
    app = create_app({"SQLALCHEMY_DATABASE_URI": plain, "MAILER_INSTANCE_DIR": str(tmp_path)})
    with app.app_context():
        assert db.engine.url.drivername == "postgresql+psycopg"
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        db.session.remove()
        db.engine.dispose()


# --- SECRET_KEY --------------------------------------------------------------------------------


@pytest.mark.nodb
def test_production_refuses_a_secret_key_under_32_characters(production_env):
    production_env.setenv("SECRET_KEY", "k" * 31)
    with pytest.raises(ConfigError) as excinfo:
        create_app(Config)
    assert str(excinfo.value) == (
        "SECRET_KEY has 31 characters; production needs at least 32. Make one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )


@pytest.mark.nodb
def test_production_accepts_a_32_character_key_and_debug_a_short_one(production_env):
    assert create_app(Config).config["SECRET_KEY"] == GOOD_KEY
    production_env.setenv("SECRET_KEY", "short")
    production_env.setenv("FLASK_DEBUG", "1")
    assert create_app(Config).config["SECRET_KEY"] == "short"


# --- the one line an operator sees from `flask --app wsgi ...` ---------------------------------


@pytest.mark.e2e
@pytest.mark.nodb
@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"MAILER_TIMEZONE": "Mars/Olympus"},
            "MAILER_TIMEZONE: unknown time zone 'Mars/Olympus' (use an IANA name such as "
            "Asia/Tokyo)",
        ),
        (
            {"DATABASE_URL": "not a url"},
            f"DATABASE_URL: 'not a url' is not a database URL (use {FORMS})",
        ),
        (
            {"SECRET_KEY": "too-short"},
            "SECRET_KEY has 9 characters; production needs at least 32. Make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
        ),
        ({"MAILER_SMTP_PORT": "abc"}, "MAILER_SMTP_PORT must be a whole number, got 'abc'"),
    ],
)
def test_flask_commands_print_one_line_for_a_bad_setting(tmp_path, settings, line):
    result = _flask(tmp_path, "db", "upgrade", **settings)
    assert result.returncode == 4, result.stderr
    assert result.stderr == f"Error: {line}\n"


@pytest.mark.e2e
@pytest.mark.nodb
@pytest.mark.parametrize("command", [["db", "upgrade"], ["worker"], ["digest", "send"]])
def test_flask_commands_print_one_line_when_the_database_is_unreachable(tmp_path, command):
    port = free_port()  # nothing listens there: the connection is refused
    url = f"postgresql+psycopg://mailer:s3cret@127.0.0.1:{port}/mailer"
    result = _flask(tmp_path, *command, DATABASE_URL=url)
    assert result.returncode == 1, result.stderr
    shown = f"postgresql+psycopg://mailer:***@127.0.0.1:{port}/mailer"
    prefix = f"Error: cannot reach the database at {shown}: connection failed: "
    assert result.stderr.startswith(prefix), result.stderr
    assert "Connection refused" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "s3cret" not in result.stderr


@pytest.mark.nodb
def test_an_error_of_a_statement_is_not_called_unreachable(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        with engine.connect() as conn, pytest.raises(OperationalError) as excinfo:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()
    assert unreachable_database_message(excinfo.value, "sqlite:///x") is None
    wrapped = RuntimeError("job failed")
    wrapped.__cause__ = excinfo.value
    assert unreachable_database_message(wrapped, "sqlite:///x") is None


# --- create-admin ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (" " * 12, "the password must not be empty or only spaces"),
        ("\t" * 20, "the password must not be empty or only spaces"),
        (
            "   short pw   ",
            "the password must have at least 12 characters (not counting spaces at either end)",
        ),
    ],
)
def test_create_admin_refuses_a_blank_or_padded_password(runner, session, password, message):
    result = runner.invoke(args=["create-admin", "boss@example.com"], input=f"{password}\n")
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {message}\n"
    assert session.query(AdminUser).count() == 0


def test_create_admin_keeps_spaces_inside_a_password(runner, session):
    result = runner.invoke(args=["create-admin", "boss@example.com"], input="twelve chars here\n")
    assert result.exit_code == 0, result.output
    assert session.query(AdminUser).count() == 1
