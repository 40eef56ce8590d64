"""Commands: TODO (placeholder written by the lead; the owner replaces it)."""

import click


@click.group("subscribers")
def subscribers_cli():
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")
