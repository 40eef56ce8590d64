"""Commands: TODO (placeholder written by the lead; the owner replaces it)."""

import click


@click.command("worker")
def worker_command():
    """Not implemented yet."""
    raise click.ClickException("not implemented yet")
