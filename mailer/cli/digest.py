"""``flask digest ...``: build an issue (digest room) and send it (delivery room)."""

import click

from .send import digest_send_command


@click.group("digest")
def digest_cli():
    """Build and send the weekly digest."""


@digest_cli.command("build")
def build_command():
    """Not implemented yet (placeholder written by the lead; the digest owner replaces it)."""
    raise click.ClickException("not implemented yet")


digest_cli.add_command(digest_send_command)
