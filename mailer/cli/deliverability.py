"""Commands: ``dkim keygen`` and ``deliverability check`` (thin entry points)."""

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from .. import delivery

_MARKS = {"ok": "OK  ", "warning": "WARN", "error": "FAIL", "info": "    "}


@click.group("dkim", cls=AppGroup)
def dkim_cli():
    """DKIM keys (RFC 6376)."""


@dkim_cli.command("keygen")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the private key (PEM, mode 600). Default: instance/dkim-SELECTOR.pem.",
)
@click.option(
    "--selector",
    default=None,
    help="DKIM selector (default MAILER_DKIM_SELECTOR or 'mail'; with --ed25519, "
    "MAILER_DKIM_ED25519_SELECTOR or 'mail-ed25519').",
)
@click.option(
    "--domain",
    default=None,
    help="Signing domain (default MAILER_DKIM_DOMAIN or the MAILER_FROM domain).",
)
@click.option(
    "--ed25519",
    "ed25519",
    is_flag=True,
    help="An Ed25519 key for the second signature (RFC 8463) instead of a 2048-bit RSA key.",
)
def keygen_command(out, selector, domain, ed25519):
    """Write a new DKIM key and print the DNS TXT record to publish."""
    config = current_app.config
    if ed25519:
        selector = selector or config.get("MAILER_DKIM_ED25519_SELECTOR") or "mail-ed25519"
    else:
        selector = selector or config.get("MAILER_DKIM_SELECTOR") or "mail"
    domain = domain or config.get("MAILER_DKIM_DOMAIN") or _from_domain(config)
    path = Path(out) if out else Path(current_app.instance_path) / f"dkim-{selector}.pem"
    pem = delivery.generate_ed25519_key() if ed25519 else delivery.generate_private_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        delivery.write_private_key(path, pem)
    except FileExistsError as exc:
        raise click.ClickException(f"{path} exists; it is not overwritten (use --out)") from exc
    kind = "ed25519" if ed25519 else "rsa"
    what = "an Ed25519" if ed25519 else f"a {delivery.key_bits(pem)}-bit RSA"
    click.echo(f"Wrote {what} key to {path} (mode 600).")
    click.echo("Publish this DNS record:\n")
    click.echo(delivery.dns_record(selector, domain, pem, kind))
    click.echo("\nThen set:")
    if ed25519:
        click.echo(f"  MAILER_DKIM_ED25519_SELECTOR={selector}")
        click.echo(f"  MAILER_DKIM_ED25519_PRIVATE_KEY={path.resolve()}")
        click.echo("beside the RSA settings (the Ed25519 signature is a second one).")
        return
    click.echo(f"  MAILER_DKIM_DOMAIN={domain}")
    click.echo(f"  MAILER_DKIM_SELECTOR={selector}")
    click.echo(f"  MAILER_DKIM_PRIVATE_KEY={path.resolve()}")


def _from_domain(config) -> str:
    try:
        return delivery.sender(config)[2]
    except delivery.HeaderValueError as exc:
        raise click.ClickException(f"{exc}; or pass --domain") from exc


@click.group("deliverability", cls=AppGroup)
def deliverability_cli():
    """Check the set-up that Gmail and Yahoo look at (DKIM, SPF, DMARC, PTR, unsubscribe)."""


@deliverability_cli.command("check")
@click.option("--offline", is_flag=True, help="Do not ask DNS at all.")
def check_command(offline):
    """Print what is set up, what to publish in DNS, and what could be verified."""
    config = current_app.config
    lookup = None if offline else delivery.dns_lookup(config)
    report = delivery.check_deliverability(config, lookup)
    for check in report.checks:
        click.echo(f"{_MARKS.get(check.level, '    ')} {check.topic}: {check.message}")
    if offline:
        click.echo("     DNS: not asked (--offline)")
    click.echo("\nDNS records to publish (replace the <...> parts):")
    for record in report.records:
        click.echo(f"  {record}")
    if report.errors:
        raise click.ClickException(f"{len(report.errors)} problem(s) to fix before sending")
