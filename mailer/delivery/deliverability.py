"""What an operator must set up so that Gmail and Yahoo accept the digest, and what we can check.

Offline (always): the From address, the one-click unsubscribe URL (https, RFC 8058 §3.1),
the DKIM key (size, file mode) and a sample digest message signed with it and verified
against the public key derived from it (dkimpy with a ``dnsfunc`` that answers from the
key, i.e. what DNS will say once the record is published). Online (only when DNS answers):
the published SPF, DMARC and DKIM records and the relay's PTR record.
"""

import importlib.util
import ipaddress
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

from .. import clock
from . import message
from .message import dkim as dkim_keys
from .message.headers import HeaderValueError, list_id_value, sender

# A lookup answers (name, "TXT" | "PTR") with the record strings ([] when there are none)
# and raises DnsUnreachable when no resolver answers.
Lookup = Callable[[str, str], list[str]]


class DnsUnreachable(Exception):
    """No DNS resolver answered (offline, or a resolver that cannot reach the internet)."""


@dataclass(frozen=True)
class Check:
    """One verdict: level "ok" | "warning" | "error" | "info", a topic and a sentence."""

    level: str
    topic: str
    message: str


@dataclass
class Report:
    """The verdicts, the DNS records to publish, and whether DNS could be asked."""

    checks: list[Check] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    dns_reachable: bool = False

    def add(self, level: str, topic: str, message: str) -> None:
        """Append a :class:`Check`."""
        self.checks.append(Check(level, topic, message))

    @property
    def errors(self) -> list[Check]:
        """The checks of level "error"."""
        return [c for c in self.checks if c.level == "error"]


def check_deliverability(config: Mapping, lookup: Lookup | None) -> Report:
    """Check the sending set-up offline and, when ``lookup`` reaches DNS, online.

    Args:
        config: the app config (MAILER_FROM, MAILER_BASE_URL, MAILER_DKIM_*, MAILER_SMTP_HOST).
        lookup: a DNS lookup (see :data:`Lookup`), e.g. :func:`dns_lookup`; None skips DNS.

    Returns:
        A :class:`Report`; never raises for a bad setting (it becomes an "error" check).
    """
    report = Report()
    try:
        _name, address, domain = sender(config)
    except HeaderValueError as exc:
        report.add("error", "From", str(exc))
        return report
    report.add("info", "From", f"{address} (the records below are for {domain})")
    _check_unsubscribe(config, report)
    pem = _check_dkim(config, domain, report)
    _add_records(config, domain, pem, report)
    if lookup is not None:
        _check_dns(config, domain, pem, lookup, report)
    return report


def _check_unsubscribe(config: Mapping, report: Report) -> None:
    base = config.get("MAILER_BASE_URL", "")
    if base.startswith("https://"):
        report.add("ok", "Unsubscribe", f"one-click URL {base}/unsubscribe/<token> is https")
    else:
        report.add(
            "error",
            "Unsubscribe",
            f"MAILER_BASE_URL is {base!r}: List-Unsubscribe one-click needs an https URL "
            "(RFC 8058 §3.1); Gmail and Yahoo ignore or penalise others",
        )
    try:
        report.add("info", "List-Id", list_id_value(config))
    except HeaderValueError as exc:
        report.add("error", "List-Id", str(exc))


def _check_dkim(config: Mapping, from_domain: str, report: Report) -> bytes | None:
    try:
        signer = dkim_keys.signer_from_config(config)
    except dkim_keys.DkimConfigError as exc:
        report.add("error", "DKIM", str(exc))
        return None
    if signer is None:
        report.add(
            "warning",
            "DKIM",
            "not configured: Gmail and Yahoo require DKIM from bulk senders; run "
            "`flask --app wsgi dkim keygen` and set MAILER_DKIM_DOMAIN, MAILER_DKIM_SELECTOR, "
            "MAILER_DKIM_PRIVATE_KEY",
        )
        return None
    _check_key(config["MAILER_DKIM_PRIVATE_KEY"], signer.private_key, report)
    if not _aligned(signer.domain, from_domain):
        report.add(
            "warning",
            "DKIM",
            f"d={signer.domain} is not aligned with the From domain {from_domain}: DMARC "
            "passes on DKIM only when they share the organisational domain",
        )
    _check_sample(config, signer, report)
    return signer.private_key


