"""What an operator sees for a bad setting, a database that is down, or a weak admin password.

Each is one line naming the setting (or the database) and what to do, never a traceback: a
bad setting stops ``create_app`` with a ConfigError, and ``wsgi.py`` (what ``flask --app wsgi``
and gunicorn load) prints it as ``Error: ...`` and exits with status 4.
"""

import importlib.util
import math
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from config import Config, ConfigError, database_url, without_password
from mailer import create_app
from mailer.cli.errors import unreachable_database_message
from mailer.delivery.message import dkim
from mailer.extensions import db
from mailer.models import AdminUser
from tests.conftest import ROOT
from tests.support.operator_cli import GOOD_KEY, refusal, run_flask
from tests.support.smtpd import free_port

# The storages whose client library is installed here (redis is in requirements.txt).
USABLE_STORAGES = "memory, redis, redis+cluster, redis+sentinel, redis+unix, rediss"
FORMS = (
    "sqlite:////absolute/path/mailer.sqlite3 or postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME"
)


# --- MAILER_TIMEZONE ---------------------------------------------------------------------------


@pytest.mark.nodb
def test_unknown_timezone_is_refused_at_create_app(production_env):
    assert refusal(production_env, MAILER_TIMEZONE="Mars/Olympus") == (
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
    assert refusal(production_env, DATABASE_URL=url) == message
    assert "s3cret" not in message


@pytest.mark.nodb
def test_a_missing_driver_is_named(production_env):
    import importlib.util

    assert importlib.util.find_spec("psycopg2") is None, "this test needs psycopg2 absent"
    assert refusal(production_env, DATABASE_URL="postgresql+psycopg2://mailer:s3cret@db/mail") == (
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
    assert refusal(production_env, SECRET_KEY="k" * 31) == (
        "SECRET_KEY has 31 characters; production needs at least 32. Make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )


@pytest.mark.nodb
def test_production_accepts_a_32_character_key_and_debug_a_short_one(production_env):
    assert create_app(Config).config["SECRET_KEY"] == GOOD_KEY
    production_env.setenv("SECRET_KEY", "short")
    production_env.setenv("FLASK_DEBUG", "1")
    assert create_app(Config).config["SECRET_KEY"] == "short"


@pytest.mark.nodb
@pytest.mark.parametrize("key", [" " * 40, "\t" * 33, " \n " * 20])
def test_production_refuses_a_blank_secret_key(production_env, key):
    assert refusal(production_env, SECRET_KEY=key) == (
        "SECRET_KEY is blank (only whitespace). Make one with: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )


@pytest.mark.nodb
def test_production_does_not_count_whitespace_around_a_secret_key(production_env):
    assert refusal(production_env, SECRET_KEY="k" * 20 + " " * 20) == (
        "SECRET_KEY has 20 characters (not counting the whitespace around it); production needs "
        "at least 32. Make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    )
    # A good key read from a file with its newline still starts, and is used as given.
    production_env.setenv("SECRET_KEY", GOOD_KEY + "\n")
    assert create_app(Config).config["SECRET_KEY"] == GOOD_KEY + "\n"


# --- float settings: finite only ---------------------------------------------------------------

FLOAT_SETTINGS = re.findall(r'env_float\(\s*"(\w+)"', (ROOT / "config.py").read_text())


def test_the_float_settings_are_found_in_config_py():
    assert {"MAILER_SEND_RATE", "MAILER_SMTP_TIMEOUT", "MAILER_DNS_TIMEOUT"} <= set(FLOAT_SETTINGS)


@pytest.mark.nodb
@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "Infinity", " NaN "])
def test_every_float_setting_refuses_values_that_are_not_finite(production_env, name, value):
    # MAILER_SEND_RATE=inf (or nan, which no range check refuses) sent without any limit.
    assert (
        refusal(production_env, **{name: value}) == f"{name} must be a finite number, got {value!r}"
    )


@pytest.mark.nodb
def test_a_finite_send_rate_is_kept(production_env):
    production_env.setenv("MAILER_SEND_RATE", "12.5")
    rate = create_app(Config).config["MAILER_SEND_RATE"]
    assert rate == 12.5 and math.isfinite(rate)


# --- rate limits and their storage ------------------------------------------------------------

LIMIT_USAGE = "(use AMOUNT/UNIT, several joined by ';', e.g. '10/minute;100/day')"


@pytest.mark.nodb
@pytest.mark.parametrize(
    "name",
    [
        "MAILER_SIGNUP_RATE_LIMIT",
        "MAILER_TOKEN_RATE_LIMIT",
        "MAILER_LOGIN_RATE_LIMIT",
        "MAILER_TEST_SEND_RATE_LIMIT",
    ],
)
def test_a_rate_limit_flask_limiter_cannot_read_is_refused(production_env, name):
    # Flask-Limiter would log it and apply no limit at all: no brute-force protection.
    assert (
        refusal(production_env, **{name: "garbage"})
        == f"{name}: 'garbage' is not a rate limit {LIMIT_USAGE}"
    )


@pytest.mark.nodb
@pytest.mark.parametrize("value", ["5/minute;", "5/minute;50/fortnight", "five/minute", ""])
def test_a_rate_limit_with_one_bad_part_is_refused_from_overrides_too(value, tmp_path):
    with pytest.raises(ConfigError, match=r"^MAILER_LOGIN_RATE_LIMIT: .* is not a rate limit"):
        create_app({"MAILER_LOGIN_RATE_LIMIT": value, "MAILER_INSTANCE_DIR": str(tmp_path)})


@pytest.mark.nodb
def test_rate_limits_in_every_form_flask_limiter_reads_are_kept(production_env):
    production_env.setenv("MAILER_SIGNUP_RATE_LIMIT", "10 per minute, 100/day|1000/month")
    app = create_app(Config)
    assert app.config["MAILER_SIGNUP_RATE_LIMIT"] == "10 per minute, 100/day|1000/month"


@pytest.mark.nodb
def test_an_unknown_rate_limit_storage_scheme_is_refused_in_one_line(production_env):
    assert refusal(production_env, RATELIMIT_STORAGE_URI="bogus://x") == (
        "RATELIMIT_STORAGE_URI: unknown storage scheme 'bogus' in 'bogus://x' (use memory:// "
        f"or redis://HOST:6379/0; usable schemes: {USABLE_STORAGES})"
    )


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("uri", "package"),
    [
        ("memcached://127.0.0.1:11211", "pymemcache"),
        ("mongodb://127.0.0.1", "pymongo"),
        ("mongodb+srv://u:s3cret@db.example.com", "pymongo"),
        ("valkey://127.0.0.1:6379/0", "valkey"),
    ],
)
def test_a_rate_limit_storage_without_its_library_is_refused_naming_the_package(
    production_env, uri, package
):
    assert importlib.util.find_spec(package) is None, f"this test needs {package} absent"
    scheme = uri.split("://")[0]
    assert refusal(production_env, RATELIMIT_STORAGE_URI=uri) == (
        f"RATELIMIT_STORAGE_URI: storage scheme {scheme!r} in {without_password(uri)!r} needs "
        f"the Python package {package}, which is not installed (install it, or use one of the "
        f"usable schemes: {USABLE_STORAGES})"
    )


@pytest.mark.e2e
@pytest.mark.nodb
def test_a_storage_without_its_library_prints_one_line_and_no_ignored_exception(tmp_path):
    # Flask-Limiter used to build a half-made MongoDBStorage whose __del__ then failed.
    result = run_flask(tmp_path, "db", "upgrade", RATELIMIT_STORAGE_URI="mongodb://127.0.0.1")
    assert result.returncode == 4, result.stderr
    assert result.stderr == (
        "Error: RATELIMIT_STORAGE_URI: storage scheme 'mongodb' in 'mongodb://127.0.0.1' needs "
        "the Python package pymongo, which is not installed (install it, or use one of the "
        f"usable schemes: {USABLE_STORAGES})\n"
    )


@pytest.mark.nodb
def test_a_malformed_redis_uri_is_refused_without_its_password(production_env):
    assert refusal(production_env, RATELIMIT_STORAGE_URI="redis://:s3cret@127.0.0.1:port/0") == (
        "RATELIMIT_STORAGE_URI: 'redis://***@127.0.0.1:port/0': Port could not be cast to "
        "integer value as 'port'"
    )


# --- SMTP, schedule and sender: refused at start, not by the worker every few seconds ----------


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "MAILER_SMTP_SECURITY",
            "tls",
            "MAILER_SMTP_SECURITY must be one of none, starttls, ssl, got 'tls'",
        ),
        (
            "MAILER_DIGEST_DAY",
            "1",
            "MAILER_DIGEST_DAY must be a weekday name such as monday, got '1'",
        ),
        (
            "MAILER_DIGEST_TIME",
            "25:00",
            "MAILER_DIGEST_TIME must be HH:MM (24-hour clock), got '25:00'",
        ),
        (
            "MAILER_FROM",
            "garbage",
            "MAILER_FROM must be one ASCII address like 'Name <newsletter@example.com>', "
            "got 'garbage'",
        ),
        (
            "MAILER_FROM",
            "news@example.com, boss@example.com",
            "MAILER_FROM must be one ASCII address like 'Name <newsletter@example.com>', "
            "got 'news@example.com, boss@example.com'",
        ),
        (
            "MAILER_FROM",
            "Japan Weekly <news@example.com> and friends",
            "MAILER_FROM must be one ASCII address like 'Name <newsletter@example.com>', "
            "got 'Japan Weekly <news@example.com> and friends'",
        ),
    ],
)
def test_settings_of_the_mail_and_the_schedule_are_checked_at_start(
    production_env, name, value, message
):
    assert refusal(production_env, **{name: value}) == message


