"""``flask --app wsgi create-admin EMAIL``: add an admin (or give one a new password).

The password is never a command-line argument (it would stay in the shell history and in
``ps``): it is asked for twice at a terminal, or read as the first line of standard input
(``printf '%s\\n' "$PASSWORD" | flask --app wsgi create-admin admin@example.com``).
"""

import sys

import click
from flask.cli import with_appcontext

from ..admin.accounts import MIN_PASSWORD_LENGTH, AdminAccountError, create_admin, set_password
from ..extensions import db


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt(
            f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@click.command("create-admin")
@click.argument("email")
@click.option(
    "--reset-password",
    is_flag=True,
    help="Set a new password for an existing admin instead of adding one.",
)
@with_appcontext
def create_admin_command(email: str, reset_password: bool) -> None:
    """Add an admin who signs in at /admin with EMAIL and a password read from the prompt
    (hidden, asked twice) or from the first line of standard input."""
    password = _read_password()
    try:
        if reset_password:
            admin = set_password(db.session, email, password)
        else:
            admin = create_admin(db.session, email, password)
        db.session.commit()
    except AdminAccountError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    verb = "has a new password" if reset_password else "can now sign in at /admin/login"
    click.echo(f"Admin {admin.email} {verb}.")
