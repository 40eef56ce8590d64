"""The signup benchmark's baseline: a bare Flask app that inserts one subscriber row per POST.

Same database and the same SQLite settings (WAL, busy timeout) as the real app; no
validation, no rate limit, no confirmation mail. Run by gunicorn as ``bench.bare_app:app``.
"""

import os
from datetime import UTC, datetime
from functools import cache

from flask import Flask, request
from sqlalchemy import create_engine, event, text

app = Flask(__name__)

INSERT = text(
    "INSERT INTO subscriber (email, status, version, source, created_at, "
    "confirmations_that_day, hard_bounces, soft_failures_in_row) "
    "VALUES (:email, 'pending', 1, 'bench', :now, 0, 0, 0)"
)


PRAGMAS = ("journal_mode=WAL", "busy_timeout=15000", "foreign_keys=ON", "synchronous=NORMAL")


def _pragmas(dbapi_connection, _record) -> None:
    # The same settings as mailer.create_app gives SQLite.
    cursor = dbapi_connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


@cache
def _engine():
    engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _pragmas)
    return engine


@app.post("/insert")
def insert():
    """Insert the posted ``email`` as a pending subscriber; 200 "ok"."""
    with _engine().begin() as conn:
        conn.execute(INSERT, {"email": request.form["email"], "now": datetime.now(UTC)})
    return "ok"
