"""``flask --app wsgi bounces receive|fetch``: bounce reports in, thin over delivery's processor."""

import logging
import poplib
import sys
from imaplib import IMAP4

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ..delivery import MAX_REPORT_BYTES, ReportTooLarge, fetch_mailbox, process_report
from ..extensions import db
from .errors import missing_tables_message

log = logging.getLogger(__name__)

# sysexits.h: the MTA keeps the message and tries the pipe again later.
EX_TEMPFAIL = 75


@click.group("bounces", cls=AppGroup)
def bounces_cli():
    """Take in bounce and complaint reports."""


@bounces_cli.command("receive")
@click.option(
    "--recipient",
    default=None,
    help="The address the report was delivered to (Postfix: ${original_recipient}); "
    "searched for a VERP token like the report itself.",
)
def receive_command(recipient: str | None) -> None:
    """Process one report read on standard input (a Postfix pipe, an alias, procmail).

    Exits 0 when the report was processed or deliberately ignored (an auto-reply, nothing
    recognised, a report over 1 MiB), 75 (EX_TEMPFAIL) when the database is unreachable,
    so that the MTA retries.
    """
    raw = sys.stdin.buffer.read(MAX_REPORT_BYTES + 1)
    try:
        outcome = process_report(db.engine, current_app.config, raw, "receive", recipient)
    except ReportTooLarge as exc:
        click.echo(f"ignored: {exc}", err=True)
        return
    except (OperationalError, InterfaceError) as exc:
        click.echo(f"Error: cannot reach the database, try again later: {exc.orig}", err=True)
        sys.exit(EX_TEMPFAIL)
    except DBAPIError as exc:
        message = missing_tables_message(exc, current_app.config["SQLALCHEMY_DATABASE_URI"])
        if message is None:
            raise
        click.echo(f"Error: {message}", err=True)
        sys.exit(EX_TEMPFAIL)
    detail = ", ".join(f"subscriber {sid}: {kind}" for sid, kind in outcome.recorded)
    click.echo(f"{outcome.status}: {detail or outcome.reason}")


@bounces_cli.command("fetch")
def fetch_command() -> None:
    """Poll MAILER_BOUNCE_MAILBOX once (the worker does it every MAILER_BOUNCE_POLL_MINUTES)."""
    from imap_tools.errors import ImapToolsError  # here: imap_tools loads only to poll

    if not current_app.config.get("MAILER_BOUNCE_MAILBOX"):
        raise click.ClickException("MAILER_BOUNCE_MAILBOX is not set: there is no mailbox")
    try:
        summary = fetch_mailbox(db.engine, current_app.config)
    except (OSError, IMAP4.error, poplib.error_proto, ImapToolsError) as exc:
        raise click.ClickException(f"cannot read MAILER_BOUNCE_MAILBOX: {exc}") from exc
    click.echo(f"{summary.processed} processed, {summary.kept} kept (flagged)")
