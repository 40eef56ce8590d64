"""Commands: TODO (placeholder written by the lead; the owner replaces it)."""

import click


@click.group("digest")
def digest_cli():
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")
