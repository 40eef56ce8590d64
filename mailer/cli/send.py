"""Commands: TODO (placeholder written by the lead; the owner replaces it)."""

import click


@click.command("send-pending")
def send_pending_command():
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")


@click.command("send")
@click.argument("number", required=False, type=int)
def digest_send_command(number):
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")
