#!/usr/bin/env bash
# Regenerate the initial Alembic revision from mailer/models.py, from scratch.
#
# The schema is still young, so there is one revision (0001) and no deployed database to
# upgrade from it: this deletes migrations/versions/*.py and autogenerates the revision against
# an empty scratch PostgreSQL database, then checks that the revision upgrades an empty SQLite
# database and an empty PostgreSQL database to a schema equal to the models (`flask db check`).
#
# Why PostgreSQL and not SQLite for the autogenerate step: Alembic cannot handle
# expression-based indexes on SQLite and silently leaves them out (here the unique index on
# lower(subscriber.email)); on PostgreSQL it writes them. The output is otherwise identical.
# The server comes from MAILER_TEST_PG_URL (default: the local `test` database's server).
#
# Once a release is deployed, add new revisions with `flask --app wsgi db migrate` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d)
PGDB="mailer_regen_$$"
cleanup() {
  "$PY" scripts/pgdb.py drop "$PGDB" >/dev/null 2>&1 || true
  "$PY" scripts/pgdb.py drop "${PGDB}_check" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export FLASK_DEBUG=1 MAILER_INSTANCE_DIR="$WORK"

if ! "$PY" scripts/pgdb.py ping; then
  echo "regen_migration: PostgreSQL is needed to autogenerate (see the comment at the top)" >&2
  exit 1
fi

echo "== autogenerate against an empty PostgreSQL database"
DATABASE_URL=$("$PY" scripts/pgdb.py create "$PGDB")
export DATABASE_URL
rm -f migrations/versions/*.py
"$PY" -m flask --app wsgi db migrate -m "initial schema" --rev-id 0001
"$PY" -m ruff format --quiet migrations/versions/

echo "== upgrade an empty SQLite database and compare it with the models"
DATABASE_URL="sqlite:///$WORK/check.sqlite3" "$PY" -m flask --app wsgi db upgrade
DATABASE_URL="sqlite:///$WORK/check.sqlite3" "$PY" -m flask --app wsgi db check

echo "== upgrade an empty PostgreSQL database and compare it with the models"
DATABASE_URL=$("$PY" scripts/pgdb.py create "${PGDB}_check")
"$PY" -m flask --app wsgi db upgrade
"$PY" -m flask --app wsgi db check

echo "regenerated:" migrations/versions/*.py
