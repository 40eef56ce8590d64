"""``flask digest ...``: build an issue (digest room) and send it (delivery room)."""

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .. import clock
from ..digest import build, preflight, schedule, spamcheck
from ..digest.errors import DigestError
from ..extensions import db
from ..models import Section
from .lifecycle import LIFECYCLE_COMMANDS
from .send import digest_send_command


@click.group("digest", cls=AppGroup)
def digest_cli():
    """Build and send the weekly digest."""


@digest_cli.command("build")
@click.option(
    "--period",
    help="ISO week to build, e.g. 2026-W50 (default: the week of the next scheduled send).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Build with fewer new items than MAILER_MIN_ITEMS (never with none).",
)
@with_appcontext
def build_command(period: str | None, force: bool):
    """Build (or show) the issue of a period, then run the preflight checks on it.

    With too few new items (fewer than MAILER_MIN_ITEMS; with --force: none) nothing is
    built: it says why and exits with status 1.
    """
    config = current_app.config
    try:
        # The period of the weekly run that will send it, so that the run finds it.
        period = period or schedule.build_period(db.session, config, clock.now())
        existed = build.find_issue(db.session, period) is not None
        issue = build.build_issue(db.session, period=period, force=force)
    except (DigestError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if issue is None:
        reason = build.shortfall(db.session, config, force=force) or "no new items"
        hint = "" if force else " (--force builds with fewer than MAILER_MIN_ITEMS, never none)"
        click.echo(f"No issue built for {period}: {reason}{hint}.", err=True)
        raise SystemExit(1)
    counts = {section: 0 for section in Section.ALL}
    for item in issue.items:
        counts[item.section] = counts.get(item.section, 0) + 1
    verb = "already existed" if existed else "built"
    click.echo(f"Issue #{issue.number} for {issue.period} {verb} (status {issue.status}).")
    click.echo("Items: " + ", ".join(f"{count} {name}" for name, count in counts.items()))
    click.echo(f"Subject: {issue.subject}")
    _echo_findings(issue, config)


def _echo_findings(issue, config) -> None:
    # Stored with the issue, so that `digest send` of this issue does not run them again.
    result = preflight.stored_findings(issue, config)
    db.session.commit()
    findings = result.findings
    if result.spam_score is not None:
        click.echo(f"SpamAssassin score: {result.spam_score}")
    elif spamcheck.spamassassin_path() is not None:
        reasons = [f.message for f in findings if f.code == "spamassassin"]
        click.echo(f"SpamAssassin score: not available ({'; '.join(reasons) or 'not run'})")
    if not findings:
        click.echo("Preflight: no findings.")
    for finding in findings:
        click.echo(f"Preflight {finding.level}: [{finding.code}] {finding.message}")


digest_cli.add_command(digest_send_command)
for _command in LIFECYCLE_COMMANDS:
    digest_cli.add_command(_command)
