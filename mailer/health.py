"""``GET /healthz``: liveness with the database's status, for load balancers and monitors.

"ok" means the database answers *and* holds the schema this version of the code needs, so a
service whose ``flask --app wsgi db upgrade`` was forgotten is reported (503) instead of
looking healthy while every signup fails.
"""

from functools import cache

from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db, limiter

bp = Blueprint("health", __name__)
UPGRADE = "run `flask --app wsgi db upgrade`"


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """Return 200 ``{"status": "ok", "database": "ok"}``; 503 when the database fails.

    The 503 body is ``{"status": "error", "database": NAME}``, NAME the class of the
    database error, or ``{"status": "error", "database": "schema", "reason": TEXT}`` when
    the schema is missing or not the current one (see :func:`schema_problem`).
    """
    try:
        problem = schema_problem(db.session.connection(), current_app.extensions["migrate"])
    except SQLAlchemyError as exc:
        db.session.rollback()
        return jsonify(status="error", database=type(exc).__name__), 503
    if problem is not None:
        return jsonify(status="error", database="schema", reason=problem), 503
    return jsonify(status="ok", database="ok")


def schema_problem(connection: Connection, migrate_config) -> str | None:
    """Return why the database's schema is not the one this code needs, or None if it is.

    Args:
        connection: a connection to the app's database.
        migrate_config: Flask-Migrate's config of the app (``app.extensions["migrate"]``),
            whose ``directory`` holds the Alembic migrations.

    Returns:
        None when every table of the models exists and ``alembic_version`` holds the
        migrations' head revision(s). A database with the tables and no ``alembic_version``
        (made by ``db.create_all()``, as tests and benchmarks do) counts as current too.
        Otherwise one line saying what is wrong and what to run.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    tables = set(inspect(connection).get_table_names())
    wanted = [table.name for table in db.metadata.sorted_tables]
    missing = sorted(name for name in wanted if name not in tables)
    if len(missing) == len(wanted):
        return f"the database has no tables yet: {UPGRADE}"
    if missing:
        return f"the database is older than this version (no table {', '.join(missing)}): {UPGRADE}"
    if "alembic_version" not in tables:
        return None
    current = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    heads, known = _revisions(migrate_config.directory)
    if current == heads:
        return None
    shown = ", ".join(sorted(current)) or "none"
    if not current <= known:
        return (
            f"the database schema is at revision {shown}, which this version does not know "
            "(was it migrated by a newer version?)"
        )
    return (
        f"the database schema is at revision {shown}, this version needs "
        f"{', '.join(sorted(heads))}: {UPGRADE}"
    )


@cache
def _revisions(directory: str) -> tuple[frozenset[str], frozenset[str]]:
    # (heads, every revision) of the migrations folder: read once per process, since the
    # files only change with a new release.
    script = ScriptDirectory(directory)
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return frozenset(script.get_heads()), known