def _check_key(path: str, pem: bytes, report: Report) -> None:
    bits = dkim_keys.key_bits(pem)
    level = "ok" if bits >= dkim_keys.RECOMMENDED_BITS else "warning"
    report.add(level, "DKIM", f"key {path}: {bits} bits (2048 recommended)")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        report.add("warning", "DKIM", f"key file mode is {mode:o}; make it 600 (owner only)")


def _aligned(dkim_domain: str, from_domain: str) -> bool:
    # Relaxed alignment (RFC 7489 §3.1.1), approximated without a public-suffix list.
    return (
        dkim_domain == from_domain
        or from_domain.endswith("." + dkim_domain)
        or dkim_domain.endswith("." + from_domain)
    )


def _check_sample(config: Mapping, signer: dkim_keys.DkimSigner, report: Report) -> None:
    sample = SimpleNamespace(
        id=0,
        number=0,
        subject="Deliverability check",
        text="A sample.\nUnsubscribe: @@UNSUBSCRIBE_URL@@ (@@RECIPIENT@@)\n",
        html='<p>A sample. <a href="@@UNSUBSCRIBE_URL@@">Unsubscribe</a></p>',
        send_started_at=clock.now(),
        created_at=None,
    )
    compiled = message.compile_issue(sample, config)
    signed = compiled.personalise(0, "check@example.com", _url(config))
    answer = dkim_keys.dns_answer_from_key(signer.selector, signer.domain, signer.private_key)
    if dkim_keys.verify(signed, answer):
        report.add("ok", "DKIM", "a sample digest message was signed and verified with this key")
    else:
        report.add("error", "DKIM", "a sample message signed with this key did not verify")
    if signer.ed25519_key:
        _check_ed25519_sample(signer, signed, report)


def _check_ed25519_sample(signer: dkim_keys.DkimSigner, signed: bytes, report: Report) -> None:
    if importlib.util.find_spec("nacl") is None:
        # dkimpy verifies Ed25519 with PyNaCl, a test-only dependency (requirements-dev.txt).
        report.add("info", "DKIM", "Ed25519 signature not verified here: PyNaCl not installed")
        return
    answer = dkim_keys.dns_answer_from_key(
        signer.ed25519_selector, signer.domain, signer.ed25519_key, dkim_keys.ED25519
    )
    if dkim_keys.verify(signed, answer, index=1):
        report.add("ok", "DKIM", "the sample's Ed25519 signature verified with that key")
    else:
        report.add("error", "DKIM", "the sample's Ed25519 signature did not verify")


def _url(config: Mapping) -> str:
    return f"{config.get('MAILER_BASE_URL', '').rstrip('/')}/unsubscribe/{message.TEST_TOKEN}"


def _relay_ip(config: Mapping) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(config.get("MAILER_SMTP_HOST", ""))
    except ValueError:
        return None
    return ip if ip.is_global else None


def _add_records(config: Mapping, domain: str, pem: bytes | None, report: Report) -> None:
    if pem is not None:
        selector, dkim_domain = config["MAILER_DKIM_SELECTOR"], config["MAILER_DKIM_DOMAIN"]
        report.records.append(dkim_keys.dns_record(selector, dkim_domain, pem))
        ed_path = config.get("MAILER_DKIM_ED25519_PRIVATE_KEY", "")
        if ed_path:
            ed_selector = config["MAILER_DKIM_ED25519_SELECTOR"]
            ed_key = dkim_keys.read_private_key(ed_path, "MAILER_DKIM_ED25519_PRIVATE_KEY")
            record = dkim_keys.dns_record(ed_selector, dkim_domain, ed_key, dkim_keys.ED25519)
            report.records.append(record)
    ip = _relay_ip(config)
    mechanism = f"ip{ip.version}:{ip}" if ip else "ip4:<your relay's sending IP>"
    report.records += [
        f'{domain}. IN TXT "v=spf1 {mechanism} -all"',
        f'_dmarc.{domain}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}; '
        'adkim=r; aspf=r"',
        f"{ip.reverse_pointer if ip else '<reverse name of the sending IP>'}. IN PTR "
        "<the relay's host name, whose A/AAAA record points back to that IP>.",
    ]