@pytest.mark.nodb
@pytest.mark.parametrize(
    "value",
    ['"Japan Weekly" <news@example.com>', "news@example.com", '"Smith, J." <j@example.com>'],
)
def test_one_address_with_or_without_a_display_name_is_a_good_mailer_from(production_env, value):
    production_env.setenv("MAILER_FROM", value)
    assert create_app(Config).config["MAILER_FROM"] == value


# --- DKIM: the key is loaded at start, not first by the sender ------------------------------

DKIM_NAMES = ("MAILER_DKIM_DOMAIN", "MAILER_DKIM_SELECTOR", "MAILER_DKIM_PRIVATE_KEY")


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> Path:
    """A 2048-bit RSA key written the way `dkim keygen` writes it."""
    path = tmp_path_factory.mktemp("dkim") / "mail.pem"
    dkim.write_private_key(path, dkim.generate_private_key())
    return path


def _dkim_env(env, key: str) -> None:
    env.setenv("MAILER_DKIM_DOMAIN", "example.com")
    env.setenv("MAILER_DKIM_SELECTOR", "mail2026")
    env.setenv("MAILER_DKIM_PRIVATE_KEY", key)


@pytest.mark.nodb
def test_a_dkim_key_that_cannot_be_read_is_refused_at_start(production_env, tmp_path):
    _dkim_env(production_env, str(tmp_path / "nonexistent.pem"))
    assert refusal(production_env) == (
        f"MAILER_DKIM_PRIVATE_KEY: cannot read {tmp_path / 'nonexistent.pem'}: "
        "No such file or directory"
    )
    _dkim_env(production_env, str(tmp_path))
    with pytest.raises(ConfigError, match=r"^MAILER_DKIM_PRIVATE_KEY: cannot read .*directory"):
        create_app(Config)


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello", r"^MAILER_DKIM_PRIVATE_KEY is not an unencrypted PEM key: "),
        (b"", r"^MAILER_DKIM_PRIVATE_KEY is not an unencrypted PEM key: "),
    ],
)
def test_a_dkim_key_file_without_a_key_is_refused_at_start(
    production_env, tmp_path, content, message
):
    path = tmp_path / "dkim.pem"
    path.write_bytes(content)
    _dkim_env(production_env, str(path))
    with pytest.raises(ConfigError, match=message):
        create_app(Config)


