"""Create or drop a scratch PostgreSQL database: ``python scripts/pgdb.py create|drop|ping NAME``.

Used by scripts/new_migration.sh. The server comes from MAILER_TEST_PG_URL (a URL of any
existing database on it, default the local ``test`` database); exits 1 when it is unreachable.
"""

import os
import sys

from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get(
    "MAILER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def main(action: str, name: str) -> int:
    """Run ``action`` (create, drop or ping) for database ``name``; print its URL on create."""
    try:
        engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if action == "create":
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                print(ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
            elif action == "drop":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report any failure as "unreachable"
        print(f"PostgreSQL at {ADMIN_URL}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