def _check_dns(config, domain: str, pem: bytes | None, lookup: Lookup, report: Report):
    try:
        lookup(".", "NS")
    except DnsUnreachable as exc:
        report.add("info", "DNS", f"not reachable ({exc}): records were not looked up")
        return
    report.dns_reachable = True
    spf = [r for r in lookup(domain, "TXT") if r.lower().startswith("v=spf1")]
    _verdict(report, "SPF", spf, f"{domain} has no SPF record (v=spf1)")
    dmarc = [r for r in lookup(f"_dmarc.{domain}", "TXT") if r.startswith("v=DMARC1")]
    _verdict(report, "DMARC", dmarc, f"_dmarc.{domain} has no DMARC record (Gmail requires one)")
    if pem is not None:
        _check_published_key(config, pem, lookup, report)
    ip = _relay_ip(config)
    if ip is not None:
        _verdict(report, "PTR", lookup(ip.reverse_pointer, "PTR"), f"{ip} has no PTR record")


def _verdict(report: Report, topic: str, found: list[str], missing: str) -> None:
    if found:
        report.add("ok", topic, f"published: {found[0]}")
    else:
        report.add("warning", topic, missing)


def _check_published_key(config, pem: bytes, lookup: Lookup, report: Report) -> None:
    name = f"{config['MAILER_DKIM_SELECTOR']}._domainkey.{config['MAILER_DKIM_DOMAIN']}"
    published = lookup(name, "TXT")
    wanted = f"p={dkim_keys.public_key_b64(pem)}"
    if any(wanted in record.replace(" ", "") for record in published):
        report.add("ok", "DKIM", f"{name} publishes this key")
    elif published:
        report.add("error", "DKIM", f"{name} publishes a different key than the configured one")
    else:
        report.add("warning", "DKIM", f"{name} has no TXT record yet")


def dns_lookup(config: Mapping) -> Lookup:
    """Return a :data:`Lookup` over dnspython, MAILER_DNS_TIMEOUT seconds per query.

    Asks MAILER_DNS_NAMESERVERS ("IP" or "IP#PORT", comma-separated) when set, else the
    system's resolvers. A resolver that cannot resolve the root zone counts as unreachable
    (a sandbox resolver that knows only a few names says NXDOMAIN for everything else).
    """
    # dnspython is imported here, by the one command that asks DNS, not by every start.
    import dns.exception  # noqa: PLC0415
    import dns.resolver  # noqa: PLC0415

    timeout = float(config.get("MAILER_DNS_TIMEOUT", 3.0))
    resolver = _resolver(config.get("MAILER_DNS_NAMESERVERS", ""))

    def lookup(name: str, rdtype: str) -> list[str]:
        try:
            answer = resolver.resolve(name, rdtype, lifetime=timeout, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
            if name == ".":
                raise DnsUnreachable("the resolver cannot resolve the root zone") from exc
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsUnreachable(f"{type(exc).__name__} within {timeout:g} s") from exc
        return [_record_text(record) for record in answer]

    return lookup


def _resolver(nameservers: str):
    import dns.nameserver  # noqa: PLC0415 - see dns_lookup
    import dns.resolver  # noqa: PLC0415

    if not nameservers.strip():
        return dns.resolver.Resolver()
    resolver = dns.resolver.Resolver(configure=False)
    servers = []
    for entry in nameservers.split(","):
        address, _, port = entry.strip().partition("#")
        servers.append(dns.nameserver.Do53Nameserver(address, int(port or 53)))
    resolver.nameservers = servers
    return resolver


def _record_text(record) -> str:
    strings = getattr(record, "strings", None)
    if strings is not None:  # TXT: its character-strings joined (RFC 7208 §3.3)
        return b"".join(strings).decode("utf-8", "replace")
    return record.to_text()
