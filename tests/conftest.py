"""Shared fixtures: an app per test on SQLite and on PostgreSQL, a real SMTP server, shared data.

Every test that asks for ``app`` (or ``client``, ``runner``, ``session``) runs twice: once on a
fresh SQLite file and once on PostgreSQL (a database made for this test session, emptied
after each test). Under ``CI=true`` an unreachable PostgreSQL or a missing ../shared fails the
run instead of skipping.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailer import clock, create_app
from mailer.extensions import db
from tests.support.smtpd import ScriptedSMTPServer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "MAILER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def missing(reason: str):
    """Skip with ``reason`` locally; fail under CI=true, where nothing may be skipped."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must be available in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the clone (real feeds and address corpora)."""
    if not (SHARED / "data").is_dir():
        missing(f"{SHARED}/data is not there: these tests read the shared real-world inputs")
    return SHARED


@pytest.fixture(scope="session")
def feeds_dir(shared_dir) -> Path:
    """../shared/data/feeds."""
    return shared_dir / "data" / "feeds"


@contextmanager
def scratch_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database named ``PREFIX_<12 hex digits>``; yields its URL.

    Made through ``PG_ADMIN_URL`` and dropped WITH (FORCE) on exit, so connections a test left
    open do not keep it. Skips (fails under CI=true) when PostgreSQL is not reachable.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url():
    """URL of a PostgreSQL database made for this test session (dropped at the end)."""
    with scratch_pg_database("mailer_test") as url:
        yield url


@pytest.fixture(scope="session")
def _pg_schema(pg_url):
    """Create the tables once per session in the PostgreSQL test database."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": pg_url})
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A database URL with the schema in place and no rows: SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    url = request.getfixturevalue("_pg_schema")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A database with no tables at all: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with scratch_pg_database("mailer_empty") as url:
        yield url


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free loopback port; ``smtp_server.received`` holds the mail."""
    with ScriptedSMTPServer() as server:
        yield server


@pytest.fixture
def app_config(database_url, smtp_server, tmp_path) -> dict:
    """Overrides on top of config.TestConfig; a test may change it before asking for ``app``."""
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAILER_SMTP_HOST": smtp_server.host,
        "MAILER_SMTP_PORT": smtp_server.port,
        "MAILER_SMTP_TIMEOUT": 10.0,
        "MAILER_INSTANCE_DIR": str(tmp_path / "instance"),
    }


@pytest.fixture
def app(app_config):
    """The app on a database with empty tables (SQLite: created here)."""
    application = create_app(app_config)
    with application.app_context():
        if db.engine.dialect.name == "sqlite":
            db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    clock.freeze(None)


@pytest.fixture
def session(app):
    """The SQLAlchemy session inside a pushed app context."""
    with app.app_context():
        yield db.session


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for ``flask`` commands."""
    return app.test_cli_runner()


@pytest.fixture
def make_item(session):
    """Insert an Item row directly (no feed): ``make_item(section="news", title=..., ...)``.

    Each call gets a unique dedupe key and link and, unless given, a ``published_at`` one
    minute later than the previous one (2026-12-01 UTC onwards). Flushed, not committed.
    """
    from datetime import UTC, datetime, timedelta

    from mailer.models import Item

    made = []

    def make(section: str = "news", **fields) -> Item:
        n = len(made) + 1
        fields.setdefault("title", f"{section.title()} item {n}")
        fields.setdefault("link", f"https://example.com/{section}/{n}")
        fields.setdefault("summary_html", f"<p>Summary of {section} item {n}.</p>")
        fields.setdefault("published_at", datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=n))
        item = Item(section=section, dedupe_key=f"test-{n}", **fields)
        session.add(item)
        session.flush()
        made.append(item)
        return item

    return make


# A 32-character key that passes the production checks (not guessable).
PRODUCTION_KEY = "3q8N0vXk-Jd2pLr7WmZc_Y1tHs9FbQe4"


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    """The environment of a production start (no FLASK_DEBUG) with good settings."""
    for name in ("FLASK_DEBUG", "MAILER_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_KEY)
    monkeypatch.setenv("MAILER_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    return monkeypatch
