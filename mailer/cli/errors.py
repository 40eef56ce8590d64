"""One line instead of a traceback when a ``flask`` command cannot reach the database, or
finds it without the tables (never migrated, or migrated by an older version).

Every command dies the same way when the database is down (``db upgrade`` in Flask-Migrate's
code, ``worker``, ``digest send`` and the rest in ours), so the translation sits once at the
process's exit (``sys.excepthook``, installed by ``wsgi.py``) rather than in every command.
"""

import sys

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

# PostgreSQL's SQLSTATE for "relation does not exist" (undefined_table; PostgreSQL manual,
# appendix A); SQLite has no codes, only the message "no such table: NAME".
UNDEFINED_TABLE = "42P01"


def unreachable_database_message(exc: BaseException, url: str) -> str | None:
    """Return ``"cannot reach the database at URL: REASON"``, or None for any other error.

    Args:
        exc: the exception a command died of; one it was explicitly raised from
            (``raise ... from``) counts too.
        url: the database URL; shown without its password.

    A failed connect is an OperationalError with no SQL statement: SQLAlchemy wraps what the
    driver raises while connecting that way. An OperationalError of a statement (a missing
    table, a lock timeout) is not "cannot reach" and keeps its traceback.
    """
    while exc is not None and not isinstance(exc, OperationalError):
        exc = exc.__cause__
    if exc is None or exc.statement is not None:
        return None
    reason = " ".join(str(exc.orig).split())  # psycopg's reason spans two lines
    shown = make_url(url).render_as_string(hide_password=True)
    return f"cannot reach the database at {shown}: {reason}"


def missing_tables_message(exc: BaseException, url: str) -> str | None:
    """Return ``"the database at URL has no tables yet ...: run ... db upgrade"``, or None.

    Args:
        exc: the exception a command died of; one it was explicitly raised from counts too.
        url: the database URL; shown without its password.

    A statement that names a table the database does not have fails with "no such table"
    (SQLite's OperationalError) or UndefinedTable (PostgreSQL's SQLSTATE 42P01, a
    ProgrammingError): the schema was never made, or is older than this version's models.
    """
    while exc is not None and not isinstance(exc, DBAPIError):
        exc = exc.__cause__
    if exc is None or not _is_missing_table(exc.orig):
        return None
    shown = make_url(url).render_as_string(hide_password=True)
    return (
        f"the database at {shown} has no tables yet (or is older than this version): "
        "run `flask --app wsgi db upgrade`"
    )


def _is_missing_table(error: BaseException | None) -> bool:
    if getattr(error, "sqlstate", None) == UNDEFINED_TABLE:  # psycopg 3
        return True
    return str(error).startswith("no such table:")  # sqlite3.OperationalError


def report_database_errors(url: str) -> None:
    """Make this process print one line, not a traceback, if it dies for want of the database
    (:func:`unreachable_database_message`) or of its tables (:func:`missing_tables_message`).

    Args:
        url: the database URL of the app (``SQLALCHEMY_DATABASE_URI``).

    Wraps ``sys.excepthook``, which Python calls only for an exception nothing caught, just
    before it exits with status 1; other exceptions go to the previous hook unchanged. Web
    requests never get there (Flask answers them with the 500 page). For entry points only.
    """
    previous = sys.excepthook

    def hook(kind, exc, traceback) -> None:
        message = unreachable_database_message(exc, url) or missing_tables_message(exc, url)
        if message is None:
            previous(kind, exc, traceback)
        else:
            print(f"Error: {message}", file=sys.stderr)

    sys.excepthook = hook
