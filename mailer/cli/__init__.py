"""``flask --app wsgi ...`` commands: thin entry points over the services, one module a room."""

from flask import Flask


def register_commands(app: Flask) -> None:
    """Attach every command group to ``app.cli``."""
    from .admin import create_admin_command
    from .bounces import bounces_cli
    from .deliverability import deliverability_cli, dkim_cli
    from .digest import digest_cli
    from .feeds import feeds_cli, items_cli
    from .send import send_pending_command
    from .subscribers import subscribers_cli
    from .worker import worker_command

    for command in (
        bounces_cli,
        create_admin_command,
        deliverability_cli,
        dkim_cli,
        digest_cli,
        feeds_cli,
        items_cli,
        send_pending_command,
        subscribers_cli,
        worker_command,
    ):
        app.cli.add_command(command)
