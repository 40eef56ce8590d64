"""`deliverability check`: offline verdicts for real; DNS answers from a named fake.

The offline path is real: the resolver is pointed at a loopback port where nothing listens
(MAILER_DNS_NAMESERVERS), so the check sees what a machine without DNS sees. The online path
needs the internet, so it gets ``fake_dns_with_published_records`` instead.
"""

import os
from pathlib import Path

import pytest

from mailer import create_app
from mailer.delivery import deliverability
from mailer.delivery.message import dkim
from tests.support.smtpd import free_port

SELECTOR = "mail2026"
RELAY_IP = "93.184.215.14"  # never contacted: the check only names it in records


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory) -> bytes:
    """A 2048-bit test key (PEM)."""
    return dkim.generate_private_key()


def write_key(directory: Path, pem: bytes, mode: int = 0o600) -> Path:
    path = directory / "dkim.pem"
    dkim.write_private_key(path, pem)
    os.chmod(path, mode)
    return path


@pytest.fixture
def dkim_app_config(app_config, key_pem, tmp_path):
    """app_config with DKIM on and DNS pointed at a loopback port nobody answers."""
    app_config.update(
        MAILER_DKIM_DOMAIN="example.com",
        MAILER_DKIM_SELECTOR=SELECTOR,
        MAILER_DKIM_PRIVATE_KEY=str(write_key(tmp_path, key_pem)),
        MAILER_DNS_NAMESERVERS=f"127.0.0.1#{free_port()}",
        MAILER_DNS_TIMEOUT=0.5,
    )
    return app_config


def test_check_prints_offline_verdicts_and_records(dkim_app_config, runner):
    result = runner.invoke(args=["deliverability", "check"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "OK   Unsubscribe: one-click URL https://news.example.com/unsubscribe/<token>" in out
    assert f"OK   DKIM: key {dkim_app_config['MAILER_DKIM_PRIVATE_KEY']}: 2048 bits" in out
    assert "OK   DKIM: a sample digest message was signed and verified with this key" in out
    assert "DNS: not reachable" in out and "records were not looked up" in out
    assert f'{SELECTOR}._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p=' in out
    assert 'example.com. IN TXT "v=spf1 ip4:<your relay\'s sending IP> -all"' in out
    assert '_dmarc.example.com. IN TXT "v=DMARC1; p=none;' in out
    assert "IN PTR" in out


@pytest.fixture
def http_app_config(app_config):
    """app_config with a plain-http base URL and no DKIM key."""
    app_config.update(MAILER_BASE_URL="http://news.example.com")
    return app_config


def test_check_fails_on_an_http_unsubscribe_url_and_warns_without_dkim(http_app_config, runner):
    result = runner.invoke(args=["deliverability", "check", "--offline"])
    assert result.exit_code != 0
    assert "FAIL Unsubscribe: MAILER_BASE_URL is 'http://news.example.com'" in result.output
    assert "WARN DKIM: not configured" in result.output
    assert "DNS: not asked (--offline)" in result.output


def _config(tmp_path: Path, pem: bytes, mode: int = 0o600, **overrides):
    settings = {
        "SQLALCHEMY_DATABASE_URI": "sqlite://",
        "MAILER_DKIM_DOMAIN": "example.com",
        "MAILER_DKIM_SELECTOR": SELECTOR,
        "MAILER_DKIM_PRIVATE_KEY": str(write_key(tmp_path, pem, mode)),
        "MAILER_SMTP_HOST": RELAY_IP,
    }
    settings.update(overrides)
    return create_app(settings).config


def fake_dns_with_published_records(pem: bytes):
    """A fake DNS (no internet here) that has the records the check asks an operator for."""
    txt = dkim.txt_record_value(pem)
    zone = {
        (".", "NS"): ["a.root-servers.net."],
        ("example.com", "TXT"): ["google-site-verification=abc", f"v=spf1 ip4:{RELAY_IP} -all"],
        ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=none; rua=mailto:d@example.com"],
        (f"{SELECTOR}._domainkey.example.com", "TXT"): [txt],
        ("14.215.184.93.in-addr.arpa", "PTR"): ["mail.example.com."],
    }

    def lookup(name: str, rdtype: str) -> list[str]:
        return zone.get((name, rdtype), [])

    return lookup


@pytest.mark.nodb
def test_online_check_finds_the_published_records(tmp_path, key_pem):
    config = _config(tmp_path, key_pem)
    report = deliverability.check_deliverability(config, fake_dns_with_published_records(key_pem))
    assert report.dns_reachable and not report.errors
    verdicts = {(c.topic, c.level, c.message) for c in report.checks}
    assert ("SPF", "ok", f"published: v=spf1 ip4:{RELAY_IP} -all") in verdicts
    assert ("DMARC", "ok", "published: v=DMARC1; p=none; rua=mailto:d@example.com") in verdicts
    assert ("DKIM", "ok", f"{SELECTOR}._domainkey.example.com publishes this key") in verdicts
    assert ("PTR", "ok", "published: mail.example.com.") in verdicts
    assert f'example.com. IN TXT "v=spf1 ip4:{RELAY_IP} -all"' in report.records
    assert "14.215.184.93.in-addr.arpa. IN PTR" in report.records[-1]


@pytest.mark.nodb
def test_online_check_reports_a_different_published_key_and_missing_records(tmp_path, key_pem):
    other = dkim.generate_private_key()
    config = _config(tmp_path, key_pem)
    published = fake_dns_with_published_records(other)

    def fake_dns_without_spf_dmarc(name: str, rdtype: str) -> list[str]:
        return (
            []
            if name.endswith("example.com") and "_domainkey" not in name
            else published(name, rdtype)
        )

    report = deliverability.check_deliverability(config, fake_dns_without_spf_dmarc)
    levels = {(c.topic, c.level) for c in report.checks}
    assert ("DKIM", "error") in levels and ("SPF", "warning") in levels
    assert ("DMARC", "warning") in levels
    assert any("publishes a different key" in c.message for c in report.errors)


@pytest.mark.nodb
def test_weak_key_file_mode_and_unaligned_domain_are_warnings(tmp_path):
    small = dkim.generate_private_key(bits=1024)
    config = _config(tmp_path, small, mode=0o644, MAILER_DKIM_DOMAIN="mailer-host.net")
    report = deliverability.check_deliverability(config, None)
    warnings = [c.message for c in report.checks if c.level == "warning"]
    assert any("1024 bits (2048 recommended)" in w for w in warnings)
    assert any("mode is 644" in w for w in warnings)
    assert any("not aligned with the From domain example.com" in w for w in warnings)
    assert not report.errors  # the sample still signs and verifies with its own domain


@pytest.mark.nodb
def test_real_resolver_without_an_answering_server_is_unreachable():
    lookup = deliverability.dns_lookup(
        {"MAILER_DNS_NAMESERVERS": f"127.0.0.1#{free_port()}", "MAILER_DNS_TIMEOUT": 0.3}
    )
    with pytest.raises(deliverability.DnsUnreachable):
        lookup(".", "NS")
