"""``flask digest list|next|test|pause|resume|cancel``: thin entry points over the digest room
(what the next run sends) and the delivery room (status changes, test copies)."""

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from .. import clock, delivery
from ..digest import outlook
from ..extensions import db
from ..models import MAX_ISSUE_NUMBER, Issue

NUMBER = click.IntRange(1, MAX_ISSUE_NUMBER)


@click.command("list")
@with_appcontext
def list_command():
    """List every issue, newest first: number, period, kind, status, items and deliveries."""
    issues = db.session.scalars(select(Issue).order_by(Issue.number.desc())).all()
    if not issues:
        click.echo("No issue yet.")
    for issue in issues:
        items = ", ".join(f"{n} {name}" for name, n in outlook.item_counts(issue).items())
        counts = delivery.status_counts(db.session, issue.id)
        done = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        click.echo(
            f"#{issue.number}  {issue.period}  {issue.kind:9}  {issue.status:9}  "
            f"items: {items}  deliveries: {done or 'none'}"
        )


@click.command("next")
@with_appcontext
def next_command():
    """Say when the next scheduled run is (ISO 8601, MAILER_TIMEZONE) and what it sends."""
    try:
        run = outlook.next_run(db.session, current_app.config, clock.now())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Next scheduled run: {run.at.isoformat()} ({run.period})")
    click.echo(f"It {run.describe()}.")


@click.command("test")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--number", type=NUMBER, help="Issue to copy (default: the next issue).")
@with_appcontext
def test_command(addresses: tuple[str, ...], number: int | None):
    """Send a test copy ("[TEST]" subject) of the next issue, or of issue NUMBER, to each
    ADDRESS. The next issue is not built for it: an unbuilt one is copied as previewed.

    Exits with status 1 when a copy was refused or could not be sent.
    """
    config = current_app.config
    if number is None:
        issue, _built = outlook.next_issue(db.session, config, clock.now())
    else:
        issue = delivery.issue_by_number(db.session, number)
        if issue is None:
            raise click.ClickException(f"there is no issue #{number}")
    results = delivery.send_test_copies(issue, list(addresses), config)
    db.session.rollback()  # a preview is never stored
    for result in results:
        state = "sent" if result.ok else "FAILED"
        click.echo(f"Test copy of #{issue.number} to {result.recipient}: {state} ({result.reply})")
    if not all(result.ok for result in results):
        raise SystemExit(1)


def _status_command(name: str, action: str, done: str):
    @click.command(name)
    @click.argument("number", type=NUMBER)
    @with_appcontext
    def command(number: int):
        issue = delivery.issue_by_number(db.session, number)
        if issue is None:
            raise click.ClickException(f"there is no issue #{number}")
        try:
            delivery.change_issue_status(db.session, issue, action, reason=f"by `digest {name}`")
            db.session.commit()
        except delivery.InvalidTransition as exc:
            db.session.rollback()
            raise click.ClickException(f"issue #{number} cannot be {done}: {exc}") from exc
        click.echo(f"Issue #{number} {done}.")

    command.__doc__ = f"{name.capitalize()} the send of issue NUMBER."
    return command


pause_command = _status_command("pause", "pause", "paused")
resume_command = _status_command("resume", "resume", "resumed")
cancel_command = _status_command("cancel", "cancel", "cancelled")
cancel_command.help = (
    "Cancel issue NUMBER: a draft gives its items back to the next issue (its week stays "
    "open: rebuild it, or let the weekly run take them); a send stops."
)
LIFECYCLE_COMMANDS = (
    list_command,
    next_command,
    test_command,
    pause_command,
    resume_command,
    cancel_command,
)
