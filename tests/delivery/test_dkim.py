"""DKIM: signed digests, test copies and transactional mails verify with dkimpy; keygen.

DNS cannot be asked here, so verification gets its answer from a function the test supplies
(``fake_dns_answering_test_key``), which serves the TXT record made from the test key.
"""

import re
import stat
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization

from mailer import create_app
from mailer.delivery import message as mime
from mailer.delivery.message import dkim
from mailer.models import Issue
from mailer.templating import RenderedMail

SELECTOR = "test2026"
DOMAIN = "example.com"
URL = "https://news.example.com/unsubscribe/tok.42"
STARTED = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def key_path(tmp_path_factory) -> Path:
    """A 2048-bit RSA key written the way `dkim keygen` writes it."""
    path = tmp_path_factory.mktemp("dkim") / "test.pem"
    dkim.write_private_key(path, dkim.generate_private_key())
    return path


@pytest.fixture(scope="module")
def fake_dns_answering_test_key(key_path):
    """A fake DNS (the internet is not reachable here): the TXT record of the test key."""
    record = dkim.txt_record_value(key_path.read_bytes()).encode("ascii")

    def fake_dns_answering_test_key(name: bytes, timeout: float = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return fake_dns_answering_test_key


@pytest.fixture(scope="module")
def config(key_path):
    """Config with DKIM on; no database is used."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "MAILER_DKIM_DOMAIN": DOMAIN,
            "MAILER_DKIM_SELECTOR": SELECTOR,
            "MAILER_DKIM_PRIVATE_KEY": str(key_path),
        }
    )
    return app.config


def issue() -> Issue:
    return Issue(
        id=3,
        number=12,
        period="2026-W50",
        subject="週刊ニュース #12",
        text="News\n東京の求人\nUnsubscribe: @@UNSUBSCRIBE_URL@@ (@@RECIPIENT@@)\n",
        html='<p>東京の求人</p><a href="@@UNSUBSCRIBE_URL@@">Unsubscribe</a> @@RECIPIENT@@',
        created_at=STARTED,
        send_started_at=STARTED,
    )


def signature_tags(raw: bytes) -> dict[str, str]:
    message = message_from_bytes(raw, policy=policy.compat32)
    assert len(message.get_all("DKIM-Signature")) == 1
    value = "".join(message["DKIM-Signature"].split())
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def without_signature(raw: bytes) -> bytes:
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"DKIM-Signature:")
    index = 1
    while lines[index][:1] in (b" ", b"\t"):
        index += 1
    return b"\r\n".join(lines[index:])


@pytest.mark.nodb
def test_personalised_digest_is_signed_and_verifies(config, fake_dns_answering_test_key):
    raw = mime.compile_issue(issue(), config).personalise(42, "reader@example.org", URL)
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkimpy.verify(raw, dnsfunc=fake_dns_answering_test_key)
    tags = signature_tags(raw)
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == (
        "rsa-sha256",
        "relaxed/relaxed",
        DOMAIN,
        SELECTOR,
    )
    signed = tags["h"].lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "mime-version",
                 "content-type", "list-unsubscribe", "list-unsubscribe-post"):  # fmt: skip
        assert name in signed
    # RFC 8058 §4: both List-Unsubscribe headers are covered.
    assert signed.count("list-unsubscribe") == 2 and signed.count("list-unsubscribe-post") == 2


@pytest.mark.nodb
def test_signed_copies_equal_the_reference_apart_from_the_signature(
    config, fake_dns_answering_test_key
):
    fast = mime.compile_issue(issue(), config).personalise(42, "reader@example.org", URL)
    slow = mime.build_message(issue(), 42, "reader@example.org", URL, config)
    assert dkimpy.verify(slow, dnsfunc=fake_dns_answering_test_key)
    assert without_signature(fast) == without_signature(slow)


@pytest.mark.nodb
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (URL.encode(), b"https://evil.example.com/unsubscribe/tok.42"),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),
        (b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nList-Unsubscribe: <https://x.test/>\r\n"),
        (b"Subject: ", b"Subject: Re: "),
    ],
)
def test_a_changed_header_breaks_the_signature(config, fake_dns_answering_test_key, old, new):
    raw = mime.compile_issue(issue(), config).personalise(42, "reader@example.org", URL)
    assert old in raw
    assert not dkimpy.verify(raw.replace(old, new, 1), dnsfunc=fake_dns_answering_test_key)


@pytest.mark.nodb
def test_test_copy_and_transactional_mail_are_signed(config, fake_dns_answering_test_key):
    copy = mime.build_test_message(issue(), "editor@example.org", config)
    assert dkimpy.verify(copy, dnsfunc=fake_dns_answering_test_key)
    mail = RenderedMail("Please confirm", "Confirm: https://news.example.com/confirm/x\n", "")
    confirmation = mime.build_transactional("new@example.org", mail, config)
    assert dkimpy.verify(confirmation, dnsfunc=fake_dns_answering_test_key)
    signed = signature_tags(confirmation)["h"].lower().split(":")
    assert "auto-submitted" in signed and "list-unsubscribe" not in signed


@pytest.mark.nodb
def test_the_key_is_read_once_per_compile(config, key_path, tmp_path, fake_dns_answering_test_key):
    moved = tmp_path / "key.pem"
    moved.write_bytes(key_path.read_bytes())
    compiled = mime.compile_issue(issue(), dict(config, MAILER_DKIM_PRIVATE_KEY=str(moved)))
    moved.unlink()  # personalise must not need the file any more
    raw = compiled.personalise(1, "reader@example.org", URL)
    assert dkimpy.verify(raw, dnsfunc=fake_dns_answering_test_key)


@pytest.mark.nodb
def test_dkim_settings_errors_name_the_setting(config, tmp_path):
    unset = dict(config, MAILER_DKIM_DOMAIN="", MAILER_DKIM_SELECTOR="", MAILER_DKIM_PRIVATE_KEY="")
    assert dkim.signer_from_config(unset) is None
    with pytest.raises(dkim.DkimConfigError, match="MAILER_DKIM_SELECTOR"):
        dkim.signer_from_config(dict(config, MAILER_DKIM_SELECTOR=""))
    with pytest.raises(dkim.DkimConfigError, match="cannot read"):
        dkim.signer_from_config(dict(config, MAILER_DKIM_PRIVATE_KEY=str(tmp_path / "none.pem")))
    not_a_key = tmp_path / "x.pem"
    not_a_key.write_text("hello")
    with pytest.raises(dkim.DkimConfigError, match="not an unencrypted PEM key"):
        mime.compile_issue(issue(), dict(config, MAILER_DKIM_PRIVATE_KEY=str(not_a_key)))


def test_keygen_writes_a_2048_bit_key_and_prints_the_record(runner, tmp_path):
    out = tmp_path / "keys" / "mail.pem"
    result = runner.invoke(
        args=["dkim", "keygen", "--out", str(out), "--selector", "s1", "--domain", "example.org"]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(out.read_bytes(), password=None)
    assert key.key_size == 2048
    line = next(x for x in result.output.splitlines() if "._domainkey." in x)
    assert line.startswith('s1._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p=')
    strings = re.findall(r'"([^"]*)"', line)  # RFC 1035: at most 255 octets each
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == dkim.txt_record_value(out.read_bytes())
    assert f"MAILER_DKIM_PRIVATE_KEY={out.resolve()}" in result.output


def test_keygen_never_overwrites_a_key(runner, tmp_path):
    out = tmp_path / "mail.pem"
    out.write_text("the operator's existing key")
    result = runner.invoke(args=["dkim", "keygen", "--out", str(out)])
    assert result.exit_code != 0
    assert "exists" in result.output
    assert out.read_text() == "the operator's existing key"
