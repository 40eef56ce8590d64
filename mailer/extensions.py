"""Flask extensions, created bare here and bound to an app in ``create_app``."""

import logging
import sys

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Stable constraint names so that Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


class StorageErrorLog(logging.LoggerAdapter):
    """Flask-Limiter's log, in the app's (``mailer.ratelimit``), with the storage's error.

    Flask-Limiter's own logger (``flask-limiter``) has a NullHandler, so under gunicorn its
    warnings are shown nowhere. And when the rate-limit storage fails, it logs "Rate limit
    storage unreachable - falling back to in-memory storage" at WARNING without the error;
    it does so inside the ``except`` that caught it, so the error is added here from
    ``sys.exc_info()`` (Redis refused, timed out, ...). Other levels pass unchanged.
    """

    def log(self, level, msg, *args, **kwargs) -> None:
        """Log like ``Logger.log``; a WARNING logged inside an ``except`` gets its error."""
        error = sys.exc_info()[1]
        if level == logging.WARNING and error is not None:
            reason = f"{type(error).__name__}: {' '.join(str(error).split())}"
            msg = f"{msg}: {reason.replace('%', '%%') if args else reason}"
        super().log(level, msg, *args, **kwargs)


limiter.logger = StorageErrorLog(logging.getLogger("mailer.ratelimit"))
login_manager = LoginManager()
