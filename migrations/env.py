"""Alembic environment for Flask-Migrate: the app's engine and ``db.metadata``.

Run through ``flask --app wsgi db ...`` (or ``flask_migrate.upgrade()`` in an app context),
never through plain ``alembic``: the database URL comes from the app's configuration.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
logger = logging.getLogger("alembic.env")

# Configure logging from alembic.ini only when nobody else did (the CLI); inside the dev server
# or the test suite that would replace their handlers and silence the app's loggers.
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def render_item(type_, obj, autogen_context):
    """Render the app's column types as plain SQLAlchemy types in migration scripts.

    ``UTCDateTime`` only converts values in Python; its column is a plain DATETIME/TIMESTAMP,
    and a migration must not import application code that may change later.
    """
    if type_ == "type" and type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime()"
    return False


def _skip_empty_revision(context_, revision, directives):
    # `flask db migrate` with no schema change writes no empty revision file.
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected.")


def _configure_args() -> dict:
    args = dict(current_app.extensions["migrate"].configure_args)
    args.setdefault("process_revision_directives", _skip_empty_revision)
    args.setdefault("render_item", render_item)
    args.setdefault("compare_type", True)
    return args


def run_migrations_offline() -> None:
    """Emit the SQL for ``flask db upgrade --sql`` without connecting."""
    engine = current_app.extensions["migrate"].db.engine
    context.configure(
        url=engine.url.render_as_string(hide_password=False),
        target_metadata=current_app.extensions["migrate"].db.metadata,
        literal_binds=True,
        **_configure_args(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a connection of the app's engine."""
    engine = current_app.extensions["migrate"].db.engine
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=current_app.extensions["migrate"].db.metadata,
            **_configure_args(),
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
