"""The Alembic migrations build exactly the schema of mailer/models.py, on SQLite and PostgreSQL."""

import warnings

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from config import BASE_DIR
from mailer import create_app
from mailer.extensions import db
from mailer.models import Subscriber

# SQLite cannot reflect expression-based indexes (lower(email)), so Alembic skips comparing
# that one there and says so; the test checks that index by its behaviour instead.
SQLITE_EXPRESSION_INDEX_WARNINGS = (
    r"autogenerate skipping metadata-specified expression-based index",
    r"Skipped unsupported reflection of expression-based index",
)


def _app_at(url: str, tmp_path, revision: str):
    """Yield an app on the database at ``url`` (no tables yet) upgraded to ``revision``.

    The body of the fixtures below; the app's engine is disposed of when the test is done.
    """
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "MAILER_INSTANCE_DIR": str(tmp_path)})
    with app.app_context():
        flask_migrate.upgrade(revision=revision)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def migrated_app(empty_database_url, tmp_path):
    """An app whose database was brought to the head revision by ``flask db upgrade``."""
    yield from _app_at(empty_database_url, tmp_path, "head")


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    with warnings.catch_warnings():
        if connection.dialect.name == "sqlite":
            for message in SQLITE_EXPRESSION_INDEX_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
        return compare_metadata(context, db.metadata)


def test_upgrade_head_matches_the_models(migrated_app):
    with migrated_app.app_context():
        with db.engine.connect() as connection:
            assert _differences(connection) == []
            tables = set(inspect(connection).get_table_names())
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert tables == {t.name for t in db.metadata.sorted_tables} | {"alembic_version"}
    assert version == ScriptDirectory(str(BASE_DIR / "migrations")).get_current_head()


def test_migrated_schema_keeps_one_subscriber_per_mailbox_whatever_the_case(migrated_app):
    # The unique index on lower(email) is an expression index: checked by what it refuses.
    with migrated_app.app_context():
        db.session.add(Subscriber(email="Ann@Example.com"))
        db.session.commit()
        db.session.add(Subscriber(email="ann@example.com"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_downgrade_to_base_removes_every_table(migrated_app):
    with migrated_app.app_context():
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}


@pytest.fixture
def first_release_app(empty_database_url, tmp_path):
    """An app whose database is at revision 0001 (the first release's schema)."""
    yield from _app_at(empty_database_url, tmp_path, "0001")


QUEUED_MAIL = text(
    "INSERT INTO transactional_mail (kind, recipient, body, status, attempts, created_at) "
    "VALUES ('confirm', 'kept@example.com', :body, 'queued', 0, '2026-11-01 09:00:00')"
)


def test_upgrade_from_the_first_release_keeps_queued_mail(first_release_app):
    with first_release_app.app_context():
        with db.engine.begin() as connection:
            connection.execute(QUEUED_MAIL, {"body": b"Subject: hi\r\n\r\nbody\r\n"})
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            assert _differences(connection) == []
            rows = connection.execute(text("SELECT recipient, body FROM transactional_mail"))
            assert [(r, bytes(b)) for r, b in rows] == [
                ("kept@example.com", b"Subject: hi\r\n\r\nbody\r\n")
            ]
        # A mail without a body (built later by the worker) is allowed from 0002 on.
        with db.engine.begin() as connection:
            connection.execute(QUEUED_MAIL, {"body": None})


def test_downgrade_to_the_first_release_drops_only_unbuilt_mail(migrated_app):
    with migrated_app.app_context():
        with db.engine.begin() as connection:
            connection.execute(QUEUED_MAIL, {"body": b"built"})
            connection.execute(QUEUED_MAIL, {"body": None})
        flask_migrate.downgrade(revision="0001")
        with db.engine.connect() as connection:
            bodies = connection.execute(text("SELECT body FROM transactional_mail")).scalars()
            assert [bytes(b) for b in bodies] == [b"built"]
            assert "signup_request" not in inspect(connection).get_table_names()


ISSUE_ROW = text(
    "INSERT INTO issue (number, period, kind, status, subject, preheader, html, text, "
    "created_at, error_streak) VALUES (:number, '2026-W50', :kind, :status, 's', '', '', '', "
    "'2026-12-01 09:00:00', 0)"
)


def test_one_live_scheduled_issue_per_week_and_a_round_trip_through_0004(migrated_app):
    # 0004: an extra issue and a cancelled one share their week with the scheduled one.
    with migrated_app.app_context():
        with db.engine.begin() as connection:
            connection.execute(ISSUE_ROW, {"number": 1, "kind": "extra", "status": "sent"})
            connection.execute(ISSUE_ROW, {"number": 2, "kind": "scheduled", "status": "cancelled"})
            connection.execute(ISSUE_ROW, {"number": 3, "kind": "scheduled", "status": "sent"})
        with pytest.raises(IntegrityError), db.engine.begin() as connection:
            connection.execute(ISSUE_ROW, {"number": 4, "kind": "scheduled", "status": "draft"})
        flask_migrate.downgrade(revision="0003")
        with db.engine.connect() as connection:
            periods = connection.execute(text("SELECT number, period FROM issue ORDER BY number"))
            assert [tuple(row) for row in periods] == [
                (1, "2026-W50"),
                (2, "2026-W50-2"),
                (3, "2026-W50-3"),
            ]
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            assert _differences(connection) == []
            kinds = connection.execute(text("SELECT kind FROM issue")).scalars().all()
            assert kinds == ["scheduled"] * 3
