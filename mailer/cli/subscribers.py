"""``flask --app wsgi subscribers add|import|list``: thin entry points over the service."""

import io
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from ..extensions import db
from ..models import Subscriber, SubscriberStatus
from ..subscriptions import service
from ..subscriptions.errors import ImportFileError, InvalidAddress, Suppressed


@click.group("subscribers", cls=AppGroup)
def subscribers_cli():
    """Add, import and list subscribers."""


@subscribers_cli.command("add")
@click.argument("email")
@click.option(
    "--confirmed",
    is_flag=True,
    help="The person consented elsewhere: confirm at once (recorded as added by the operator). "
    "Without it they get a confirmation mail.",
)
@click.option(
    "--resubscribe",
    "reason",
    metavar="REASON",
    default=None,
    help="Confirm again an address that unsubscribed, bounced or was erased, for this reason "
    "(recorded in its consent history). Without it such addresses are refused.",
)
def add_command(email: str, confirmed: bool, reason: str | None) -> None:
    """Add EMAIL as pending (a confirmation mail is sent) or, with --confirmed, confirmed."""
    try:
        subscriber = service.add_subscriber(
            db.session,
            email,
            confirmed=confirmed,
            source="cli",
            config=current_app.config,
            resubscribe=reason,
        )
    except (InvalidAddress, Suppressed) as exc:
        raise click.ClickException(f"{email}: {exc}") from exc
    click.echo(f"{subscriber.email}: {subscriber.status} (id {subscriber.id})")


@subscribers_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--confirmed",
    is_flag=True,
    help="Everyone in the file consented elsewhere: confirm them at once.",
)
def import_command(path: Path, confirmed: bool) -> None:
    """Import a CSV file with a column 'email'; bad rows are reported and skipped."""
    try:
        # utf-8-sig: spreadsheets often start their CSV export with a byte-order mark.
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc}); nothing imported") from exc
    try:
        report = service.import_csv(
            db.session,
            io.StringIO(text, newline=""),
            confirmed=confirmed,
            source=f"import:{path.name}",
            config=current_app.config,
        )
    except ImportFileError as exc:
        raise click.ClickException(f"{path}: {exc}; nothing imported") from exc
    for line, message in report.invalid:
        click.echo(f"line {line}: {message}", err=True)
    click.echo(
        f"added {report.added}, updated {report.updated}, duplicates {report.duplicates}, "
        f"suppressed {report.suppressed}, invalid {len(report.invalid)}"
    )


@subscribers_cli.command("list")
@click.option("--status", type=click.Choice(SubscriberStatus.ALL), help="Only this status.")
def list_command(status: str | None) -> None:
    """List subscribers (id, status, address, created), oldest first."""
    query = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
    if status:
        query = query.where(Subscriber.status == status)
    for subscriber in db.session.execute(query).scalars():
        created = subscriber.created_at.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{subscriber.id}\t{subscriber.status}\t{subscriber.email}\t{created}")
