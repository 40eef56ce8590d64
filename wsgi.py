"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``.

A setting the service cannot run with stops the start with one line naming it, and a command
that dies because the database cannot be reached, or has no tables yet, says so in one line:
no traceback for either.
"""

import sys

from config import ConfigError
from mailer import create_app
from mailer.cli.errors import report_database_errors

# gunicorn's "App failed to load" status: its master then stops, where on any other status it
# would start the failing worker again and again. A `flask` command exits with it too.
APP_LOAD_ERROR = 4

try:
    app = create_app()
except ConfigError as exc:
    print(f"Error: {exc}", file=sys.stderr)
    raise SystemExit(APP_LOAD_ERROR) from None
report_database_errors(app.config["SQLALCHEMY_DATABASE_URI"])