@pytest.mark.nodb
def test_a_dkim_key_that_is_not_rsa_is_refused_at_start(production_env, tmp_path):
    # dkimpy signs rsa-sha256 here; an EC key would fail on the first mail.
    path = tmp_path / "ec.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    dkim.write_private_key(path, pem)
    _dkim_env(production_env, str(path))
    assert refusal(production_env) == "MAILER_DKIM_PRIVATE_KEY must be an RSA key (rsa-sha256)"


@pytest.mark.nodb
@pytest.mark.parametrize(
    "unset",
    [
        ("MAILER_DKIM_SELECTOR",),
        ("MAILER_DKIM_PRIVATE_KEY",),
        ("MAILER_DKIM_DOMAIN", "MAILER_DKIM_SELECTOR"),
        ("MAILER_DKIM_SELECTOR", "MAILER_DKIM_PRIVATE_KEY"),
    ],
)
def test_some_but_not_all_dkim_settings_are_refused_naming_the_missing(
    production_env, dkim_key, unset
):
    # DKIM is on when the three are set (README); two of three is a mistake, never "off".
    _dkim_env(production_env, str(dkim_key))
    assert refusal(production_env, **dict.fromkeys(unset, "")) == (
        "DKIM needs all three of MAILER_DKIM_DOMAIN, MAILER_DKIM_SELECTOR and "
        f"MAILER_DKIM_PRIVATE_KEY (a PEM file), {' and '.join(unset)} not set; set them all "
        "or none"
    )


