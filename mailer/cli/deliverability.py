"""Commands: TODO (placeholder written by the lead; the owner replaces it)."""

import click


@click.group("deliverability")
def deliverability_cli():
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")


@click.group("dkim")
def dkim_cli():
    """Not implemented yet."""
