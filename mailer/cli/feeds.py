"""Commands: TODO (placeholder written by the lead; the owner replaces it)."""

import click


@click.group("feeds")
def feeds_cli():
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")


@click.group("items")
def items_cli():
    """Not implemented yet."""