@pytest.mark.nodb
def test_a_good_dkim_key_or_no_dkim_at_all_starts(production_env, dkim_key):
    for name in DKIM_NAMES:
        production_env.delenv(name, raising=False)
    assert create_app(Config).config["MAILER_DKIM_DOMAIN"] == ""
    _dkim_env(production_env, str(dkim_key))
    assert create_app(Config).config["MAILER_DKIM_PRIVATE_KEY"] == str(dkim_key)


@pytest.mark.e2e
@pytest.mark.nodb
@pytest.mark.parametrize("command", [["send-pending"], ["subscribers", "list"]])
def test_a_missing_dkim_key_stops_every_command_in_one_line(tmp_path, command):
    result = run_flask(
        tmp_path,
        *command,
        MAILER_DKIM_DOMAIN="example.com",
        MAILER_DKIM_SELECTOR="mail2026",
        MAILER_DKIM_PRIVATE_KEY="/nonexistent.pem",
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr == (
        "Error: MAILER_DKIM_PRIVATE_KEY: cannot read /nonexistent.pem: No such file or directory\n"
    )


# --- MAILER_BASE_URL ---------------------------------------------------------------------------

BASE_URL_USAGE = (
    "MAILER_BASE_URL must be an absolute http(s) URL such as https://newsletter.example.com "
    "(no query or fragment), got"
)


@pytest.mark.nodb
@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "news.example.com",
        "ftp://news.example.com",
        "https://",
        "https:///path",
        "https://news.example.com/?from=mail",
        "https://news.example.com/#top",
        "https://news.example.com:99999",
        "https://news example.com",
    ],
)
def test_a_base_url_links_cannot_be_made_from_is_refused_even_in_tests(url, tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        create_app({"MAILER_BASE_URL": url, "MAILER_INSTANCE_DIR": str(tmp_path)})
    assert str(excinfo.value) == f"{BASE_URL_USAGE} {url!r}"


@pytest.mark.nodb
def test_production_refuses_a_plain_http_base_url_of_a_real_host(production_env):
    assert refusal(production_env, MAILER_BASE_URL="http://news.example.com") == (
        "MAILER_BASE_URL must be https in production, got 'http://news.example.com': one-click "
        "unsubscribe (RFC 8058) and secure admin sessions need it; plain http is accepted only "
        "for a loopback host (localhost, 127.0.0.1, ::1)"
    )


@pytest.mark.nodb
@pytest.mark.parametrize(
    "url",
    [
        "https://news.example.com",
        "https://news.example.com/letters",
        "http://127.0.0.1:5000",
        "http://localhost:8000",
        "http://[::1]:5000",
    ],
)
def test_production_accepts_https_and_plain_http_on_loopback(production_env, url):
    production_env.setenv("MAILER_BASE_URL", url)
    assert create_app(Config).config["MAILER_BASE_URL"] == url


@pytest.mark.nodb
def test_debug_accepts_a_plain_http_base_url_of_any_host(production_env):
    production_env.setenv("FLASK_DEBUG", "1")
    production_env.setenv("MAILER_BASE_URL", "http://dev.local:8000")
    assert create_app(Config).config["MAILER_BASE_URL"] == "http://dev.local:8000"


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
            "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
        ),
        ({"MAILER_SMTP_PORT": "abc"}, "MAILER_SMTP_PORT must be a whole number, got 'abc'"),
        (
            {"MAILER_LOGIN_RATE_LIMIT": "garbage"},
            f"MAILER_LOGIN_RATE_LIMIT: 'garbage' is not a rate limit {LIMIT_USAGE}",
        ),
        (
            {"MAILER_SMTP_SECURITY": "tls"},
            "MAILER_SMTP_SECURITY must be one of none, starttls, ssl, got 'tls'",
        ),
        (
            {"MAILER_DIGEST_DAY": "1"},
            "MAILER_DIGEST_DAY must be a weekday name such as monday, got '1'",
        ),
        ({"MAILER_BASE_URL": "notaurl"}, f"{BASE_URL_USAGE} 'notaurl'"),
        (
            {"RATELIMIT_STORAGE_URI": "bogus://x"},
            "RATELIMIT_STORAGE_URI: unknown storage scheme 'bogus' in 'bogus://x' (use "
            f"memory:// or redis://HOST:6379/0; usable schemes: {USABLE_STORAGES})",
        ),
    ],
)
def test_flask_commands_print_one_line_for_a_bad_setting(tmp_path, settings, line):
    result = run_flask(tmp_path, "db", "upgrade", **settings)
    assert result.returncode == 4, result.stderr
    assert result.stderr == f"Error: {line}\n"


