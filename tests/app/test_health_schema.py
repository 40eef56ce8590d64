"""A database that was never migrated, or is older than the code: what /healthz answers and
what a ``flask`` command prints. On SQLite and PostgreSQL.

Before, /healthz said ``{"database": "ok"}`` while every signup failed, and a command died
with an 80-line traceback ending "no such table: subscriber" / UndefinedTable.
"""

import flask_migrate
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from config import BASE_DIR
from mailer import create_app
from mailer.extensions import db
from tests.support.operator_cli import run_flask

UPGRADE = "run `flask --app wsgi db upgrade`"
HEAD = ScriptDirectory(str(BASE_DIR / "migrations")).get_current_head()


# empty_database_url (a database with no tables at all, SQLite and PostgreSQL) is in
# tests/conftest.py, shared with tests/app/test_migrations.py.


@pytest.fixture
def empty_app(empty_database_url, tmp_path):
    """An app on that database; nothing creates its tables."""
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": empty_database_url, "MAILER_INSTANCE_DIR": str(tmp_path)}
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _migrate(app, revision: str = "head") -> None:
    with app.app_context():
        flask_migrate.upgrade(revision=revision)


def _health(app) -> tuple[int, dict]:
    response = app.test_client().get("/healthz")
    return response.status_code, response.get_json()


# --- /healthz ----------------------------------------------------------------------------------


def test_healthz_of_a_database_never_migrated_is_503_with_the_reason(empty_app):
    assert _health(empty_app) == (
        503,
        {
            "status": "error",
            "database": "schema",
            "reason": f"the database has no tables yet: {UPGRADE}",
        },
    )


def test_healthz_is_ok_once_db_upgrade_ran(empty_app):
    _migrate(empty_app)
    assert _health(empty_app) == (200, {"status": "ok", "database": "ok"})


def test_healthz_names_the_tables_a_database_of_an_older_release_lacks(empty_app):
    _migrate(empty_app, "0001")  # the first release: no signup_request table yet
    status, body = _health(empty_app)
    assert status == 503
    assert body["database"] == "schema"
    assert body["reason"].startswith("the database is older than this version (no table ")
    assert "signup_request" in body["reason"]
    assert body["reason"].endswith(f"): {UPGRADE}")


def test_healthz_compares_the_revision_with_the_migrations_head(empty_app):
    _migrate(empty_app)
    with empty_app.app_context():
        flask_migrate.stamp(revision="0001")  # every table there, but the revision is old
    assert _health(empty_app) == (
        503,
        {
            "status": "error",
            "database": "schema",
            "reason": f"the database schema is at revision 0001, this version needs {HEAD}: "
            f"{UPGRADE}",
        },
    )


def test_healthz_says_so_for_a_revision_from_a_newer_release(empty_app):
    _migrate(empty_app)
    with empty_app.app_context():
        db.session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        db.session.commit()
    assert _health(empty_app)[1]["reason"] == (
        "the database schema is at revision 9999, which this version does not know (was it "
        "migrated by a newer version?)"
    )


# --- a flask command on a database without tables ----------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("command", [["subscribers", "list"], ["worker"]])
def test_a_command_on_a_database_without_tables_prints_one_line(
    empty_database_url, tmp_path, command
):
    result = run_flask(tmp_path, *command, DATABASE_URL=empty_database_url)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"Error: the database at {empty_database_url} has no tables yet (or is older than this "
        f"version): {UPGRADE}\n"
    )