@pytest.mark.e2e
@pytest.mark.nodb
@pytest.mark.parametrize("command", [["worker"], ["subscribers", "list"], ["send-pending"]])
def test_a_bad_schedule_stops_every_command_not_only_the_worker(tmp_path, command):
    result = run_flask(tmp_path, *command, MAILER_DIGEST_TIME="25:00")
    assert result.returncode == 4, result.stderr
    assert result.stderr == "Error: MAILER_DIGEST_TIME must be HH:MM (24-hour clock), got '25:00'\n"


@pytest.mark.e2e
@pytest.mark.nodb
@pytest.mark.parametrize("command", [["db", "upgrade"], ["worker"], ["digest", "send"]])
def test_flask_commands_print_one_line_when_the_database_is_unreachable(tmp_path, command):
    port = free_port()  # nothing listens there: the connection is refused
    url = f"postgresql+psycopg://mailer:s3cret@127.0.0.1:{port}/mailer"
    result = run_flask(tmp_path, *command, DATABASE_URL=url)
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


# --- numbers written with other digits --------------------------------------------------------


@pytest.mark.nodb
@pytest.mark.parametrize("value", ["５８７", "5_87", "٥٨٧", "587.0", "0x24b"])
def test_whole_number_settings_take_ascii_digits_only(production_env, value):
    production_env.setenv("MAILER_SMTP_PORT", value)
    with pytest.raises(
        ConfigError, match=f"MAILER_SMTP_PORT must be a whole number, got '{value}'"
    ):
        create_app()


@pytest.mark.nodb
def test_a_whole_number_with_blanks_around_it_is_read(production_env, tmp_path):
    production_env.setenv("MAILER_SMTP_PORT", " 2525 ")
    assert create_app().config["MAILER_SMTP_PORT"] == 2525


@pytest.mark.nodb
@pytest.mark.parametrize("value", ["０８:００", "08:０0", "²:00"])
def test_the_digest_time_takes_ascii_digits_only(production_env, value):
    production_env.setenv("MAILER_DIGEST_TIME", value)
    message = f"MAILER_DIGEST_TIME must be HH:MM (24-hour clock), got '{value}'"
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app()


# --- a SQLite file in a folder that does not exist ----------------------------------------------


@pytest.mark.nodb
def test_a_sqlite_path_in_a_missing_folder_is_refused_not_created(production_env, tmp_path):
    folder = tmp_path / "typo" / "dir"
    message = refusal(production_env, DATABASE_URL=f"sqlite:///{folder / 'x.sqlite3'}")
    assert (
        message
        == f"DATABASE_URL: the folder {folder} does not exist; create it or correct the path"
    )
    assert not (tmp_path / "typo").exists()


@pytest.mark.nodb
def test_the_instance_folder_of_the_default_database_is_created(tmp_path):
    instance = tmp_path / "fresh-checkout" / "instance"
    create_app(
        {
            "MAILER_INSTANCE_DIR": str(instance),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'mailer.sqlite3'}",
        }
    )
    assert instance.is_dir()
